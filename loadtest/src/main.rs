//! The `sundial-loadtest` binary: `run` against a running server, `compare` Sundial with the
//! reference server, or run the `shards` contention experiment. See `benchmarks/README.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sundial_loadtest::compare::{self, CompareOptions};
use sundial_loadtest::driver::{self, Amount, Load, RunConfig};
use sundial_loadtest::report::{self, Machine, Report, ServerReport, Settings};
use sundial_loadtest::scenario::{Placement, Scenario};
use sundial_loadtest::server::{self, SundialSpec};
use sundial_loadtest::shards::{self, ShardOptions};

#[derive(Parser)]
#[command(
    name = "sundial-loadtest",
    version,
    about = "Load tests for Sundial and any Temporal-API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario against a server that is already running.
    Run {
        /// The server's frontend.
        #[arg(long, default_value = "127.0.0.1:7233")]
        address: SocketAddr,
        /// The server's history shard count (to choose ids for `--placement hot`).
        #[arg(long, default_value_t = 4)]
        num_shards: u32,
        /// The server's process id on this machine, to report its CPU time per workflow.
        #[arg(long)]
        server_pid: Option<u32>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Start the reference server, then Sundial, run the same scenario on each, print both.
    Compare {
        /// The reference `temporal` binary (default: `temporal` on PATH, else .venv/bin/temporal).
        #[arg(long)]
        reference_bin: Option<PathBuf>,
        /// Sundial's binary (default: target/release/sundial if present, else target/debug/sundial).
        #[arg(long)]
        sundial_bin: Option<PathBuf>,
        /// Sundial's `--num-history-shards`.
        #[arg(long, default_value_t = 4)]
        sundial_shards: u32,
        /// Write an SVG chart of latency distributions and throughput.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Run both servers in memory instead of on SQLite files.
        #[arg(long)]
        in_memory: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Shard contention: the same load on Sundial with several shard counts, hot vs spread ids.
    Shards {
        /// Sundial's binary (default: target/release/sundial if present, else target/debug/sundial).
        #[arg(long)]
        sundial_bin: Option<PathBuf>,
        /// History shard counts to try.
        #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
        shard_counts: Vec<u32>,
        /// Write an SVG bar chart of throughput per setting.
        #[arg(long)]
        svg: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
}

/// How load is generated; shared by every mode.
#[derive(Args, Clone)]
struct LoadArgs {
    /// noop, one-activity, activities-N, timer, signals, hot-shard or backlog.
    #[arg(long, default_value = "one-activity")]
    scenario: Scenario,
    /// Starts per second (open loop). Default: --concurrency 10.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Workflows in flight (closed loop).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Workflows to start. Default: 100.
    #[arg(long, conflicts_with = "duration")]
    workflows: Option<u64>,
    /// Start for this long instead (e.g. 30s, 2m, 500ms).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Namespace to run in.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Override where workflow ids land (hot: all on Sundial's shard 1).
    #[arg(long)]
    placement: Option<Placement>,
    /// Concurrent workflow-task pollers.
    #[arg(long, default_value_t = 4)]
    workflow_pollers: usize,
    /// Concurrent activity-task pollers.
    #[arg(long, default_value_t = 4)]
    activity_pollers: usize,
    /// Workflow tasks, and activity tasks, the worker runs at once (pollers poll again as soon
    /// as they hand a task over, like the SDKs' task slots).
    #[arg(long, default_value_t = 100)]
    task_slots: usize,
    /// Ask for eager activity dispatch (`request_eager_execution`); off by default.
    #[arg(long)]
    eager_activities: bool,
    /// Signals each workflow of the `signals` scenario waits for.
    #[arg(long, default_value_t = 10)]
    signals_per_workflow: u32,
    /// The `timer` scenario's timer.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    timer: Duration,
    /// In rate mode, most workflows open at once.
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// Longest wait for started workflows to close once starting is over.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    drain_timeout: Duration,
    /// Longest time spent starting a fixed count of workflows.
    #[arg(long, value_parser = parse_duration, default_value = "600s")]
    max_start_time: Duration,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    no_progress: bool,
    /// Keep the servers' databases and logs (compare and shards modes).
    #[arg(long)]
    keep_work_dir: bool,
}

impl LoadArgs {
    fn run_config(&self, num_shards: u32) -> RunConfig {
        RunConfig {
            label: "target".into(),
            scenario: self.scenario,
            load: match (self.rate, self.concurrency) {
                (Some(r), _) => Load::Rate(r),
                (None, c) => Load::Concurrency(c.unwrap_or(10)),
            },
            amount: match (self.workflows, self.duration) {
                (_, Some(d)) => Amount::Duration(d),
                (n, None) => Amount::Workflows(n.unwrap_or(100)),
            },
            namespace: self.namespace.clone(),
            placement: self.placement.unwrap_or(self.scenario.placement()),
            num_shards,
            workflow_pollers: self.workflow_pollers,
            activity_pollers: self.activity_pollers,
            task_slots: self.task_slots,
            eager_activities: self.eager_activities,
            signals_per_workflow: self.signals_per_workflow,
            timer: self.timer,
            max_in_flight: self.max_in_flight,
            max_start_time: self.max_start_time,
            drain_timeout: self.drain_timeout,
            progress: !self.no_progress,
        }
    }
}

/// `500ms`, `30s`, `2m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

fn sundial_bin(given: Option<PathBuf>) -> Result<PathBuf> {
    match given.or_else(server::default_sundial_bin) {
        Some(bin) if bin.is_file() => Ok(bin),
        Some(bin) => bail!("{} is not a file", bin.display()),
        None => bail!(
            "no sundial binary: build one (cargo build --release --bin sundial) or pass --sundial-bin"
        ),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match real_main().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; `Ok(false)` when some started workflow did not close.
async fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            address,
            num_shards,
            server_pid,
            load,
        } => {
            let config = load.run_config(num_shards);
            let cpu = sundial_loadtest::cpu::Meter::start(server_pid);
            let outcome = driver::run(address, &config).await?;
            let (server_cpu, own_cpu) = cpu.spent();
            let server = ServerReport::from_outcome(outcome).with_cpu(server_cpu, own_cpu);
            let table = report::table(&[("target", &server)], false);
            let complete = server.incomplete() == 0;
            let report = Report {
                settings: Settings::of(&config),
                machine: Machine::this(),
                servers: BTreeMap::from([("target".to_string(), server)]),
                ratios: None,
            };
            write_report(load.report.as_ref(), &report)?;
            print(&table);
            Ok(complete)
        }
        Command::Compare {
            reference_bin,
            sundial_bin: bin,
            sundial_shards,
            svg,
            in_memory,
            load,
        } => {
            let reference_bin = reference_bin
                .or_else(server::find_reference_bin)
                .context("no reference server: put `temporal` on PATH or pass --reference-bin")?;
            let options = CompareOptions {
                reference_bin,
                sundial: SundialSpec {
                    bin: sundial_bin(bin)?,
                    num_shards: sundial_shards,
                    metrics: false,
                    in_memory,
                },
                keep_work_dir: load.keep_work_dir,
                svg,
            };
            let config = load.run_config(sundial_shards);
            let report = compare::compare(&config, &options).await?;
            let servers = [
                ("sundial", &report.servers["sundial"]),
                ("reference", &report.servers["reference"]),
            ];
            let table = report::table(&servers, true);
            let complete = servers.iter().all(|(_, r)| r.incomplete() == 0);
            write_report(load.report.as_ref(), &report)?;
            print(&table);
            Ok(complete)
        }
        Command::Shards {
            sundial_bin: bin,
            shard_counts,
            svg,
            load,
        } => {
            let options = ShardOptions {
                sundial_bin: sundial_bin(bin)?,
                shard_counts,
                keep_work_dir: load.keep_work_dir,
                svg,
            };
            let config = load.run_config(1);
            let report = shards::experiment(&config, &options).await?;
            let table = shards::table(&report);
            let complete = report.runs.iter().all(|r| r.report.incomplete() == 0);
            if let Some(path) = &load.report {
                let json = serde_json::to_string_pretty(&report)?;
                std::fs::write(path, json + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print(&table);
            Ok(complete)
        }
    }
}

/// Prints to stdout, ignoring a closed pipe (`| head`).
fn print(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn write_report(path: Option<&PathBuf>, report: &Report) -> Result<()> {
    match path {
        Some(path) => report.write(path),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "x",
            "compare",
            "--scenario",
            "activities-3",
            "--rate",
            "50",
            "--duration",
            "10s",
        ])
        .unwrap();
        let Command::Compare { load, .. } = cli.command else {
            panic!("not compare")
        };
        let config = load.run_config(4);
        assert_eq!(config.scenario, Scenario::Activities(3));
        assert_eq!(config.load, Load::Rate(50.0));
        assert_eq!(config.amount, Amount::Duration(Duration::from_secs(10)));
    }
}
