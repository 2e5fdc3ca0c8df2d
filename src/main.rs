//! The `sundial` binary: command line, wiring and process lifecycle.

mod cluster;
mod dynamic;
mod roles;
mod schema;
mod store;
mod telemetry;
mod unsupported;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use slog::{Logger, info, warn};
use sundial_actors::{Node, SystemClock};
use sundial_config::Config;
use sundial_storage::DynStore;

use store::Datastore;
use telemetry::LogOutput;

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
    /// Manage a datastore's schema, as Temporal's `temporal-sql-tool` does.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// What the store knows of the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// The members (processes and their roles), whether each is alive, and the history
    /// shards each owns, as the store's `cluster_membership` table and shard rows say.
    Members(ClusterArgs),
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// Config file (Temporal's YAML layout) of the cluster's nodes.
    #[arg(short = 'c', long, conflicts_with_all = ["db_filename", "database_url"])]
    config: Option<PathBuf>,
    /// Datastore (a key of `persistence.datastores`); the default store when absent.
    #[arg(long, requires = "config")]
    datastore: Option<String>,
    /// The SQLite file of a `start-dev` deployment.
    #[arg(short = 'f', long, conflicts_with = "database_url")]
    db_filename: Option<PathBuf>,
    /// The database of a `start-dev --database-url` deployment.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Create the database when it is missing (and the user may), then the schema.
    Setup(SchemaArgs),
    /// Apply the migrations an older schema is missing.
    Update(SchemaArgs),
    /// Print the stored schema version against this build's.
    Version(SchemaArgs),
}

#[derive(clap::Args)]
struct SchemaArgs {
    /// Config file (Temporal's YAML layout).
    #[arg(short = 'c', long)]
    config: PathBuf,
    /// Datastore (a key of `persistence.datastores`); the default store when absent.
    #[arg(long)]
    datastore: Option<String>,
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Every role in one process on the embedded store, like `temporal server start-dev`.
    StartDev(StartDev),
    /// A node from a Temporal-layout config file, on the store its `defaultStore` names.
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
    #[arg(short = 'f', long, conflicts_with = "database_url")]
    db_filename: Option<PathBuf>,
    /// Persist to a PostgreSQL or MySQL database instead of SQLite:
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` or `mysql://...` (Sundial only). The
    /// database is created and its schema set up or updated first, as `--auto-setup` does.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Namespaces to create besides `default` (repeatable).
    #[arg(short = 'n', long)]
    namespace: Vec<String>,
    /// Search attributes to register in those namespaces, as `KEY=TYPE` (repeatable; TYPE is
    /// Text, Keyword, Int, Double, Bool, Datetime or KeywordList), as `temporal server
    /// start-dev` accepts them.
    #[arg(long = "search-attribute", value_name = "KEY=TYPE")]
    search_attributes: Vec<String>,
    /// Log level: debug, info, warn, error.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format: console (human lines) or json (one object per line).
    #[arg(long, default_value = "console")]
    log_format: String,
    /// Serve Prometheus metrics on this port (at `/metrics`, on `--ip`); none when absent.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Number of history shards.
    #[arg(long, default_value_t = 4)]
    num_history_shards: i32,
    /// Run only these roles (comma-separated: frontend, history, matching, worker; Sundial
    /// only), each on its port of the dev layout (frontend `--port`, history +1, matching +2,
    /// worker +6), finding the others through the store's membership table. Every process of
    /// the deployment is started with the same `--port` and store.
    #[arg(long, value_delimiter = ',')]
    services: Vec<String>,
    /// Dynamic config as `KEY=VALUE` (repeatable; VALUE is YAML/JSON), as `temporal server
    /// start-dev` accepts it.
    #[arg(long = "dynamic-config-value", value_name = "KEY=VALUE")]
    dynamic_config_values: Vec<String>,
    /// A dynamic-config file in Temporal's layout.
    #[arg(long, env = "DYNAMIC_CONFIG_FILE_PATH")]
    dynamic_config_file: Option<PathBuf>,
    /// Accepted for compatibility with `temporal server start-dev` (Sundial has no UI).
    #[arg(long, hide = true)]
    headless: bool,
}

#[derive(clap::Args)]
struct Start {
    /// Config file (Temporal's YAML layout).
    #[arg(short = 'c', long)]
    config: PathBuf,
    /// Roles to run (comma-separated: frontend, history, matching, worker), each on its own
    /// `services.<role>.rpc` port, finding the others through the store's membership table.
    /// When absent, every role runs in this process behind the frontend's port.
    #[arg(long, env = "SERVICES", value_delimiter = ',')]
    services: Vec<String>,
    /// Log level, overriding the config.
    #[arg(long, env = "LOG_LEVEL")]
    log_level: Option<String>,
    /// Create the database and set up or update its schema before serving (development, as
    /// Temporal's auto-setup image does).
    #[arg(long)]
    auto_setup: bool,
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

/// The namespaces a node creates at startup, with the search attributes to register in each.
#[derive(Default)]
struct NamespaceSetup {
    names: Vec<String>,
    search_attributes: std::collections::HashMap<String, i32>,
}

/// `KEY=TYPE` search-attribute flags to a map of name → `IndexedValueType`.
fn parse_search_attributes(flags: &[String]) -> Result<std::collections::HashMap<String, i32>> {
    use sundial_engine::api::enums::v1::IndexedValueType;
    use sundial_engine::search_attributes::{FIELDS_PER_TYPE, type_name};
    flags
        .iter()
        .map(|flag| {
            let (key, kind) = flag
                .split_once('=')
                .with_context(|| format!("--search-attribute {flag:?}: expected KEY=TYPE"))?;
            let value_type: IndexedValueType = FIELDS_PER_TYPE
                .iter()
                .map(|(t, _)| *t)
                .find(|t| type_name(*t).eq_ignore_ascii_case(kind.trim()))
                .with_context(|| format!("--search-attribute {flag:?}: unknown type {kind:?}"))?;
            Ok((key.trim().to_string(), value_type as i32))
        })
        .collect()
}

/// Records the cluster in a new store, or checks a used one was set up with `shards` history
/// shards: workflows are placed on shards by their number, so serving a store with another
/// count would lose sight of its workflows. Temporal refuses it too. Answers the cluster's id.
async fn check_shard_count(store: &DynStore, shards: i32, setting: &str) -> Result<String> {
    let proposed = sundial_storage::ClusterMetadataRow {
        cluster_name: unsupported::CLUSTER_NAME.to_string(),
        cluster_id: uuid::Uuid::new_v4().to_string(),
        history_shard_count: shards,
    };
    let stored = store
        .cluster_metadata(proposed)
        .await
        .context("reading the cluster metadata of the store")?;
    if stored.history_shard_count != shards {
        bail!(
            "{setting} is {shards}, but this store was set up with {stored} history shards; \
             workflows are placed on shards by that number, so it cannot change: start with \
             {setting} {stored}, or use a new store",
            stored = stored.history_shard_count
        );
    }
    Ok(stored.cluster_id)
}

/// Where a process serves: every role behind one frontend port, or the roles `--services`
/// names, each on its own port.
enum Layout {
    /// Every role in this process; the frontend listens here.
    Single(String),
    /// Only these roles, each on its own port.
    Roles(Vec<roles::Role>),
}

/// How often a process that runs only some roles re-reads the namespaces, which the frontends
/// of other processes create and change (Temporal's namespace registry refreshes likewise).
const NAMESPACE_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

async fn run(
    store: DynStore,
    (shards, shards_setting): (i32, &str),
    layout: Layout,
    namespaces: NamespaceSetup,
    log: Logger,
    observe: telemetry::Settings,
    dynamic_config: dynamic::Source,
) -> Result<()> {
    let cluster_id = check_shard_count(&store, shards, shards_setting).await?;
    // A process of a deployment names its roles on every line it logs.
    let log = match &layout {
        Layout::Single(_) => log,
        Layout::Roles(roles) => {
            let names: Vec<&str> = roles.iter().map(|r| r.role.as_str()).collect();
            log.new(slog::o!("services" => names.join(",")))
        }
    };
    // Bind before taking any shard: a second server on the same store must fail here, not
    // after it has fenced the shards of the one already serving.
    let listeners = match &layout {
        Layout::Single(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            sundial_transport::RoleListeners {
                frontend: Some(listener),
                ..Default::default()
            }
        }
        Layout::Roles(roles) => roles::bind(roles).await?,
    };
    let (telemetry, exporters) = telemetry::start(&observe, &log).await?;
    let roles = match &layout {
        Layout::Single(_) => Vec::new(),
        Layout::Roles(roles) => roles.iter().map(|r| r.role.as_str()).collect(),
    };
    let store = telemetry.instrument_store(store, roles);
    let clock: Arc<dyn sundial_actors::Clock> = Arc::new(SystemClock);
    let mut departure = None;
    let node = match &layout {
        Layout::Single(address) => {
            // One process: its history is reached where its frontend is.
            let placement = sundial_actors::Placement {
                address: address.clone(),
                ..Default::default()
            };
            Node::start_services(
                store.clone(),
                shards,
                log.clone(),
                clock,
                telemetry,
                placement,
            )
        }
        Layout::Roles(roles) => {
            let (placement, joined) =
                roles::join(&store, clock.clone(), roles, &cluster_id, &log).await?;
            let node =
                Node::start_services(store, shards, log.clone(), clock, telemetry, placement);
            departure = Some(joined.keep_current(&node, &log));
            node
        }
    };
    dynamic::watch(dynamic_config, node.history.clone(), log.clone())?;
    // Every namespace's retention must be known before a shard closes a run.
    node.namespaces
        .load_all()
        .await
        .context("reading the namespaces")?;
    let serves_frontend = listeners.frontend.is_some();
    if serves_frontend {
        for ns in std::iter::once("default".to_string()).chain(namespaces.names) {
            sundial_transport::ensure_namespace(&node.namespaces, &ns)
                .await
                .with_context(|| format!("creating namespace {ns}"))?;
            if !namespaces.search_attributes.is_empty() {
                node.namespaces
                    .add_search_attributes(&ns, &namespaces.search_attributes)
                    .await
                    .with_context(|| format!("registering search attributes in {ns}"))?;
            }
        }
        node.namespaces
            .index_search_attributes()
            .await
            .context("indexing the custom search attributes")?;
    }
    match layout {
        Layout::Single(_) => {
            let listener = listeners.frontend.expect("bound above");
            let local = listener.local_addr()?;
            info!(log, "Sundial is serving the Temporal API"; "address" => %local);
            println!("Sundial listening on {local} (namespace: default)");
            sundial_transport::serve(listener, node.clone(), shutdown_signal()).await?;
        }
        Layout::Roles(roles) => {
            let namespaces = node.namespaces.clone();
            let refresh_log = log.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(NAMESPACE_REFRESH);
                loop {
                    ticks.tick().await;
                    if let Err(e) = namespaces.load_all().await {
                        warn!(refresh_log, "cannot re-read the namespaces"; "error" => %e);
                    }
                }
            });
            for role in &roles {
                info!(log, "serving"; "role" => %role.role, "address" => &role.bind,
                    "advertised" => &role.advertised);
            }
            let names: Vec<String> = roles
                .iter()
                .map(|r| format!("{} on {}", r.role, r.bind))
                .collect();
            println!("Sundial serving {}", names.join(", "));
            // A planned stop leaves the cluster first: the others take this process's shards
            // while its servers still answer (naming the new owners), then they stop.
            let stopping = async move {
                shutdown_signal().await;
                if let Some(departure) = departure {
                    departure.leave().await;
                }
            };
            sundial_transport::serve_roles(listeners, node.clone(), stopping).await?;
        }
    }
    info!(log, "shut down");
    node.stop();
    exporters.shutdown();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run_command(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sundial: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Server {
            command: ServerCommand::StartDev(args),
        } => start_dev(args).await,
        Command::Server {
            command: ServerCommand::Start(args),
        } => start(args).await,
        Command::Schema { command } => {
            let (action, args) = match command {
                SchemaCommand::Setup(args) => (schema::Action::Setup, args),
                SchemaCommand::Update(args) => (schema::Action::Update, args),
                SchemaCommand::Version(args) => (schema::Action::Version, args),
            };
            let config = Config::load(&args.config)?;
            let datastore = Datastore::from_config(&config, args.datastore.as_deref())?;
            println!("{}", schema::run(action, &datastore).await?);
            Ok(())
        }
        Command::Cluster {
            command: ClusterCommand::Members(args),
        } => {
            let datastore = match (&args.config, &args.database_url, args.db_filename) {
                (Some(file), _, _) => {
                    Datastore::from_config(&Config::load(file)?, args.datastore.as_deref())?
                }
                (None, Some(url), _) => Datastore::dev_url(url)?,
                (None, None, Some(file)) => {
                    if !file.exists() {
                        bail!("cluster members: {} does not exist", file.display());
                    }
                    Datastore::dev(Some(file))
                }
                (None, None, None) => {
                    bail!(
                        "cluster members: name the store: --config FILE, --db-filename or --database-url"
                    )
                }
            };
            let store = datastore.open(false).await?;
            let now = sundial_actors::Clock::now_ms(&SystemClock);
            print!("{}", cluster::members(&store, now).await?);
            Ok(())
        }
    }
}

/// `sundial server start-dev`.
async fn start_dev(args: StartDev) -> Result<()> {
    let log = telemetry::logger(&args.log_level, &args.log_format, &LogOutput::Stderr)?;
    let layout = if args.services.is_empty() {
        Layout::Single(format!("{}:{}", args.ip, args.port))
    } else {
        if args.db_filename.is_none() && args.database_url.is_none() {
            bail!(
                "--services: the processes of a deployment share one store; give each the same \
                 --db-filename or --database-url"
            );
        }
        let dev = Config::dev(&args.ip, args.port, None);
        Layout::Roles(roles::plan(&dev, &args.services, "the dev config")?)
    };
    let store = match &args.database_url {
        Some(url) => Datastore::dev_url(url)?.open(true).await?,
        None => Datastore::dev(args.db_filename).open(false).await?,
    };
    let observe = telemetry::Settings {
        metrics_address: args
            .metrics_port
            .map(|port| telemetry::metrics_address(&args.ip, port)),
        otlp_endpoint: telemetry::otlp_endpoint(None),
    };
    let namespaces = NamespaceSetup {
        names: args.namespace,
        search_attributes: parse_search_attributes(&args.search_attributes)?,
    };
    let dynamic_config = dynamic::Source {
        file: args.dynamic_config_file,
        overrides: args.dynamic_config_values,
        poll_interval: std::time::Duration::from_secs(10),
    };
    run(
        store,
        (args.num_history_shards, "--num-history-shards"),
        layout,
        namespaces,
        log,
        observe,
        dynamic_config,
    )
    .await
}

/// `sundial server start --config FILE`: refuses what it cannot honour before it opens
/// anything, names in warnings what it parsed but does not use, and serves only from the store
/// the config names.
async fn start(args: Start) -> Result<()> {
    let config = Config::load(&args.config)?;
    unsupported::refuse(&config)?;
    let datastore = Datastore::from_config(&config, None)?;
    let layout = if args.services.is_empty() {
        let frontend = config.service("frontend").context(
            "services.frontend: required (without --services every role runs behind it)",
        )?;
        Layout::Single(format!("{}:{}", frontend.bind_ip(), frontend.rpc.grpc_port))
    } else {
        let file = args.config.display().to_string();
        Layout::Roles(roles::plan(&config, &args.services, &file)?)
    };

    let level = args
        .log_level
        .unwrap_or_else(|| config.log.level.as_str().to_string());
    let format = match config.log.format {
        sundial_config::LogFormat::Console => "console",
        sundial_config::LogFormat::Json => "json",
    };
    let log = telemetry::logger(&level, format, &LogOutput::of(&config.log))?;
    let unused = unsupported::warnings(&config, &datastore.name, &args.services);
    for setting in unused.iter().chain(&datastore.unused) {
        warn!(log, "config setting has no effect"; "setting" => setting);
    }

    let store = datastore.open(args.auto_setup).await?;
    info!(log, "opened the store"; "datastore" => %datastore);
    let observe = telemetry::Settings {
        metrics_address: config
            .global
            .metrics
            .as_ref()
            .and_then(|m| m.prometheus.as_ref())
            .map(|p| p.listen_address.clone()),
        otlp_endpoint: telemetry::otlp_endpoint(config.otel.as_ref().map(|o| o.endpoint.as_str())),
    };
    let dynamic_config = dynamic::Source {
        file: std::env::var_os("DYNAMIC_CONFIG_FILE_PATH")
            .map(PathBuf::from)
            .or_else(|| {
                config
                    .dynamic_config_client
                    .as_ref()
                    .map(|d| d.filepath.clone())
            }),
        overrides: Vec::new(),
        poll_interval: config
            .dynamic_config_client
            .as_ref()
            .map_or(std::time::Duration::from_secs(10), |d| d.poll_interval),
    };
    run(
        store,
        (
            config.persistence.num_history_shards as i32,
            "persistence.numHistoryShards",
        ),
        layout,
        NamespaceSetup::default(),
        log,
        observe,
        dynamic_config,
    )
    .await
}
