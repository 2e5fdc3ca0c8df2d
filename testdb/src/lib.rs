//! `sundial-testdb`: private database servers for tests, started and stopped by the tests.
//!
//! A [`postgres::Server`] or [`mariadb::Server`] runs Debian's server binaries on a fresh data
//! directory under a root the caller names (the cargo target's temp directory), on a free
//! loopback port, with a superuser that logs in with a password. A watcher process holding a
//! pipe from the test process stops the server and removes its data when the test process
//! exits, however it exits; directories left by earlier runs whose process is gone are removed
//! at start. Missing binaries are an error naming the Debian package to install.
//!
//! Depends on no Sundial crate: the storage conformance suite (`storage/tests/`) and the
//! integration tests (`tests/`) both use it. Test-only: nothing here is part of the server.

pub mod mariadb;
pub mod postgres;

use std::path::Path;
use std::process::Command;

/// Runs `command` to completion; its output on failure.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("running {:?}: {e}", command.get_program()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    Err(format!(
        "{:?} failed ({}): {stdout}{}",
        command.get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// True when the process `pid` exists.
fn process_exists(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// True when this process runs as root (the servers then need telling, or another user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A loopback port free now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}
