//! The MySQL backend's harness: private MariaDB servers (MariaDB 10.11 stands in for MySQL 8).
//!
//! The first test that needs it starts one server for the whole test binary; tests that stop
//! and start a server get one of their own. A server is `sundial_testdb::mariadb::Server`: a
//! fresh data directory under the cargo target's temp directory, its own loopback port and
//! socket, a user with a password, stopped when the test binary ends; every test gets a
//! database of its own. Without the MariaDB binaries every test here fails, saying what to
//! install.

use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use sundial_storage::DynStore;
use sundial_storage::mysql::{self, MysqlOptions, MysqlStore};
use sundial_testdb::mariadb::{PASSWORD, USER};

use super::Harness;

/// A private MariaDB server (its port, socket, `stop` and `restart` are the test server's).
pub struct Server(sundial_testdb::mariadb::Server);

impl Deref for Server {
    type Target = sundial_testdb::mariadb::Server;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(|| start_server("shared")) {
        Ok(server) => server,
        Err(why) => panic!("MariaDB test server: {why}"),
    }
}

/// Starts a private server named `name`, ready for connections. It stops when this process
/// ends.
pub fn start_server(name: &str) -> Result<Server, String> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    sundial_testdb::mariadb::Server::start(root, name).map(Server)
}

impl Server {
    /// Options for `database` on this server.
    pub fn options(&self, database: &str) -> MysqlOptions {
        options_on(self.port, database)
    }

    /// Stops the server (`crash`: with SIGKILL, as a power cut would) and waits until its
    /// process is gone.
    pub fn stop(&self, crash: bool) {
        if let Err(why) = self.0.stop(crash) {
            panic!("stopping the MariaDB test server: {why}");
        }
    }
}

/// Runs `f` to completion from synchronous harness code inside a test's (multi-threaded)
/// runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn options_on(port: u16, database: &str) -> MysqlOptions {
    MysqlOptions {
        connect_addr: format!("127.0.0.1:{port}"),
        database_name: database.to_string(),
        user: USER.to_string(),
        password: PASSWORD.to_string(),
        max_conns: 8,
        ..MysqlOptions::default()
    }
}

/// Options naming a database no other test uses (not created yet) on the shared server.
pub fn fresh_options() -> MysqlOptions {
    server().options(&fresh_database_name())
}

/// A database name no other test uses.
pub fn fresh_database_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("conformance_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A database of its own on the test server, with the current schema.
pub struct MariadbHarness {
    /// Where its database is.
    pub options: MysqlOptions,
}

impl Harness for MariadbHarness {
    fn new() -> Self {
        let options = fresh_options();
        block_on(mysql::setup_schema(&options)).expect("set up the schema");
        MariadbHarness { options }
    }

    fn open(&self) -> DynStore {
        Arc::new(block_on(MysqlStore::open(&self.options)).expect("open the MySQL store"))
    }
}
