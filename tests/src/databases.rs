//! The private database servers of this test process: one PostgreSQL and one MariaDB, started
//! on first use (see `sundial_testdb`) and stopped when the process exits. Every test takes a
//! database of its own.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, anyhow};
use sundial_testdb::{mariadb, postgres};

use crate::process::target_tmp_dir;

/// The PostgreSQL server of this process.
pub fn postgres() -> Result<&'static postgres::Server> {
    static SERVER: OnceLock<std::result::Result<postgres::Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| postgres::Server::start(&target_tmp_dir(), "integration"))
        .as_ref()
        .map_err(|why| anyhow!("private PostgreSQL server: {why}"))
}

/// The MariaDB server of this process.
pub fn mariadb() -> Result<&'static mariadb::Server> {
    static SERVER: OnceLock<std::result::Result<mariadb::Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| mariadb::Server::start(&target_tmp_dir(), "integration"))
        .as_ref()
        .map_err(|why| anyhow!("private MariaDB server: {why}"))
}

/// A database name no other test of this process uses (not created).
pub fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("sundial_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
