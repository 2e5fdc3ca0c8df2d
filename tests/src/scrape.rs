//! Reading a Prometheus scrape (text exposition format) and the metric names a PromQL
//! expression queries: enough for tests to check names, tags and values.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One sample: name, tags, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as exposed (`service_latency_bucket`, ...).
    pub name: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` declarations: family name → kind (counter, gauge, histogram, ...).
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text format.
    pub fn parse(text: &str) -> Result<Scrape> {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    scrape.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            scrape
                .samples
                .push(parse_sample(line).with_context(|| format!("line {line:?}"))?);
        }
        Ok(scrape)
    }

    /// Samples of `name` whose tags include every `(key, value)` of `tags`.
    pub fn find(&self, name: &str, tags: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                tags.iter()
                    .all(|(k, v)| s.tags.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum of the values of [`Scrape::find`].
    pub fn sum(&self, name: &str, tags: &[(&str, &str)]) -> f64 {
        self.find(name, tags).iter().map(|s| s.value).sum()
    }

    /// Every name a query may use: sample names and declared families.
    pub fn names(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| s.name.clone())
            .chain(self.types.keys().cloned())
            .collect()
    }
}

fn parse_sample(line: &str) -> Result<Sample> {
    let (series, value) = line.rsplit_once(' ').context("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().context("bad value")?,
    };
    let (name, tags) = match series.split_once('{') {
        None => (series.to_string(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').context("unclosed tags")?;
            (name.to_string(), parse_tags(body)?)
        }
    };
    Ok(Sample { name, tags, value })
}

fn parse_tags(body: &str) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            bail!("tag {key} has no quoted value");
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => bail!("dangling escape"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => bail!("unterminated value of {key}"),
            }
        }
        tags.insert(key, value);
    }
    Ok(tags)
}

/// GETs `http://{addr}/metrics` and parses it.
pub async fn scrape(addr: std::net::SocketAddr) -> Result<Scrape> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the metrics listener {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("metrics answered {head:?}");
    }
    Scrape::parse(body)
}

/// PromQL words that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "avg",
    "max",
    "min",
    "count",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "topk",
    "bottomk",
    "clamp_min",
    "clamp_max",
    "abs",
    "delta",
    "deriv",
    "offset",
    "bool",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "vector",
    "scalar",
    "label_replace",
    "time",
    "inf",
    "nan",
];

/// The metric names a PromQL expression reads (label matchers, grouping clauses, ranges,
/// strings and numbers removed).
pub fn promql_metrics(expr: &str) -> BTreeSet<String> {
    // Drop {...}, [...], "..." and the (...) after by/without.
    let mut cleaned = String::new();
    let mut depth_curly = 0;
    let mut depth_square = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_curly += 1,
            '}' => depth_curly -= 1,
            '[' => depth_square += 1,
            ']' => depth_square -= 1,
            _ if depth_curly > 0 || depth_square > 0 => {}
            c => cleaned.push(c),
        }
        if c == '}' || c == ']' || c == '"' {
            cleaned.push(' ');
        }
    }
    let mut names = BTreeSet::new();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in cleaned.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if c == '(' || c == ')' || c == ',' {
                tokens.push(c.to_string());
            }
        }
    }
    let mut skip_group = false;
    for (i, t) in tokens.iter().enumerate() {
        if skip_group {
            if t == ")" {
                skip_group = false;
            }
            continue;
        }
        if t == "by" || t == "without" {
            skip_group = tokens.get(i + 1).is_some_and(|n| n == "(");
            continue;
        }
        let first = t.chars().next().unwrap_or('0');
        if first.is_ascii_digit() || t.len() == 1 && !first.is_ascii_alphabetic() {
            continue;
        }
        if PROMQL_WORDS.contains(&t.as_str()) || t == "(" || t == ")" || t == "," {
            continue;
        }
        names.insert(t.clone());
    }
    names
}
