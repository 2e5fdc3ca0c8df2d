//! `sundial-testdb KIND DIR`: starts a private database server for a test run that is not
//! written in Rust (the Python SDK suite), prints the URL its superuser logs in with
//! (`postgres://USER:PASSWORD@127.0.0.1:PORT` or `mysql://...`, without a database), and keeps
//! it running until its standard input closes. KIND is `postgres` or `mariadb`; the server's
//! files go under DIR and are removed when it stops. PostgreSQL runs without fsync unless
//! `--durable` comes first (benchmarks comparing stores want its durable defaults).

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use sundial_testdb::{mariadb, postgres};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let durable = args.first().is_some_and(|a| a == "--durable");
    if durable {
        args.remove(0);
    }
    let [kind, dir] = args.as_slice() else {
        eprintln!("usage: sundial-testdb [--durable] postgres|mariadb DIR");
        return ExitCode::from(2);
    };
    let root = Path::new(dir);
    // The server lives as long as its handle; its watcher stops it when this process ends.
    let (url, _server): (String, Box<dyn std::any::Any>) = match kind.as_str() {
        "postgres" => match if durable {
            postgres::Server::start_durable(root, "sdk")
        } else {
            postgres::Server::start(root, "sdk")
        } {
            Ok(s) => (
                format!(
                    "postgres://{}:{}@{}",
                    postgres::USER,
                    postgres::PASSWORD,
                    s.address()
                ),
                Box::new(s),
            ),
            Err(e) => return fail(&e),
        },
        "mariadb" => match mariadb::Server::start(root, "sdk") {
            Ok(s) => (
                format!(
                    "mysql://{}:{}@{}",
                    mariadb::USER,
                    mariadb::PASSWORD,
                    s.address()
                ),
                Box::new(s),
            ),
            Err(e) => return fail(&e),
        },
        other => return fail(&format!("unknown kind {other:?}: postgres or mariadb")),
    };
    println!("{url}");
    if std::io::stdout().flush().is_err() {
        return ExitCode::FAILURE;
    }
    // Until the caller closes our standard input (or ends).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("sundial-testdb: {message}");
    ExitCode::FAILURE
}
