//! Figures of a run, as a table and as the JSON report (`--report FILE`).
//!
//! Definitions (also in `benchmarks/README.md`):
//! - `latency_ms`: from just before the client sends `StartWorkflowExecution` to the moment
//!   the worker gets the server's OK for the workflow task that completes the workflow.
//! - `schedule_to_start_ms`: a task's `scheduled_time` (the server's, from the poll response;
//!   `current_attempt_scheduled_time` for activities) to the poller receiving the response,
//!   over workflow and activity tasks together. Same host, so one clock.
//! - `state_transitions_per_second`: history events of the closed workflows (each one's
//!   length at close) per second of the throughput window.
//! - `workflows_per_second`: closed workflows per second of the window, which runs from the
//!   moment workers may poll (after the starts, in `backlog`) to the last close.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::driver::{Load, RunConfig, RunOutcome};

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Schedule-to-start percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Delay {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One server's figures for one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerReport {
    /// Workflows whose start succeeded.
    pub started: u64,
    /// Workflows seen to close.
    pub completed: u64,
    /// Failed RPCs by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Failed RPCs by `"Rpc: Code"`: count and first message.
    pub error_details: BTreeMap<String, (u64, String)>,
    /// Closed workflows per second of the throughput window.
    pub workflows_per_second: f64,
    /// History events of closed workflows per second of the window.
    pub state_transitions_per_second: f64,
    /// History events of the closed workflows.
    pub history_events: u64,
    /// The throughput window in seconds.
    pub window_seconds: f64,
    /// Start → close.
    pub latency_ms: Latency,
    /// Task scheduled → received by a poller.
    pub schedule_to_start_ms: Delay,
    /// Start → close at percentiles 0, 1, ..., 99, 99.9, 100 (for charts).
    pub latency_distribution_ms: Vec<(f64, f64)>,
    /// Workflows closed in each second of the run.
    pub closes_per_second: Vec<u64>,
    /// The server's CPU time per completed workflow, over the run (0 when not measured: a
    /// server this tool did not start and was not given the pid of).
    pub server_cpu_ms_per_workflow: f64,
    /// The load generator's own CPU time per completed workflow, over the run.
    pub loadgen_cpu_ms_per_workflow: f64,
}

impl ServerReport {
    /// The figures of `outcome`.
    pub fn from_outcome(mut outcome: RunOutcome) -> Self {
        let obs = &mut outcome.observations;
        obs.latencies_us.sort_unstable();
        obs.schedule_to_start_us.sort_unstable();
        let lat = &obs.latencies_us;
        let secs = outcome.window.as_secs_f64().max(1e-9);
        let per_second = |n: u64| round2(if n == 0 { 0.0 } else { n as f64 / secs });
        let mut distribution: Vec<(f64, f64)> = (0..100)
            .map(|p| (f64::from(p), percentile_ms(lat, f64::from(p))))
            .collect();
        distribution.push((99.9, percentile_ms(lat, 99.9)));
        distribution.push((100.0, percentile_ms(lat, 100.0)));
        ServerReport {
            started: outcome.started,
            completed: outcome.completed,
            errors: std::mem::take(&mut obs.errors),
            error_details: std::mem::take(&mut obs.error_details),
            workflows_per_second: per_second(outcome.completed),
            state_transitions_per_second: per_second(obs.history_events),
            history_events: obs.history_events,
            window_seconds: round2(outcome.window.as_secs_f64()),
            latency_ms: Latency {
                p50: percentile_ms(lat, 50.0),
                p90: percentile_ms(lat, 90.0),
                p99: percentile_ms(lat, 99.0),
                max: percentile_ms(lat, 100.0),
            },
            schedule_to_start_ms: Delay {
                p50: percentile_ms(&obs.schedule_to_start_us, 50.0),
                p99: percentile_ms(&obs.schedule_to_start_us, 99.0),
            },
            latency_distribution_ms: distribution,
            closes_per_second: std::mem::take(&mut obs.closes_per_second),
            server_cpu_ms_per_workflow: 0.0,
            loadgen_cpu_ms_per_workflow: 0.0,
        }
    }

    /// Records the CPU seconds the server and the load generator spent on this run.
    pub fn with_cpu(mut self, server_seconds: Option<f64>, loadgen_seconds: Option<f64>) -> Self {
        let per =
            |s: Option<f64>| s.map_or(0.0, |s| crate::cpu::ms_per_workflow(s, self.completed));
        self.server_cpu_ms_per_workflow = per(server_seconds);
        self.loadgen_cpu_ms_per_workflow = per(loadgen_seconds);
        self
    }

    /// Failed RPCs, all codes.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Started workflows that did not close in time.
    pub fn incomplete(&self) -> u64 {
        self.started.saturating_sub(self.completed)
    }

    /// The figures compared across servers, by name.
    pub fn figures(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("completed", self.completed as f64),
            ("errors", self.error_count() as f64),
            ("workflows_per_second", self.workflows_per_second),
            (
                "state_transitions_per_second",
                self.state_transitions_per_second,
            ),
            ("latency_ms.p50", self.latency_ms.p50),
            ("latency_ms.p90", self.latency_ms.p90),
            ("latency_ms.p99", self.latency_ms.p99),
            ("latency_ms.max", self.latency_ms.max),
            ("schedule_to_start_ms.p50", self.schedule_to_start_ms.p50),
            ("schedule_to_start_ms.p99", self.schedule_to_start_ms.p99),
            (
                "server_cpu_ms_per_workflow",
                self.server_cpu_ms_per_workflow,
            ),
            (
                "loadgen_cpu_ms_per_workflow",
                self.loadgen_cpu_ms_per_workflow,
            ),
        ]
    }
}

/// The value at `p` percent of sorted microseconds, in milliseconds (nearest rank).
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    round2(sorted_us[index] as f64 / 1000.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sundial over reference for each figure (`null` where the reference figure is zero).
pub fn ratios(sundial: &ServerReport, reference: &ServerReport) -> BTreeMap<String, Option<f64>> {
    sundial
        .figures()
        .into_iter()
        .zip(reference.figures())
        .map(|((name, s), (_, r))| {
            let ratio = (r != 0.0).then(|| (s / r * 1000.0).round() / 1000.0);
            (name.to_string(), ratio)
        })
        .collect()
}

/// The settings of a run, as recorded in reports.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Scenario name.
    pub scenario: String,
    /// `rate` or `concurrency`.
    pub load: String,
    /// Starts per second or workflows in flight.
    pub load_value: f64,
    /// Workflows asked for (when a count was given).
    pub workflows: Option<u64>,
    /// Seconds of starting (when a duration was given).
    pub duration_seconds: Option<f64>,
    /// Id placement.
    pub placement: String,
    /// Workflow-task pollers.
    pub workflow_pollers: usize,
    /// Activity-task pollers.
    pub activity_pollers: usize,
    /// Tasks of each kind run at once.
    pub task_slots: usize,
    /// Eager activity dispatch requested.
    pub eager_activities: bool,
}

impl Settings {
    /// The settings of `config`.
    pub fn of(config: &RunConfig) -> Self {
        let (load, load_value) = match config.load {
            Load::Rate(r) => ("rate", r),
            Load::Concurrency(c) => ("concurrency", c as f64),
        };
        let (workflows, duration_seconds) = match config.amount {
            crate::driver::Amount::Workflows(n) => (Some(n), None),
            crate::driver::Amount::Duration(d) => (None, Some(d.as_secs_f64())),
        };
        Settings {
            scenario: config.scenario.to_string(),
            load: load.into(),
            load_value,
            workflows,
            duration_seconds,
            placement: config.placement.to_string(),
            workflow_pollers: config.workflow_pollers,
            activity_pollers: config.activity_pollers,
            task_slots: config.task_slots,
            eager_activities: config.eager_activities,
        }
    }
}

/// The machine a report came from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory in GiB from `/proc/meminfo`.
    pub memory_gib: f64,
}

impl Machine {
    /// This machine (fields empty or zero where unknown).
    pub fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory_gib: round2(kib / 1024.0 / 1024.0),
        }
    }
}

/// The JSON report: settings, machine, each server's figures and, with two servers, ratios.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How the load was generated.
    pub settings: Settings,
    /// Where it ran.
    pub machine: Machine,
    /// Figures by server name (`sundial`, `reference`, or `target` for `run`).
    pub servers: BTreeMap<String, ServerReport>,
    /// Sundial over reference (compare mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratios: Option<BTreeMap<String, Option<f64>>>,
}

impl Report {
    /// Writes the report as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// A table of the servers' figures side by side (with a ratio column in compare mode).
pub fn table(servers: &[(&str, &ServerReport)], with_ratio: bool) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<30}", "figure");
    for (name, _) in servers {
        let _ = write!(out, "{name:>14}");
    }
    if with_ratio {
        let _ = write!(out, "{:>16}", "ratio (s/r)");
    }
    out.push('\n');
    let mut rows: Vec<(String, Vec<f64>)> = vec![("started".into(), vec![])];
    for (_, report) in servers {
        rows[0].1.push(report.started as f64);
    }
    for (i, (name, _)) in servers[0].1.figures().into_iter().enumerate() {
        let values = servers.iter().map(|(_, r)| r.figures()[i].1).collect();
        rows.push((name.to_string(), values));
    }
    for (name, values) in rows {
        let _ = write!(out, "{name:<30}");
        for v in &values {
            let _ = write!(out, "{v:>14.2}");
        }
        if with_ratio && values.len() == 2 {
            match values[1] {
                r if r != 0.0 => {
                    let _ = write!(out, "{:>16.3}", values[0] / r);
                }
                _ => {
                    let _ = write!(out, "{:>16}", "-");
                }
            }
        }
        out.push('\n');
    }
    for (name, report) in servers {
        for (what, (count, message)) in &report.error_details {
            let _ = writeln!(out, "{name} error {what} x{count}: {message}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
        assert_eq!(percentile_ms(&v, 0.0), 1.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn ratios_are_sundial_over_reference() {
        let s = ServerReport {
            completed: 10,
            workflows_per_second: 30.0,
            ..Default::default()
        };
        let r = ServerReport {
            completed: 10,
            workflows_per_second: 10.0,
            ..Default::default()
        };
        let ratios = ratios(&s, &r);
        assert_eq!(ratios["workflows_per_second"], Some(3.0));
        assert_eq!(ratios["completed"], Some(1.0));
        assert_eq!(ratios["errors"], None);
    }
}
