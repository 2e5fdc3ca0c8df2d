//! The `sundial` binary: command line, wiring and process lifecycle.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use slog::{Drain, Logger, info, o};
use sundial_actors::Node;
use sundial_config::Config;
use sundial_storage::{DynStore, memory::MemoryStore, sqlite::SqliteStore};

#[derive(Parser)]
#[command(
    name = "sundial",
    version,
    about = "A durable-execution server that speaks Temporal's API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server.
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Every role in one process on the embedded store, like `temporal server start-dev`.
    StartDev(StartDev),
    /// The roles named, from a Temporal-layout config file.
    Start(Start),
}

#[derive(clap::Args)]
struct StartDev {
    /// Frontend port.
    #[arg(short = 'p', long, default_value_t = 7233)]
    port: u16,
    /// IP address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    ip: String,
    /// SQLite file to persist to; in memory when absent.
    #[arg(short = 'f', long)]
    db_filename: Option<PathBuf>,
    /// Namespaces to create besides `default` (repeatable).
    #[arg(short = 'n', long)]
    namespace: Vec<String>,
    /// Log level: debug, info, warn, error.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Number of history shards.
    #[arg(long, default_value_t = 4)]
    num_history_shards: i32,
    /// Accepted for compatibility with `temporal server start-dev` (Sundial has no UI).
    #[arg(long, hide = true)]
    headless: bool,
}

#[derive(clap::Args)]
struct Start {
    /// Config file (Temporal's YAML layout).
    #[arg(short = 'c', long)]
    config: PathBuf,
    /// Roles to run (comma-separated); all when absent.
    #[arg(long, env = "SERVICES", value_delimiter = ',')]
    services: Vec<String>,
    /// Log level, overriding the config.
    #[arg(long, env = "LOG_LEVEL")]
    log_level: Option<String>,
}

fn logger(level: &str) -> Result<Logger> {
    let level = match level {
        "debug" => slog::Level::Debug,
        "info" => slog::Level::Info,
        "warn" => slog::Level::Warning,
        "error" => slog::Level::Error,
        other => anyhow::bail!("unknown log level {other:?} (debug, info, warn, error)"),
    };
    let decorator = slog_term::TermDecorator::new().stderr().build();
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let drain = slog_async::Async::new(drain).build().fuse();
    Ok(Logger::root(drain.filter_level(level).fuse(), o!()))
}

fn open_store(path: Option<&std::path::Path>) -> Result<DynStore> {
    Ok(match path {
        Some(p) => Arc::new(
            SqliteStore::open(p).with_context(|| format!("opening SQLite file {}", p.display()))?,
        ),
        None => Arc::new(MemoryStore::new()),
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = ctrl_c => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(
    store: DynStore,
    shards: i32,
    addr: String,
    namespaces: Vec<String>,
    log: Logger,
) -> Result<()> {
    let node = Node::start(store, shards, log.clone());
    for ns in std::iter::once("default".to_string()).chain(namespaces) {
        sundial_transport::ensure_namespace(&node.namespaces, &ns)
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    info!(log, "Sundial is serving the Temporal API"; "address" => %local);
    println!("Sundial listening on {local} (namespace: default)");
    sundial_transport::serve(listener, node.clone(), shutdown_signal()).await?;
    info!(log, "shut down");
    node.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server {
            command: ServerCommand::StartDev(args),
        } => {
            let log = logger(&args.log_level)?;
            let store = open_store(args.db_filename.as_deref())?;
            let addr = format!("{}:{}", args.ip, args.port);
            run(store, args.num_history_shards, addr, args.namespace, log).await
        }
        Command::Server {
            command: ServerCommand::Start(args),
        } => {
            let config = Config::load(&args.config)?;
            let level = args
                .log_level
                .unwrap_or_else(|| config.log.level.as_str().to_string());
            let log = logger(&level)?;
            for role in &args.services {
                if config.service(role).is_none() {
                    anyhow::bail!(
                        "service {role:?} is not configured in {}",
                        args.config.display()
                    );
                }
            }
            let frontend = config
                .service("frontend")
                .context("the config has no frontend service")?;
            let addr = format!("{}:{}", frontend.bind_ip(), frontend.rpc.grpc_port);
            let sql = config
                .default_sql_store()
                .context("the default store must be an SQL datastore (sqlite for now)")?;
            let path = (!sql.is_in_memory()).then(|| PathBuf::from(&sql.database_name));
            let store = open_store(path.as_deref())?;
            run(
                store,
                config.persistence.num_history_shards as i32,
                addr,
                Vec::new(),
                log,
            )
            .await
        }
    }
}
