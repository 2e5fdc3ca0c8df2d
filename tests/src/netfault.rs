//! Network faults on loopback, with nftables (the tests run as root): a [`Cut`] drops every
//! UDP datagram to and from one address, such as a process's gossip port, until it is dropped.
//! Each cut is a table of its own, named after the test process, so tests that run side by
//! side never touch each other's rules.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, ensure};

/// Drops the UDP traffic of one address while it lives.
pub struct Cut {
    table: String,
}

static CUTS: AtomicUsize = AtomicUsize::new(0);

impl Cut {
    /// Drops every UDP datagram sent from or to `address` (both directions: its peers neither
    /// hear it nor reach it). Fails when nftables cannot be used (`nft` missing, not root).
    pub fn udp(address: SocketAddr) -> Result<Cut> {
        let table = format!(
            "sundial_test_{}_{}",
            std::process::id(),
            CUTS.fetch_add(1, Ordering::Relaxed)
        );
        let (ip, port) = (address.ip(), address.port());
        let family = if ip.is_ipv4() { "ip" } else { "ip6" };
        // Loopback datagrams pass the output hook once, whoever sends them.
        let rules = format!(
            "table inet {table} {{
                chain output {{
                    type filter hook output priority 0; policy accept;
                    {family} saddr {ip} udp sport {port} drop
                    {family} daddr {ip} udp dport {port} drop
                }}
            }}\n"
        );
        nft(&["-f", "-"], Some(&rules)).context("cutting the network with nftables (`nft`)")?;
        Ok(Cut { table })
    }

    /// Lets the traffic through again.
    pub fn heal(self) -> Result<()> {
        let table = self.table.clone();
        std::mem::forget(self);
        nft(&["delete", "table", "inet", &table], None)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = nft(&["delete", "table", "inet", &self.table], None);
    }
}

fn nft(args: &[&str], input: Option<&str>) -> Result<()> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (apt package nftables)")?;
    if let Some(input) = input {
        child
            .stdin
            .take()
            .context("nft's stdin")?
            .write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "nft {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
