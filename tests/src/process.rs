//! A real `sundial` process: found (and built when needed) in the workspace's target
//! directory, started with arguments, waited for until it answers, killed with `SIGKILL`.
//! The process is killed when its handle drops, panics included.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sundial_proto::workflowservice::GetSystemInfoRequest;

use crate::server::{Client, connect};
use crate::worker::request;

/// Longest a process may take to answer `GetSystemInfo` after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `cargo build --bin sundial` may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Where [`free_port`] picks from: below Linux's ephemeral range (32768-60999), so no socket
/// bound to port 0 (an in-process server, a client) can take the port between the check and
/// the `sundial` process binding it, or while the process restarts.
const PICKED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A TCP port on 127.0.0.1 that is free now and that no other call in this process returned.
pub fn free_port() -> Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let span = u128::from(PICKED_PORTS.end - PICKED_PORTS.start);
    for _ in 0..1000 {
        let port = PICKED_PORTS.start + (uuid::Uuid::new_v4().as_u128() % span) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    bail!("no free port in {PICKED_PORTS:?}")
}

/// A frontend port for the dev layout of `start-dev --services` (the other roles 1, 2 and 6
/// ports above it, each gossiping 100 above its own): free for TCP from here and for UDP 100
/// above, now.
pub fn free_layout_port() -> Result<u16> {
    for _ in 0..100 {
        let port = free_port()?;
        let gossip_free = (0..=6)
            .all(|offset| std::net::UdpSocket::bind(("127.0.0.1", port + 100 + offset)).is_ok());
        let rpc_free =
            (1..=6).all(|offset| TcpListener::bind(("127.0.0.1", port + offset)).is_ok());
        if gossip_free && rpc_free {
            return Ok(port);
        }
    }
    bail!("no free port layout in {PICKED_PORTS:?}")
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The target directory and profile directory name this test binary was built in:
/// `<target>/<profile>/deps/<name>-<hash>`, else `CARGO_TARGET_DIR` (or `target/`) and `debug`.
fn target_and_profile() -> (PathBuf, String) {
    fn from_exe() -> Option<(PathBuf, String)> {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        let profile = deps.parent()?;
        let name = profile.file_name()?.to_string_lossy().into_owned();
        Some((profile.parent()?.to_path_buf(), name))
    }
    from_exe().unwrap_or_else(|| {
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => workspace_root().join(dir),
            None => workspace_root().join("target"),
        };
        (target, "debug".to_string())
    })
}

/// The target directory's `tmp/` (cargo's `CARGO_TARGET_TMPDIR` for integration tests), where
/// private database servers keep their data.
pub fn target_tmp_dir() -> PathBuf {
    target_and_profile().0.join("tmp")
}

/// The `sundial` binary of this workspace, built once per test process with
/// `cargo build --bin sundial` so it is never stale. `SUNDIAL_BIN` names a binary to use instead.
pub fn sundial_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_or_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_or_build() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SUNDIAL_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("SUNDIAL_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let (target, profile) = target_and_profile();
    let bin = target
        .join(&profile)
        .join(format!("sundial{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--quiet", "--bin", "sundial", "--manifest-path"])
        .arg(workspace_root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
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
    let mut child = build
        .spawn()
        .with_context(|| format!("running {} build --bin sundial", cargo.to_string_lossy()))?;
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`cargo build --bin sundial` took longer than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        bail!("`cargo build --bin sundial` failed ({status}); build it by hand or set SUNDIAL_BIN");
    }
    if !bin.is_file() {
        bail!(
            "`cargo build --bin sundial` succeeded but {} does not exist; set SUNDIAL_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `sundial` process, killed (SIGKILL) and reaped on drop.
pub struct SundialProcess {
    child: Child,
    /// Where its frontend listens.
    pub addr: SocketAddr,
    log_path: PathBuf,
}

impl SundialProcess {
    /// Starts `sundial <args>` with stdout and stderr appended to `log_path`; `addr` is where
    /// its frontend will listen. Does not wait for it: see [`SundialProcess::wait_ready`].
    pub fn spawn<S: AsRef<OsStr>>(args: &[S], addr: SocketAddr, log_path: &Path) -> Result<Self> {
        Self::spawn_with_env(args, &[], addr, log_path)
    }

    /// [`SundialProcess::spawn`] with extra environment variables (`OTEL_*` and the like).
    pub fn spawn_with_env<S: AsRef<OsStr>>(
        args: &[S],
        env: &[(&str, String)],
        addr: SocketAddr,
        log_path: &Path,
    ) -> Result<Self> {
        let bin = sundial_binary()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(&bin)
            .args(args)
            .env("LOG_LEVEL", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(SundialProcess {
            child,
            addr,
            log_path: log_path.to_path_buf(),
        })
    }

    /// The names of the process's threads (Linux: `/proc/PID/task/*/comm`, at most 15 bytes).
    pub fn thread_names(&self) -> Result<Vec<String>> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut names = Vec::new();
        for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
            let comm = task?.path().join("comm");
            // A thread that ended since the listing has no comm any more.
            if let Ok(name) = std::fs::read_to_string(comm) {
                names.push(name.trim_end().to_string());
            }
        }
        Ok(names)
    }

    /// Runs `sundial <args>` to completion (at most `timeout`), its output appended to
    /// `log_path`; returns how it exited and what it printed.
    pub fn run_to_exit<S: AsRef<OsStr>>(
        args: &[S],
        log_path: &Path,
        timeout: Duration,
    ) -> Result<(std::process::ExitStatus, String)> {
        let logged_before = std::fs::metadata(log_path).map_or(0, |m| m.len() as usize);
        let unused = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut process = Self::spawn(args, unused, log_path)?;
        let status = process.wait_exit(timeout)?;
        let logs = process.logs();
        Ok((
            status,
            logs.get(logged_before..).unwrap_or(&logs).to_string(),
        ))
    }

    /// The arguments of `sundial server start-dev` on 127.0.0.1:`port` persisting to `db`,
    /// then `extra`.
    pub fn start_dev_args(port: u16, db: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = ["server", "start-dev", "--ip", "127.0.0.1"]
            .into_iter()
            .map(Into::into)
            .collect();
        args.extend(["--port".into(), port.to_string().into()]);
        args.extend(["--db-filename".into(), db.as_os_str().to_owned()]);
        args.extend(extra.iter().map(Into::into));
        args
    }

    /// `sundial server start-dev` on 127.0.0.1:`port` persisting to `db`, ready to serve.
    pub async fn start_dev(port: u16, db: &Path, log_path: &Path) -> Result<(Self, Client)> {
        let args = Self::start_dev_args(port, db, &[]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut process = Self::spawn(&args, addr, log_path)?;
        let client = process.wait_ready().await?;
        Ok((process, client))
    }

    /// Waits (bounded) until the process answers `GetSystemInfo`, and returns a client.
    pub async fn wait_ready(&mut self) -> Result<Client> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("sundial exited early ({status}); log:\n{}", self.logs());
            }
            if let Ok(mut client) = connect(self.addr).await {
                let info = client
                    .get_system_info(request(GetSystemInfoRequest {}, Duration::from_secs(2)))
                    .await;
                if info.is_ok() {
                    return Ok(client);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "sundial did not answer on {} within {READY_TIMEOUT:?}; log:\n{}",
                    self.addr,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) for the process to exit on its own and returns how it ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("sundial still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the process to stop with SIGTERM (a planned stop) and waits, at most `timeout`, for
    /// it to exit; answers how it exited.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        self.signal("TERM")?;
        self.wait_exit(timeout)
    }

    /// Sends the process signal `name` (`STOP`, `CONT`, `TERM`, ...).
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .with_context(|| format!("running kill -{name}"))?;
        ensure!(status.success(), "kill -{name} failed: {status}");
        Ok(())
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().context("killing sundial")?;
        self.child.wait().context("reaping sundial")?;
        Ok(())
    }

    /// Where the process logs.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// What the process has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for SundialProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
