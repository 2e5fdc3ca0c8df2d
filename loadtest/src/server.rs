//! Server processes this tool starts itself (Sundial and the reference `temporal` dev server):
//! finding their binaries, free loopback ports, waiting until they serve, and killing them.
//! Only processes started here are ever killed, each by its own child handle.

use std::ffi::OsString;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client;

/// Longest a server may take to serve after it is started (the reference server migrates
/// its SQLite schema first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Ports picked by [`free_port`]: below Linux's ephemeral range, so no client socket takes
/// one between the check and the server binding it.
const PICKED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A TCP port on 127.0.0.1 that is free now and was not returned before by this process.
pub fn free_port() -> Result<u16> {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let span = u128::from(PICKED_PORTS.end - PICKED_PORTS.start);
    for _ in 0..1000 {
        let port = PICKED_PORTS.start + (uuid::Uuid::new_v4().as_u128() % span) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    bail!("no free port in {PICKED_PORTS:?}")
}

/// The `sundial` binary to use by default: `target/release/sundial` if present, else
/// `target/debug/sundial`, looked up beside this binary's target directory, then under the
/// current directory.
pub fn default_sundial_bin() -> Option<PathBuf> {
    let mut targets = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(target) = exe.parent().and_then(Path::parent)
    {
        targets.push(target.to_path_buf());
    }
    targets.push(PathBuf::from("target"));
    let name = format!("sundial{}", std::env::consts::EXE_SUFFIX);
    let name = name.as_str();
    ["release", "debug"]
        .iter()
        .flat_map(|profile| targets.iter().map(move |t| t.join(profile).join(name)))
        .find(|p| p.is_file())
}

/// The reference server's `temporal` binary: `temporal` on `PATH`, else `.venv/bin/temporal`
/// under the current directory (where this repository's Python env puts it).
pub fn find_reference_bin() -> Option<PathBuf> {
    let name = format!("temporal{}", std::env::consts::EXE_SUFFIX);
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(&name))
        .chain(std::iter::once(PathBuf::from(".venv/bin").join(&name)))
        .find(|p| p.is_file())
}

/// True when `sundial server start-dev --help` lists `--metrics-port`.
pub fn sundial_has_metrics_port(bin: &Path) -> bool {
    Command::new(bin)
        .args(["server", "start-dev", "--help"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--metrics-port"))
        .unwrap_or(false)
}

/// How to start Sundial.
#[derive(Clone, Debug)]
pub struct SundialSpec {
    /// The binary.
    pub bin: PathBuf,
    /// History shards (`--num-history-shards`).
    pub num_shards: u32,
    /// Serve Prometheus metrics on a port (`--metrics-port`).
    pub metrics: bool,
    /// Keep state in memory instead of a SQLite file.
    pub in_memory: bool,
}

/// A scratch directory for databases and logs, removed on drop unless kept.
pub struct WorkDir {
    /// Its path.
    pub path: PathBuf,
    /// Keep it after the run (logs for diagnosis).
    pub keep: bool,
}

impl WorkDir {
    /// A fresh directory under the system temp dir.
    pub fn new(keep: bool) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "sundial-loadtest-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("work dir kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A server process started here; killed (SIGKILL) and reaped on [`ServerProcess::stop`] or drop.
pub struct ServerProcess {
    child: Child,
    /// Name in logs and reports.
    pub name: String,
    /// Where its frontend listens.
    pub addr: SocketAddr,
    /// Where it serves Prometheus metrics, if asked to.
    pub metrics_port: Option<u16>,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts Sundial's `server start-dev` on a SQLite file in `dir` (unless `spec.in_memory`).
    pub fn start_sundial(spec: &SundialSpec, dir: &Path, tag: &str) -> Result<Self> {
        let port = free_port()?;
        let metrics_port = if spec.metrics {
            Some(free_port()?)
        } else {
            None
        };
        let mut args: Vec<OsString> = vec!["server".into(), "start-dev".into()];
        args.extend(["--ip", "127.0.0.1", "--log-level", "warn"].map(OsString::from));
        args.extend(["--port".into(), port.to_string().into()]);
        args.extend([
            "--num-history-shards".into(),
            spec.num_shards.to_string().into(),
        ]);
        if !spec.in_memory {
            args.extend(["--db-filename".into(), dir.join(format!("{tag}.db")).into()]);
        }
        if let Some(m) = metrics_port {
            args.extend(["--metrics-port".into(), m.to_string().into()]);
        }
        let mut process =
            Self::spawn(tag, &spec.bin, &args, port, &dir.join(format!("{tag}.log")))?;
        process.metrics_port = metrics_port;
        Ok(process)
    }

    /// Starts the reference `temporal server start-dev`, headless, on a SQLite file in `dir`
    /// (in memory when `in_memory`).
    pub fn start_reference(bin: &Path, dir: &Path, tag: &str, in_memory: bool) -> Result<Self> {
        let port = free_port()?;
        let (http, metrics) = (free_port()?, free_port()?);
        let mut args: Vec<OsString> =
            vec!["server".into(), "start-dev".into(), "--headless".into()];
        args.extend(["--ip".into(), "127.0.0.1".into()]);
        args.extend(["--port".into(), port.to_string().into()]);
        if !in_memory {
            args.extend(["--db-filename".into(), dir.join(format!("{tag}.db")).into()]);
        }
        args.extend(["--http-port".into(), http.to_string().into()]);
        args.extend(["--metrics-port".into(), metrics.to_string().into()]);
        args.extend(["--log-level", "error"].map(OsString::from));
        let mut process = Self::spawn(tag, bin, &args, port, &dir.join(format!("{tag}.log")))?;
        process.metrics_port = Some(metrics);
        Ok(process)
    }

    fn spawn(name: &str, bin: &Path, args: &[OsString], port: u16, log: &Path) -> Result<Self> {
        let log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(ServerProcess {
            child,
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            metrics_port: None,
            log_path: log.to_path_buf(),
        })
    }

    /// Waits (at most [`READY_TIMEOUT`]) until the server describes `namespace`.
    /// The process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn wait_ready(&mut self, namespace: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited early ({status}); log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if client::is_ready(self.addr, namespace).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not serve on {} within {READY_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
