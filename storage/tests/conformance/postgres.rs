//! The PostgreSQL harness: one private server per test binary run, a fresh database per test.
//!
//! The server is `sundial_testdb::postgres::Server` (Debian's `postgresql` binaries, own data
//! directory under the target's temp directory, own loopback port, password authentication,
//! an ICU `en-US` default collation so a key column without `COLLATE "C"` would sort wrongly),
//! stopped when this process exits. Missing binaries fail the tests: install Debian's
//! `postgresql`.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use sundial_storage::DynStore;
use sundial_storage::postgres::{PostgresOptions, PostgresStore, schema};
use sundial_testdb::postgres::{PASSWORD, USER};

use super::Harness;

/// A fresh database on the private server, with the current schema.
pub struct PostgresHarness {
    options: PostgresOptions,
}

impl PostgresHarness {
    /// The options that reach this test's database.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }
}

impl Harness for PostgresHarness {
    fn new() -> Self {
        let options = server().fresh_options();
        block_on(async {
            assert!(
                schema::create_database(&options)
                    .await
                    .expect("create database")
            );
            schema::setup(&options).await.expect("schema setup");
        });
        PostgresHarness { options }
    }

    fn open(&self) -> DynStore {
        Arc::new(block_on(PostgresStore::open(&self.options)).expect("open postgres store"))
    }
}

/// Runs `f` to completion from inside a multi-threaded tokio test.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// The private server of this process, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| tokio::task::block_in_place(|| Server::start("shared")))
}

/// A private PostgreSQL server, and the databases its tests have used.
pub struct Server {
    db: sundial_testdb::postgres::Server,
    databases: AtomicUsize,
}

impl Server {
    /// Initialises and starts a server of this process named `name` (its directory's name).
    /// Tests that restart a server start their own; the others share [`server`].
    pub fn start(name: &str) -> Server {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        match sundial_testdb::postgres::Server::start(root, name) {
            Ok(db) => Server {
                db,
                databases: AtomicUsize::new(0),
            },
            Err(why) => panic!("private PostgreSQL server: {why}"),
        }
    }

    /// Options naming a database no test has used yet (not created).
    pub fn fresh_options(&self) -> PostgresOptions {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        self.options(&format!("test_{n}"))
    }

    /// Options for `database` on this server.
    pub fn options(&self, database: &str) -> PostgresOptions {
        PostgresOptions {
            connect_addr: self.db.address(),
            database_name: database.to_string(),
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            max_conns: 8,
            ..PostgresOptions::default()
        }
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.db.port()
    }

    /// Restarts the server with `pg_ctl restart -m MODE` (`fast` or `immediate`) and waits
    /// until it accepts connections again.
    pub fn restart(&self, mode: &str) {
        if let Err(why) = self.db.restart(mode) {
            panic!("pg_ctl restart -m {mode}: {why}");
        }
    }
}
