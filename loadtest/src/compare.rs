//! Compare mode: the same run against the reference server and Sundial, one after the
//! other on this machine, each started here on a fresh SQLite file (or both in memory) and
//! killed afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::driver::{self, RunConfig};
use crate::report::{self, Machine, Report, ServerReport, Settings};
use crate::server::{ServerProcess, SundialSpec, WorkDir};

/// Where the servers come from and what to write.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// The reference `temporal` binary.
    pub reference_bin: PathBuf,
    /// How to start Sundial (its `in_memory` applies to the reference server too).
    pub sundial: SundialSpec,
    /// Keep databases and server logs.
    pub keep_work_dir: bool,
    /// Where to write the SVG chart, if anywhere.
    pub svg: Option<PathBuf>,
}

/// Runs `config` against both servers and returns the report (with ratios).
pub async fn compare(config: &RunConfig, options: &CompareOptions) -> Result<Report> {
    let mut work = WorkDir::new(options.keep_work_dir)?;
    eprintln!(
        "compare: scenario {} | reference {} | sundial {} | work dir {}",
        config.scenario,
        options.reference_bin.display(),
        options.sundial.bin.display(),
        work.path.display()
    );
    let reference = {
        let process = ServerProcess::start_reference(
            &options.reference_bin,
            &work.path,
            "reference",
            options.sundial.in_memory,
        )?;
        run_server(process, config, "reference")
            .await
            .map(|(r, _)| r)
    };
    let reference = keep_on_error(&mut work, reference)?;
    let sundial = {
        let process = ServerProcess::start_sundial(&options.sundial, &work.path, "sundial")?;
        run_server(process, config, "sundial").await.map(|(r, _)| r)
    };
    let sundial = keep_on_error(&mut work, sundial)?;
    if sundial.incomplete() + reference.incomplete() > 0 {
        work.keep = true; // the logs explain what stalled
    }
    let report = Report {
        settings: Settings::of(config),
        machine: Machine::this(),
        ratios: Some(report::ratios(&sundial, &reference)),
        servers: BTreeMap::from([
            ("reference".to_string(), reference),
            ("sundial".to_string(), sundial),
        ]),
    };
    if let Some(path) = &options.svg {
        write_svg(path, config, &report)?;
    }
    Ok(report)
}

fn keep_on_error<T>(work: &mut WorkDir, result: Result<T>) -> Result<T> {
    if result.is_err() {
        work.keep = true;
    }
    result
}

/// Waits for `process` to serve and runs `config` against it; hands the process back alive
/// (so its metrics can still be read): dropping it kills it.
pub async fn run_server(
    mut process: ServerProcess,
    config: &RunConfig,
    label: &str,
) -> Result<(ServerReport, ServerProcess)> {
    process
        .wait_ready(&config.namespace)
        .await
        .with_context(|| format!("starting {label}"))?;
    let mut config = config.clone();
    config.label = label.to_string();
    let cpu = crate::cpu::Meter::start(Some(process.pid()));
    let outcome = driver::run(process.addr, &config)
        .await
        .with_context(|| format!("running against {label}"))?;
    let (server_cpu, own_cpu) = cpu.spent();
    let report = ServerReport::from_outcome(outcome).with_cpu(server_cpu, own_cpu);
    if !process.is_running() {
        eprintln!(
            "warning: {label} exited during the run; log tail:\n{}",
            process.log_tail()
        );
    } else if report.incomplete() > 0 {
        eprintln!(
            "warning: {label}: {} started workflows did not close within the drain timeout; \
             log tail:\n{}",
            report.incomplete(),
            process.log_tail()
        );
    }
    Ok((report, process))
}

fn write_svg(path: &Path, config: &RunConfig, report: &Report) -> Result<()> {
    let servers: Vec<(&str, &ServerReport)> = report
        .servers
        .iter()
        .map(|(name, r)| (name.as_str(), r))
        .collect();
    let title = format!(
        "{} · {} · {} CPUs, {}",
        config.scenario,
        match config.load {
            driver::Load::Rate(r) => format!("rate {r}/s"),
            driver::Load::Concurrency(c) => format!("concurrency {c}"),
        },
        report.machine.cpus,
        report.machine.cpu_model
    );
    let svg = crate::chart::compare_svg(&title, &servers);
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}
