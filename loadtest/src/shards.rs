//! The shard-contention experiment: the same load against Sundial with several history-shard
//! counts, once with every workflow on one shard (hot) and once spread. Reports throughput
//! and latency per setting and, when Sundial serves Prometheus metrics, per-shard commit
//! batch size and commit latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::compare::run_server;
use crate::driver::RunConfig;
use crate::metrics::{self, ShardCommits};
use crate::report::{Machine, ServerReport, Settings};
use crate::scenario::Placement;
use crate::server::{self, ServerProcess, SundialSpec, WorkDir};

/// What the experiment varies and where it writes.
#[derive(Clone, Debug)]
pub struct ShardOptions {
    /// Sundial's binary.
    pub sundial_bin: PathBuf,
    /// History shard counts to try.
    pub shard_counts: Vec<u32>,
    /// Keep databases and server logs.
    pub keep_work_dir: bool,
    /// Where to write an SVG bar chart of throughput, if anywhere.
    pub svg: Option<PathBuf>,
}

/// One setting's result.
#[derive(Clone, Debug, Serialize)]
pub struct ShardRun {
    /// `--num-history-shards`.
    pub num_shards: u32,
    /// Hot or spread ids.
    pub placement: Placement,
    /// The run's figures.
    pub report: ServerReport,
    /// Commit figures by `shard_id` (empty without metrics).
    pub shard_commits: BTreeMap<String, ShardCommits>,
    /// Why there are no commit figures, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_note: Option<String>,
}

/// The experiment's JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct ShardReport {
    /// How the load was generated (placement varies per run).
    pub settings: Settings,
    /// Where it ran.
    pub machine: Machine,
    /// Whether Sundial served the commit histograms.
    pub metrics_available: bool,
    /// One entry per (shard count, placement).
    pub runs: Vec<ShardRun>,
}

/// Runs the experiment.
pub async fn experiment(config: &RunConfig, options: &ShardOptions) -> Result<ShardReport> {
    let mut work = WorkDir::new(options.keep_work_dir)?;
    let metrics = server::sundial_has_metrics_port(&options.sundial_bin);
    if !metrics {
        eprintln!(
            "shards: metrics not available ({} has no --metrics-port): throughput and latency only",
            options.sundial_bin.display()
        );
    }
    let mut runs = Vec::new();
    for &num_shards in &options.shard_counts {
        for placement in [Placement::Hot, Placement::Spread] {
            let spec = SundialSpec {
                bin: options.sundial_bin.clone(),
                num_shards,
                metrics,
                in_memory: false,
            };
            let tag = format!("sundial-{num_shards}-{placement}");
            let mut config = config.clone();
            config.placement = placement;
            config.num_shards = num_shards;
            let process = ServerProcess::start_sundial(&spec, &work.path, &tag)?;
            let (report, process) = match run_server(process, &config, &tag).await {
                Ok(ok) => ok,
                Err(e) => {
                    work.keep = true;
                    return Err(e);
                }
            };
            let scraped = match process.metrics_port {
                Some(port) => Some(metrics::scrape(port).await),
                None => None,
            };
            drop(process);
            if report.incomplete() > 0 {
                work.keep = true;
            }
            let (shard_commits, metrics_note) = match scraped {
                Some(Ok(text)) => {
                    let commits = metrics::shard_commits(&text);
                    let note = commits.is_empty().then(|| {
                        "metrics not available: no shard_commit_* histograms served".to_string()
                    });
                    (commits, note)
                }
                Some(Err(e)) => (
                    BTreeMap::new(),
                    Some(format!("metrics not available: {e:#}")),
                ),
                None => (
                    BTreeMap::new(),
                    Some("metrics not available: sundial has no --metrics-port".into()),
                ),
            };
            eprintln!(
                "shards={num_shards:<3} {placement:<6} {:>8.1} wf/s  p50 {:>7.1} ms  p99 {:>8.1} ms  completed {}/{}",
                report.workflows_per_second,
                report.latency_ms.p50,
                report.latency_ms.p99,
                report.completed,
                report.started
            );
            runs.push(ShardRun {
                num_shards,
                placement,
                report,
                shard_commits,
                metrics_note,
            });
        }
    }
    let report = ShardReport {
        settings: Settings::of(config),
        machine: Machine::this(),
        metrics_available: runs.iter().any(|r| !r.shard_commits.is_empty()),
        runs,
    };
    if let Some(path) = &options.svg {
        let groups: Vec<String> = options.shard_counts.iter().map(u32::to_string).collect();
        let values: Vec<Vec<f64>> = options
            .shard_counts
            .iter()
            .map(|&n| {
                [Placement::Hot, Placement::Spread]
                    .iter()
                    .map(|&p| {
                        report
                            .runs
                            .iter()
                            .find(|r| r.num_shards == n && r.placement == p)
                            .map_or(0.0, |r| r.report.workflows_per_second)
                    })
                    .collect()
            })
            .collect();
        let title = format!("Sundial throughput by history shards ({})", config.scenario);
        let svg = crate::chart::bars_svg(
            &title,
            "workflows / s",
            &groups,
            &["hot", "spread"],
            &values,
        );
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// The experiment as a table.
pub fn table(report: &ShardReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6} {:<7} {:>10} {:>10} {:>10} {:>10} {:>9} {:>11} {:>12} {:>12}",
        "shards",
        "ids",
        "wf/s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "commits",
        "mean batch",
        "commit ms",
        "busiest"
    );
    for run in &report.runs {
        let commits: u64 = run.shard_commits.values().map(|s| s.commits).sum();
        let (batch, latency) = if commits > 0 {
            let weighted = |f: fn(&ShardCommits) -> f64| {
                run.shard_commits
                    .values()
                    .map(|s| f(s) * s.commits as f64)
                    .sum::<f64>()
                    / commits as f64
            };
            (
                format!("{:.2}", weighted(|s| s.mean_batch_size)),
                format!("{:.3}", weighted(|s| s.mean_latency_ms)),
            )
        } else {
            ("-".into(), "-".into())
        };
        let busiest = run
            .shard_commits
            .iter()
            .max_by_key(|(_, s)| s.commits)
            .map_or("-".to_string(), |(id, s)| format!("{id}:{}", s.commits));
        let _ = writeln!(
            out,
            "{:>6} {:<7} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>9} {:>11} {:>12} {:>12}",
            run.num_shards,
            run.placement.to_string(),
            run.report.workflows_per_second,
            run.report.state_transitions_per_second,
            run.report.latency_ms.p50,
            run.report.latency_ms.p99,
            if commits > 0 {
                commits.to_string()
            } else {
                "-".into()
            },
            batch,
            latency,
            busiest
        );
    }
    if !report.metrics_available {
        out.push_str("(metrics not available: commit columns are empty)\n");
    }
    out
}
