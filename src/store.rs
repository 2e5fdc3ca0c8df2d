//! The store a datastore of the config names, and opening it.
//!
//! Strict by design: `pluginName` picks the backend and nothing else does; every `sql` key is
//! handed to that backend or refused with its config path; a store that cannot be opened is an
//! error naming the datastore, where it is and why. There is no fallback: a node serving from a
//! store other than the one its config names would acknowledge work that the rest of the
//! deployment never sees.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sundial_config::{Config, DataStore, Sql, SqlPlugin, SqlTls};
use sundial_storage::memory::MemoryStore;
use sundial_storage::mysql::{self, MysqlOptions, MysqlStore};
use sundial_storage::postgres::{self, PostgresOptions, PostgresStore};
use sundial_storage::sqlite::SqliteStore;
use sundial_storage::{DynStore, Store};

/// The backend a datastore names, with its options.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Nothing kept past the process (`sqlite` with `connectAttributes.mode: memory`).
    Memory,
    /// A SQLite file; `create`: made when missing (mode `rwc`), else it must exist (`rw`).
    Sqlite { path: PathBuf, create: bool },
    /// `postgres12` or `postgres12_pgx`.
    Postgres(PostgresOptions),
    /// `mysql8`.
    Mysql(MysqlOptions),
}

/// One datastore of the config, checked and ready to open.
#[derive(Debug, Clone)]
pub struct Datastore {
    /// Its key under `persistence.datastores`.
    pub name: String,
    /// The backend and its options.
    pub backend: Backend,
    /// Keys the backend does not use, by path, for the start-up warning.
    pub unused: Vec<String>,
    /// `persistence.datastores.<name>.sql`, when it comes from a config file.
    config_path: Option<String>,
}

impl Datastore {
    /// The datastore `name` (the default store when `None`) of `config`: a key its backend
    /// cannot honour, a Cassandra store or an unknown name is an error naming its path.
    pub fn from_config(config: &Config, name: Option<&str>) -> Result<Datastore> {
        let persistence = &config.persistence;
        let name = name.unwrap_or(&persistence.default_store);
        let Some(store) = persistence.datastores.get(name) else {
            let known: Vec<&str> = persistence.datastores.keys().map(String::as_str).collect();
            bail!(
                "no datastore {name:?} in persistence.datastores (it has: {})",
                known.join(", ")
            );
        };
        let path = format!("persistence.datastores.{name}");
        let sql = match store {
            DataStore { sql: Some(sql), .. } => sql,
            DataStore {
                cassandra: Some(_), ..
            } => bail!(
                "{path}.cassandra: Cassandra is not supported yet; use a sql datastore \
                 (pluginName postgres12, postgres12_pgx, mysql8 or sqlite)"
            ),
            DataStore { .. } => bail!(
                "{path}.elasticsearch: Elasticsearch holds only visibility records, which Sundial \
                 does not keep yet; the store opened must be a sql datastore"
            ),
        };
        let path = format!("{path}.sql");
        let mut unused = unused_tls_keys(&path, sql.tls.as_ref());
        let backend = match sql.plugin_name {
            SqlPlugin::Sqlite => sqlite(&path, sql, &mut unused)?,
            SqlPlugin::Postgres12 | SqlPlugin::Postgres12Pgx => {
                Backend::Postgres(postgres_options(&path, sql)?)
            }
            SqlPlugin::Mysql8 => Backend::Mysql(mysql_options(&path, sql)?),
        };
        Ok(Datastore {
            name: name.to_string(),
            backend,
            unused,
            config_path: Some(path),
        })
    }

    /// A datastore for `sundial server start-dev`: a SQLite file, or memory.
    pub fn dev(file: Option<PathBuf>) -> Datastore {
        let backend = match file {
            Some(path) => Backend::Sqlite { path, create: true },
            None => Backend::Memory,
        };
        Datastore {
            name: sundial_config::DEV_DATASTORE.to_string(),
            backend,
            unused: Vec::new(),
            config_path: None,
        }
    }

    /// A datastore for `sundial server start-dev --database-url`:
    /// `postgres://user:password@host:port/database` (or `postgresql://`) or `mysql://...`.
    pub fn dev_url(url: &str) -> Result<Datastore> {
        let bad = |why: &str| anyhow::anyhow!("--database-url {url:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://USER:PASSWORD@HOST:PORT/DATABASE"))?;
        let (credentials, rest) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("the user is missing (USER[:PASSWORD]@ before the host)"))?;
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (address, database) = rest
            .split_once('/')
            .filter(|(_, db)| !db.is_empty() && !db.contains(['/', '?']))
            .ok_or_else(|| bad("the database is missing (/DATABASE after the host)"))?;
        if user.is_empty() || address.is_empty() {
            return Err(bad("the user and the host must be set"));
        }
        let backend = match scheme {
            "postgres" | "postgresql" => Backend::Postgres(PostgresOptions {
                connect_addr: address.into(),
                database_name: database.into(),
                user: user.into(),
                password: password.into(),
                ..Default::default()
            }),
            "mysql" => Backend::Mysql(MysqlOptions {
                connect_addr: address.into(),
                database_name: database.into(),
                user: user.into(),
                password: password.into(),
                ..Default::default()
            }),
            other => {
                return Err(bad(&format!(
                    "unknown scheme {other:?} (postgres or mysql)"
                )));
            }
        };
        Ok(Datastore {
            name: sundial_config::DEV_DATASTORE.to_string(),
            backend,
            unused: Vec::new(),
            config_path: None,
        })
    }

    /// Opens the store. `auto_setup` first creates the database and sets up or updates its
    /// schema where the backend has a schema to manage (SQLite migrates itself at open).
    pub async fn open(&self, auto_setup: bool) -> Result<DynStore> {
        let opened = match (&self.backend, auto_setup) {
            (Backend::Memory, _) => Ok(shared(MemoryStore::new())),
            (Backend::Sqlite { path, create }, _) => {
                if !create && !path.exists() {
                    bail!(
                        "cannot open {self}: the file does not exist (connectAttributes.mode \
                         `rw` opens existing files only; `rwc` creates it)"
                    );
                }
                SqliteStore::open(path).map(shared)
            }
            (Backend::Postgres(options), false) => PostgresStore::open(options).await.map(shared),
            (Backend::Postgres(options), true) => PostgresStore::open_with_auto_setup(options)
                .await
                .map(shared),
            (Backend::Mysql(options), false) => MysqlStore::open(options).await.map(shared),
            (Backend::Mysql(options), true) => {
                MysqlStore::open_with_auto_setup(options).await.map(shared)
            }
        };
        opened.with_context(|| format!("cannot open {self}"))
    }
}

/// `store` behind the shared handle the node takes.
fn shared(store: impl Store + 'static) -> DynStore {
    Arc::new(store)
}

impl fmt::Display for Datastore {
    /// `datastore "name" (PostgreSQL at host:port, database "x", configured at
    /// persistence.datastores.name.sql)`, for messages: a key the backend refuses is named as
    /// it is spelt under that path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "datastore {:?} (", self.name)?;
        match &self.backend {
            Backend::Memory => write!(f, "SQLite in memory")?,
            Backend::Sqlite { path, .. } => write!(f, "SQLite file {}", path.display())?,
            Backend::Postgres(o) => write!(
                f,
                "PostgreSQL at {}, database {:?}",
                o.connect_addr, o.database_name
            )?,
            Backend::Mysql(o) => write!(
                f,
                "MySQL at {}, database {:?}",
                o.connect_addr, o.database_name
            )?,
        }
        if let Some(path) = &self.config_path {
            write!(f, ", configured at {path}")?;
        }
        write!(f, ")")
    }
}

/// The SQLite backend of `sql`. Its `connectAttributes` are Temporal's SQLite ones; the keys
/// that only a server needs (address, user, pool) go to `unused`.
fn sqlite(path: &str, sql: &Sql, unused: &mut Vec<String>) -> Result<Backend> {
    if sql.tls.as_ref().is_some_and(|tls| tls.enabled) {
        bail!("{path}.tls.enabled: SQLite is a local file: TLS does not apply");
    }
    let mut memory = false;
    let mut create = true;
    for (key, value) in &sql.connect_attributes {
        let key_path = format!("{path}.connectAttributes.{key}");
        match (key.as_str(), value.as_str()) {
            ("mode", "memory") => memory = true,
            ("mode", "rwc") => create = true,
            ("mode", "rw") => create = false,
            ("mode", "ro") => bail!("{key_path}: read-only databases are not supported"),
            ("mode", other) => bail!("{key_path}: {other:?} is not memory, rwc or rw"),
            // One process owns the database, so the cache is its own.
            ("cache", "private") => {}
            ("cache", other) => bail!("{key_path}: {other:?} is not supported (private is)"),
            // The schema is always set up (or updated) when the file is opened.
            ("setup", "true") => {}
            ("setup", other) => {
                bail!("{key_path}: {other:?}: SQLite's schema is always set up at open (true)")
            }
            _ => bail!("{key_path}: not a SQLite attribute Sundial supports (mode, cache, setup)"),
        }
    }
    let server_keys = [
        ("connectAddr", !sql.connect_addr.is_empty()),
        ("connectProtocol", !sql.connect_protocol.is_empty()),
        ("user", !sql.user.is_empty()),
        ("password", !sql.password.is_empty()),
        ("maxConns", sql.max_conns.is_some()),
        ("maxIdleConns", sql.max_idle_conns.is_some()),
        ("maxConnLifetime", sql.max_conn_lifetime.is_some()),
    ];
    unused.extend(
        server_keys
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(key, _)| format!("{path}.{key}: not used by sqlite")),
    );
    Ok(if memory {
        if !sql.database_name.is_empty() {
            unused.push(format!(
                "{path}.databaseName: not used by sqlite in memory mode"
            ));
        }
        Backend::Memory
    } else {
        Backend::Sqlite {
            path: PathBuf::from(&sql.database_name),
            create,
        }
    })
}

/// The options struct `$module::$options` from the `sql` keys both server backends take,
/// plus `$extra` fields.
macro_rules! server_options {
    ($module:ident :: $options:ident, $sql:expr, { $($extra:tt)* }) => {{
        let sql: &Sql = $sql;
        let tls = sql.tls.clone().unwrap_or_default();
        $module::$options {
            connect_addr: sql.connect_addr.clone(),
            database_name: sql.database_name.clone(),
            user: sql.user.clone(),
            password: sql.password.clone(),
            max_conns: count(sql.max_conns),
            max_idle_conns: count(sql.max_idle_conns),
            max_conn_lifetime: sql.max_conn_lifetime.unwrap_or(Duration::ZERO),
            connect_attributes: sql.connect_attributes.clone(),
            tls: $module::TlsOptions {
                enabled: tls.enabled,
                ca_file: tls.ca_file,
                cert_file: tls.cert_file,
                key_file: tls.key_file,
                enable_host_verification: tls.enable_host_verification,
                server_name: tls.server_name,
            },
            $($extra)*
        }
    }};
}

/// The PostgreSQL options of `sql`. The backend checks them when it opens the store, naming
/// the key it refuses (`tls.enabled`, `connectAttributes.x`); `connectProtocol` is checked here,
/// as the backend has no such option.
fn postgres_options(path: &str, sql: &Sql) -> Result<PostgresOptions> {
    match sql.connect_protocol.as_str() {
        "" | "tcp" => {}
        "unix" => bail!(
            "{path}.connectProtocol: unix sockets are not supported for PostgreSQL yet (use tcp)"
        ),
        other => bail!("{path}.connectProtocol: {other:?} is not tcp"),
    }
    Ok(server_options!(postgres::PostgresOptions, sql, {}))
}

/// The MySQL options of `sql`, every key checked by the backend here, before anything opens.
fn mysql_options(path: &str, sql: &Sql) -> Result<MysqlOptions> {
    let options = server_options!(mysql::MysqlOptions, sql, {
        connect_protocol: sql.connect_protocol.clone(),
    });
    if let Err(refused) = options.check() {
        bail!("{path}.{}: {}", refused.key, refused.reason);
    }
    Ok(options)
}

/// A pool size from the config (`None`: the backend's default, which the options spell 0).
fn count(configured: Option<u32>) -> usize {
    configured.map_or(0, |n| n as usize)
}

/// The `tls` keys set while `tls.enabled` is false, which nothing reads (as in Temporal).
fn unused_tls_keys(path: &str, tls: Option<&SqlTls>) -> Vec<String> {
    let Some(tls) = tls.filter(|tls| !tls.enabled) else {
        return Vec::new();
    };
    [
        ("caFile", tls.ca_file.is_some()),
        ("certFile", tls.cert_file.is_some()),
        ("keyFile", tls.key_file.is_some()),
        ("enableHostVerification", tls.enable_host_verification),
        ("serverName", tls.server_name.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(key, _)| format!("{path}.tls.{key}: not used while tls.enabled is false"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_names_the_backend_and_its_options() {
        let pg = Datastore::dev_url("postgres://u:p%w@127.0.0.1:5433/dev").unwrap();
        let Backend::Postgres(o) = pg.backend else {
            panic!("{pg:?}")
        };
        assert_eq!(
            (
                o.user.as_str(),
                o.password.as_str(),
                o.connect_addr.as_str()
            ),
            ("u", "p%w", "127.0.0.1:5433")
        );
        assert_eq!(o.database_name, "dev");
        let my = Datastore::dev_url("mysql://root@localhost:3306/x").unwrap();
        assert!(matches!(my.backend, Backend::Mysql(o) if o.password.is_empty()));
        for bad in [
            "127.0.0.1:5432/dev",
            "postgres://127.0.0.1:5432/dev",
            "postgres://u:p@127.0.0.1:5432",
            "postgres://u:p@127.0.0.1:5432/",
            "redis://u:p@127.0.0.1:6379/0",
        ] {
            let err = Datastore::dev_url(bad).unwrap_err().to_string();
            assert!(err.starts_with("--database-url"), "{bad}: {err}");
        }
    }

    fn config(sql: &str) -> Config {
        let yaml = format!(
            "persistence:
  defaultStore: db
  visibilityStore: db
  numHistoryShards: 1
  datastores:
    db:
      sql: {sql}
services:
  frontend: {{ rpc: {{ grpcPort: 7233, membershipPort: 6933 }} }}
"
        );
        Config::from_yaml_str(&yaml).unwrap()
    }

    fn refusal(sql: &str) -> String {
        let err = Datastore::from_config(&config(sql), None).unwrap_err();
        format!("{err:#}")
    }

    #[test]
    fn plugins_pick_their_backend() {
        let pg = config(
            "{ pluginName: postgres12_pgx, databaseName: t, connectAddr: 'h:1', user: u, maxConns: 3, maxConnLifetime: 1h }",
        );
        match Datastore::from_config(&pg, None).unwrap().backend {
            Backend::Postgres(o) => {
                assert_eq!((o.connect_addr.as_str(), o.max_conns), ("h:1", 3));
                assert_eq!(o.max_conn_lifetime, Duration::from_secs(3600));
            }
            other => panic!("{other:?}"),
        }
        let my = config("{ pluginName: mysql8, databaseName: t, connectAddr: 'h:1', user: u }");
        assert!(matches!(
            Datastore::from_config(&my, None).unwrap().backend,
            Backend::Mysql(_)
        ));
        let file = config("{ pluginName: sqlite, databaseName: a.db }");
        assert!(matches!(
            Datastore::from_config(&file, None).unwrap().backend,
            Backend::Sqlite { create: true, .. }
        ));
        let memory = config("{ pluginName: sqlite, connectAttributes: { mode: memory } }");
        assert!(matches!(
            Datastore::from_config(&memory, None).unwrap().backend,
            Backend::Memory
        ));
    }

    #[test]
    fn tls_is_handed_to_the_backends_and_refused_for_sqlite() {
        let pg = config(
            "{ pluginName: postgres12, databaseName: t, connectAddr: h, user: u,
               tls: { enabled: true, caFile: ca.pem, serverName: db.internal } }",
        );
        match Datastore::from_config(&pg, None).unwrap().backend {
            Backend::Postgres(o) => {
                assert!(o.tls.enabled);
                assert_eq!(o.tls.ca_file, Some(PathBuf::from("ca.pem")));
                assert_eq!(o.tls.server_name.as_deref(), Some("db.internal"));
            }
            other => panic!("{other:?}"),
        }
        let message = refusal("{ pluginName: sqlite, databaseName: t, tls: { enabled: true } }");
        assert!(
            message.starts_with("persistence.datastores.db.sql.tls.enabled: "),
            "{message}"
        );
    }

    #[test]
    fn refused_keys_name_their_path() {
        let cases = [
            (
                "{ pluginName: mysql8, databaseName: t, connectAddr: h, connectAttributes: { tls: 'true' } }",
                "persistence.datastores.db.sql.connectAttributes.tls: ",
            ),
            (
                "{ pluginName: mysql8, databaseName: t, connectAddr: h, connectProtocol: udp }",
                "persistence.datastores.db.sql.connectProtocol: ",
            ),
            (
                "{ pluginName: postgres12, databaseName: t, connectAddr: h, connectProtocol: unix }",
                "persistence.datastores.db.sql.connectProtocol: ",
            ),
            (
                "{ pluginName: sqlite, databaseName: a.db, connectAttributes: { mode: ro } }",
                "persistence.datastores.db.sql.connectAttributes.mode: ",
            ),
            (
                "{ pluginName: sqlite, databaseName: a.db, connectAttributes: { journal_mode: wal } }",
                "persistence.datastores.db.sql.connectAttributes.journal_mode: ",
            ),
        ];
        for (sql, prefix) in cases {
            let message = refusal(sql);
            assert!(message.starts_with(prefix), "{sql}: {message}");
        }
    }

    #[test]
    fn sqlite_names_the_server_keys_it_does_not_use() {
        let c = config(
            "{ pluginName: sqlite, databaseName: a.db, connectAddr: localhost, maxConns: 1,
               connectAttributes: { mode: rw, cache: private }, tls: { caFile: ca.pem } }",
        );
        let store = Datastore::from_config(&c, None).unwrap();
        assert!(matches!(
            store.backend,
            Backend::Sqlite { create: false, .. }
        ));
        assert_eq!(
            store.unused,
            [
                "persistence.datastores.db.sql.tls.caFile: not used while tls.enabled is false",
                "persistence.datastores.db.sql.connectAddr: not used by sqlite",
                "persistence.datastores.db.sql.maxConns: not used by sqlite",
            ]
        );
    }

    #[test]
    fn unknown_datastore_names_the_ones_there_are() {
        let c = config("{ pluginName: sqlite, databaseName: a.db }");
        let message = format!(
            "{:#}",
            Datastore::from_config(&c, Some("nope")).unwrap_err()
        );
        assert!(
            message.contains("\"nope\"") && message.contains("it has: db"),
            "{message}"
        );
    }

    #[test]
    fn elasticsearch_is_for_visibility_only() {
        let yaml = "persistence:
  defaultStore: db
  visibilityStore: es
  numHistoryShards: 1
  datastores:
    db: { sql: { pluginName: sqlite, databaseName: a.db } }
    es: { elasticsearch: { version: v7, url: { scheme: http, host: 'es:9200' } } }
services:
  frontend: { rpc: { grpcPort: 7233, membershipPort: 6933 } }
";
        let c = Config::from_yaml_str(yaml).unwrap();
        assert_eq!(Datastore::from_config(&c, None).unwrap().name, "db");
        let message = format!("{:#}", Datastore::from_config(&c, Some("es")).unwrap_err());
        assert!(
            message.starts_with("persistence.datastores.es.elasticsearch: "),
            "{message}"
        );
    }

    #[test]
    fn cassandra_is_refused() {
        let yaml = "persistence:
  defaultStore: c
  visibilityStore: c
  numHistoryShards: 1
  datastores:
    c: { cassandra: { hosts: h, keyspace: k } }
services:
  frontend: { rpc: { grpcPort: 7233, membershipPort: 6933 } }
";
        let c = Config::from_yaml_str(yaml).unwrap();
        let message = format!("{:#}", Datastore::from_config(&c, None).unwrap_err());
        assert!(
            message
                .starts_with("persistence.datastores.c.cassandra: Cassandra is not supported yet"),
            "{message}"
        );
    }
}
