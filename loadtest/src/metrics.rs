//! Sundial's per-shard commit metrics, read from its Prometheus endpoint with a minimal
//! HTTP/1.1 GET over a loopback TCP stream, and summarised per shard.
//!
//! Contract: `sundial server start-dev --metrics-port PORT` serves Prometheus text at
//! `http://127.0.0.1:PORT/metrics` with histograms `shard_commit_batch_size` and
//! `shard_commit_latency` (seconds), labelled `shard_id`, as `_bucket`/`_sum`/`_count`.
//! A unit infix such as `shard_commit_latency_seconds_count` is accepted too.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response read.
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// The body of `GET /metrics` on 127.0.0.1:`port`.
pub async fn scrape(port: u16) -> Result<String> {
    tokio::time::timeout(SCRAPE_TIMEOUT, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        stream
            .write_all(
                b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\
                  Connection: close\r\n\r\n",
            )
            .await?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut raw)
            .await?;
        parse_http_response(&raw)
    })
    .await
    .context("metrics scrape timed out")?
}

/// The body of a raw HTTP/1.1 response (identity or chunked); an error unless status 200.
pub fn parse_http_response(raw: &[u8]) -> Result<String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP response without a header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("metrics endpoint answered {status:?}");
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk header")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

/// One histogram of one shard.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Histogram {
    /// Observations.
    pub count: f64,
    /// Their sum.
    pub sum: f64,
    /// Cumulative buckets: (upper bound, count), sorted, `+Inf` last.
    #[serde(skip)]
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// Mean observation (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// Upper bound of the bucket holding quantile `q` (0..1); the largest finite bound when
    /// it falls in `+Inf`.
    pub fn quantile_bound(&self, q: f64) -> f64 {
        let target = q * self.count;
        let mut last_finite = 0.0;
        for &(le, cumulative) in &self.buckets {
            if le.is_finite() {
                last_finite = le;
            }
            if cumulative >= target && cumulative > 0.0 {
                return if le.is_finite() { le } else { last_finite };
            }
        }
        last_finite
    }
}

/// Commit figures of one shard.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShardCommits {
    /// Commits (transactions).
    pub commits: u64,
    /// Mean mutations per commit.
    pub mean_batch_size: f64,
    /// Bucket bound holding the 99th percentile batch size.
    pub p99_batch_size: f64,
    /// Mean commit latency in milliseconds.
    pub mean_latency_ms: f64,
    /// Bucket bound holding the 99th percentile commit latency, in milliseconds.
    pub p99_latency_ms: f64,
}

/// Per-shard commit figures by `shard_id`, from Prometheus text. Empty when the histograms
/// are absent.
pub fn shard_commits(text: &str) -> BTreeMap<String, ShardCommits> {
    let batch = histograms(text, "shard_commit_batch_size");
    let latency = histograms(text, "shard_commit_latency");
    let shards: std::collections::BTreeSet<&String> = batch.keys().chain(latency.keys()).collect();
    shards
        .into_iter()
        .map(|shard| {
            let b = batch.get(shard).cloned().unwrap_or_default();
            let l = latency.get(shard).cloned().unwrap_or_default();
            let figures = ShardCommits {
                commits: b.count.max(l.count) as u64,
                mean_batch_size: round3(b.mean()),
                p99_batch_size: b.quantile_bound(0.99),
                mean_latency_ms: round3(l.mean() * 1000.0),
                p99_latency_ms: round3(l.quantile_bound(0.99) * 1000.0),
            };
            (shard.clone(), figures)
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The histograms named `base` (optionally with a unit infix) by their `shard_id` label,
/// summed over any other labels.
pub fn histograms(text: &str, base: &str) -> BTreeMap<String, Histogram> {
    let mut out: BTreeMap<String, Histogram> = BTreeMap::new();
    let mut buckets: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(base) else {
            continue;
        };
        let Some(shard) = labels.get("shard_id") else {
            continue;
        };
        let h = out.entry(shard.clone()).or_default();
        if rest.ends_with("_bucket") {
            if let Some(le) = labels.get("le") {
                *buckets
                    .entry(shard.clone())
                    .or_default()
                    .entry(le.clone())
                    .or_default() += value;
            }
        } else if rest.ends_with("_sum") {
            h.sum += value;
        } else if rest.ends_with("_count") {
            h.count += value;
        }
    }
    for (shard, by_le) in buckets {
        let mut list: Vec<(f64, f64)> = by_le
            .into_iter()
            .filter_map(|(le, c)| parse_float(&le).map(|le| (le, c)))
            .collect();
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.entry(shard).or_default().buckets = list;
    }
    out
}

/// `name{a="x",b="y"} value [timestamp]` → (name, labels, value).
fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close]),
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = parse_float(rest.split_whitespace().next()?)?;
    Some((name.trim(), labels, value))
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim().trim_start_matches(',').trim().to_string(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP shard_commit_batch_size Mutations per commit
# TYPE shard_commit_batch_size histogram
shard_commit_batch_size_bucket{shard_id="1",le="1"} 2
shard_commit_batch_size_bucket{shard_id="1",le="4"} 8
shard_commit_batch_size_bucket{shard_id="1",le="+Inf"} 10
shard_commit_batch_size_sum{shard_id="1"} 40
shard_commit_batch_size_count{shard_id="1"} 10
shard_commit_latency_seconds_bucket{otel_scope_name="x",shard_id="1",le="0.001"} 5
shard_commit_latency_seconds_bucket{otel_scope_name="x",shard_id="1",le="0.01"} 10
shard_commit_latency_seconds_bucket{otel_scope_name="x",shard_id="1",le="+Inf"} 10
shard_commit_latency_seconds_sum{otel_scope_name="x",shard_id="1"} 0.02
shard_commit_latency_seconds_count{otel_scope_name="x",shard_id="1"} 10
other_metric{shard_id="1"} 3
"#;

    #[test]
    fn per_shard_figures() {
        let shards = shard_commits(TEXT);
        let s = &shards["1"];
        assert_eq!(s.commits, 10);
        assert_eq!(s.mean_batch_size, 4.0);
        assert_eq!(s.p99_batch_size, 4.0);
        assert_eq!(s.mean_latency_ms, 2.0);
        assert_eq!(s.p99_latency_ms, 10.0);
        assert!(shard_commits("up 1\n").is_empty());
    }

    #[test]
    fn http_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_http_response(plain).unwrap(), "hello");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(chunked).unwrap(), "hello");
        assert!(parse_http_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }

    #[test]
    fn labels_with_escapes() {
        let (name, labels, v) = parse_sample(r#"m{a="x\"y",b="z"} 1.5"#).unwrap();
        assert_eq!((name, v), ("m", 1.5));
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "z");
    }
}
