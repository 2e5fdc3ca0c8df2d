//! Smoke test: every scenario, briefly, against a real `sundial server start-dev` process on a
//! SQLite file; every workflow started must close (counts, not timings).
//!
//! The binary is `SUNDIAL_BIN` if set, else this workspace's `sundial` in the profile this
//! test was built with, built first with `cargo build --bin sundial` so it is never stale.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sundial_loadtest::driver::{self, RunConfig};
use sundial_loadtest::report::ServerReport;
use sundial_loadtest::scenario::Scenario;
use sundial_loadtest::server::{ServerProcess, SundialSpec};

/// Longest `cargo build --bin sundial` may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Workflows per scenario.
const WORKFLOWS: u64 = 20;

/// `<target>/<profile>` of this test binary (`<target>/<profile>/deps/smoke-<hash>`).
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe.parent().context("test binary has no parent")?;
    Ok(deps.parent().context("deps has no parent")?.to_path_buf())
}

fn sundial_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SUNDIAL_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let profile_dir = profile_dir()?;
    let profile = profile_dir
        .file_name()
        .context("profile dir has no name")?
        .to_string_lossy()
        .into_owned();
    let target = profile_dir.parent().context("no target dir")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("loadtest/ has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", "sundial", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let mut child = build.spawn().context("running cargo build --bin sundial")?;
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cargo build --bin sundial took longer than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        bail!("cargo build --bin sundial failed ({status}); build it or set SUNDIAL_BIN");
    }
    Ok(profile_dir.join(format!("sundial{}", std::env::consts::EXE_SUFFIX)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_completes_every_workflow() -> Result<()> {
    let bin = sundial_binary()?;
    let dir = tempfile::tempdir()?;
    let spec = SundialSpec {
        bin,
        num_shards: 4,
        metrics: false,
        in_memory: false,
    };
    let mut server = ServerProcess::start_sundial(&spec, dir.path(), "smoke")?;
    server.wait_ready("default").await?;
    let mut failures = Vec::new();
    for scenario in Scenario::ALL {
        let mut config = RunConfig::new(scenario, WORKFLOWS, 10);
        config.label = scenario.to_string();
        config.signals_per_workflow = 3;
        config.drain_timeout = Duration::from_secs(30);
        let outcome = driver::run(server.addr, &config)
            .await
            .with_context(|| format!("scenario {scenario}"))?;
        let report = ServerReport::from_outcome(outcome);
        if report.started != WORKFLOWS || report.completed != WORKFLOWS {
            failures.push(format!(
                "{scenario}: started {} completed {} of {WORKFLOWS}; errors {:?}",
                report.started, report.completed, report.error_details
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nserver log tail:\n{}",
        failures.join("\n"),
        server.log_tail()
    );
    Ok(())
}
