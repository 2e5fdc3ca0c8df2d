//! `persistence`: the named datastores and which one holds what.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Datastores and shard count, Temporal's `persistence` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Persistence {
    /// Name (a key of `datastores`) of the store for executions, history, tasks and namespaces.
    pub default_store: String,
    /// Name (a key of `datastores`) of the store for visibility records; may equal
    /// `defaultStore`.
    pub visibility_store: String,
    /// Number of history shards. Fixed for the life of a cluster: changing it remaps every
    /// workflow to a different shard.
    pub num_history_shards: u32,
    /// Datastores by name.
    pub datastores: BTreeMap<String, DataStore>,
}

/// One datastore: exactly one of `sql`, `cassandra` or `elasticsearch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataStore {
    /// A SQL database (SQLite, PostgreSQL, MySQL).
    #[serde(default)]
    pub sql: Option<Sql>,
    /// A Cassandra cluster.
    #[serde(default)]
    pub cassandra: Option<Cassandra>,
    /// An Elasticsearch cluster, which Temporal uses for visibility records only. Kept as
    /// written, unchecked: Sundial has no visibility store, so it never reads these keys.
    #[serde(default)]
    pub elasticsearch: Option<serde_yaml::Value>,
}

/// A SQL datastore, Temporal's `persistence.datastores.<name>.sql`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sql {
    /// Which database and driver.
    pub plugin_name: SqlPlugin,
    /// Database name; for SQLite, the database file path (relative to the working directory).
    #[serde(default)]
    pub database_name: String,
    /// `host:port` of the server (PostgreSQL, MySQL); ignored by SQLite.
    #[serde(default)]
    pub connect_addr: String,
    /// `tcp` or `unix`; ignored by SQLite.
    #[serde(default)]
    pub connect_protocol: String,
    /// User name to log in with.
    #[serde(default)]
    pub user: String,
    /// Password for `user`.
    #[serde(default)]
    pub password: String,
    /// Driver options passed through with the connection. For SQLite, `mode: memory` keeps
    /// the database in memory (lost on exit) and needs no `databaseName`.
    #[serde(default)]
    pub connect_attributes: BTreeMap<String, String>,
    /// Most connections open at once; `None` uses the backend's default.
    #[serde(default)]
    pub max_conns: Option<u32>,
    /// Most idle connections kept open; `None` uses the backend's default.
    #[serde(default)]
    pub max_idle_conns: Option<u32>,
    /// Close and reopen a connection after it has been open this long; `None` never does.
    #[serde(default, with = "crate::duration::option")]
    pub max_conn_lifetime: Option<Duration>,
    /// TLS to the database server; absent means plaintext.
    #[serde(default)]
    pub tls: Option<SqlTls>,
}

/// TLS to a SQL server, Temporal's `persistence.datastores.<name>.sql.tls`. The other keys
/// apply only when `enabled` is true.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlTls {
    /// Connect over TLS.
    #[serde(default)]
    pub enabled: bool,
    /// PEM CA certificates trusted to sign the server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate presented to the server.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `certFile`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Check that the server's certificate names the host dialed (or `serverName`).
    #[serde(default)]
    pub enable_host_verification: bool,
    /// Name expected in the server's certificate; `None` uses the host of `connectAddr`.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl Sql {
    /// True for a SQLite database that lives only in memory (`connectAttributes.mode: memory`).
    pub fn is_in_memory(&self) -> bool {
        self.plugin_name == SqlPlugin::Sqlite
            && self.connect_attributes.get("mode").map(String::as_str) == Some("memory")
    }
}

/// The SQL plugins Temporal names, and so the values `pluginName` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlPlugin {
    /// Embedded SQLite.
    #[serde(rename = "sqlite")]
    Sqlite,
    /// PostgreSQL 12 or later.
    #[serde(rename = "postgres12")]
    Postgres12,
    /// PostgreSQL 12 or later (Temporal's pgx driver; same database for Sundial).
    #[serde(rename = "postgres12_pgx")]
    Postgres12Pgx,
    /// MySQL 8.
    #[serde(rename = "mysql8")]
    Mysql8,
}

impl SqlPlugin {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            SqlPlugin::Sqlite => "sqlite",
            SqlPlugin::Postgres12 => "postgres12",
            SqlPlugin::Postgres12Pgx => "postgres12_pgx",
            SqlPlugin::Mysql8 => "mysql8",
        }
    }

    /// True for either PostgreSQL plugin.
    pub fn is_postgres(self) -> bool {
        matches!(self, SqlPlugin::Postgres12 | SqlPlugin::Postgres12Pgx)
    }
}

impl fmt::Display for SqlPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Cassandra datastore, Temporal's `persistence.datastores.<name>.cassandra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cassandra {
    /// Comma-separated contact points, e.g. `10.0.0.1,10.0.0.2`.
    pub hosts: String,
    /// CQL native port; `None` means 9042.
    #[serde(default)]
    pub port: Option<u16>,
    /// Keyspace holding Sundial's tables.
    pub keyspace: String,
    /// User name to log in with; empty means no authentication.
    #[serde(default)]
    pub user: String,
    /// Password for `user`.
    #[serde(default)]
    pub password: String,
    /// Only talk to nodes in this datacenter; empty means any.
    #[serde(default)]
    pub datacenter: String,
    /// Most connections per host; `None` uses the driver's default.
    #[serde(default)]
    pub max_conns: Option<u32>,
    /// Consistency levels; `None` means `local_quorum` / `local_serial`.
    #[serde(default)]
    pub consistency: Option<CassandraConsistency>,
}

impl Cassandra {
    /// The contact points in `hosts`, trimmed, empty entries dropped.
    pub fn host_list(&self) -> Vec<&str> {
        self.hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .collect()
    }
}

/// Temporal's `cassandra.consistency` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CassandraConsistency {
    /// Levels used by every store.
    #[serde(default)]
    pub default: Option<CassandraConsistencySettings>,
}

/// Consistency levels for regular and lightweight-transaction queries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CassandraConsistencySettings {
    /// Level for regular queries (`one`, `quorum`, `local_quorum`, ...; any case); `None`
    /// means `local_quorum`.
    #[serde(default)]
    pub consistency: Option<String>,
    /// Level for the serial phase of lightweight transactions (`serial` or `local_serial`);
    /// `None` means `local_serial`.
    #[serde(default)]
    pub serial_consistency: Option<String>,
}

const CONSISTENCY_LEVELS: &[&str] = &[
    "any",
    "one",
    "two",
    "three",
    "quorum",
    "all",
    "local_quorum",
    "each_quorum",
    "local_one",
];
const SERIAL_CONSISTENCY_LEVELS: &[&str] = &["serial", "local_serial"];

impl Persistence {
    /// The datastore named by `defaultStore`, if it exists.
    pub fn default_datastore(&self) -> Option<&DataStore> {
        self.datastores.get(&self.default_store)
    }

    /// The datastore named by `visibilityStore`, if it exists.
    pub fn visibility_datastore(&self) -> Option<&DataStore> {
        self.datastores.get(&self.visibility_store)
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), Error> {
        for (key, name) in [
            ("defaultStore", &self.default_store),
            ("visibilityStore", &self.visibility_store),
        ] {
            if !self.datastores.contains_key(name) {
                let known: Vec<&str> = self.datastores.keys().map(String::as_str).collect();
                return Err(Error::validation(
                    format!("{path}.{key}"),
                    format!(
                        "{name:?} names no datastore (datastores: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        if self.num_history_shards < 1 {
            return Err(Error::validation(
                format!("{path}.numHistoryShards"),
                "must be at least 1",
            ));
        }
        for (name, store) in &self.datastores {
            store.validate(&format!("{path}.datastores.{name}"))?;
        }
        Ok(())
    }
}

impl DataStore {
    fn validate(&self, path: &str) -> Result<(), Error> {
        let kinds = [
            self.sql.is_some(),
            self.cassandra.is_some(),
            self.elasticsearch.is_some(),
        ];
        match kinds.iter().filter(|set| **set).count() {
            1 => {}
            0 => {
                return Err(Error::validation(
                    path,
                    "set exactly one of sql, cassandra or elasticsearch",
                ));
            }
            _ => {
                return Err(Error::validation(
                    path,
                    "set exactly one of sql, cassandra or elasticsearch, not several",
                ));
            }
        }
        match (&self.sql, &self.cassandra) {
            (Some(sql), _) => sql.validate(&format!("{path}.sql")),
            (_, Some(cassandra)) => cassandra.validate(&format!("{path}.cassandra")),
            (None, None) => Ok(()),
        }
    }
}

impl Sql {
    fn validate(&self, path: &str) -> Result<(), Error> {
        let needs_database_name = !self.is_in_memory();
        if needs_database_name && self.database_name.is_empty() {
            let why = if self.plugin_name == SqlPlugin::Sqlite {
                "required for sqlite unless connectAttributes.mode is \"memory\""
            } else {
                "required"
            };
            return Err(Error::validation(format!("{path}.databaseName"), why));
        }
        if self.plugin_name != SqlPlugin::Sqlite && self.connect_addr.is_empty() {
            return Err(Error::validation(
                format!("{path}.connectAddr"),
                format!("required for {}", self.plugin_name),
            ));
        }
        if self.max_conns == Some(0) {
            return Err(Error::validation(
                format!("{path}.maxConns"),
                "must be at least 1 (omit it for the default)",
            ));
        }
        Ok(())
    }
}

impl Cassandra {
    fn validate(&self, path: &str) -> Result<(), Error> {
        if self.host_list().is_empty() {
            return Err(Error::validation(
                format!("{path}.hosts"),
                "needs at least one host",
            ));
        }
        if self.keyspace.is_empty() {
            return Err(Error::validation(format!("{path}.keyspace"), "required"));
        }
        if self.port == Some(0) {
            return Err(Error::validation(format!("{path}.port"), "must not be 0"));
        }
        let settings = self.consistency.as_ref().and_then(|c| c.default.as_ref());
        if let Some(settings) = settings {
            let path = format!("{path}.consistency.default");
            check_level(
                &path,
                "consistency",
                &settings.consistency,
                CONSISTENCY_LEVELS,
            )?;
            check_level(
                &path,
                "serialConsistency",
                &settings.serial_consistency,
                SERIAL_CONSISTENCY_LEVELS,
            )?;
        }
        Ok(())
    }
}

fn check_level(path: &str, key: &str, level: &Option<String>, known: &[&str]) -> Result<(), Error> {
    match level {
        Some(level) if !known.contains(&level.to_ascii_lowercase().as_str()) => {
            Err(Error::validation(
                format!("{path}.{key}"),
                format!(
                    "unknown level {level:?}; expected one of {}",
                    known.join(", ")
                ),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persistence(yaml: &str) -> Persistence {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn validate(yaml: &str) -> Result<(), Error> {
        persistence(yaml).validate("persistence")
    }

    fn error_path(yaml: &str) -> String {
        validate(yaml).unwrap_err().path().unwrap().to_owned()
    }

    const SQLITE_MEMORY: &str = r#"
defaultStore: db
visibilityStore: db
numHistoryShards: 4
datastores:
  db:
    sql: { pluginName: sqlite, connectAttributes: { mode: memory } }
"#;

    #[test]
    fn in_memory_sqlite_needs_no_database_name() {
        validate(SQLITE_MEMORY).unwrap();
        let p = persistence(SQLITE_MEMORY);
        assert!(
            p.default_datastore()
                .unwrap()
                .sql
                .as_ref()
                .unwrap()
                .is_in_memory()
        );
    }

    #[test]
    fn default_store_must_name_a_datastore() {
        let yaml = SQLITE_MEMORY.replace("defaultStore: db", "defaultStore: nope");
        assert_eq!(error_path(&yaml), "persistence.defaultStore");
        assert!(
            validate(&yaml)
                .unwrap_err()
                .to_string()
                .contains("\"nope\"")
        );
    }

    #[test]
    fn visibility_store_must_name_a_datastore() {
        let yaml = SQLITE_MEMORY.replace("visibilityStore: db", "visibilityStore: vis");
        assert_eq!(error_path(&yaml), "persistence.visibilityStore");
    }

    #[test]
    fn num_history_shards_at_least_one() {
        let yaml = SQLITE_MEMORY.replace("numHistoryShards: 4", "numHistoryShards: 0");
        assert_eq!(error_path(&yaml), "persistence.numHistoryShards");
    }

    #[test]
    fn sqlite_file_needs_database_name() {
        let yaml = SQLITE_MEMORY.replace("mode: memory", "mode: rwc");
        assert_eq!(
            error_path(&yaml),
            "persistence.datastores.db.sql.databaseName"
        );
    }

    #[test]
    fn postgres_needs_connect_addr_and_database_name() {
        let base = SQLITE_MEMORY.replace(
            "{ pluginName: sqlite, connectAttributes: { mode: memory } }",
            "{ pluginName: postgres12, databaseName: temporal, connectAddr: '127.0.0.1:5432' }",
        );
        validate(&base).unwrap();
        let no_addr = base.replace(", connectAddr: '127.0.0.1:5432'", "");
        assert_eq!(
            error_path(&no_addr),
            "persistence.datastores.db.sql.connectAddr"
        );
        let no_db = base.replace("databaseName: temporal, ", "");
        assert_eq!(
            error_path(&no_db),
            "persistence.datastores.db.sql.databaseName"
        );
    }

    #[test]
    fn sql_tls_keys_parse() {
        let yaml = SQLITE_MEMORY.replace(
            "{ pluginName: sqlite, connectAttributes: { mode: memory } }",
            "{ pluginName: postgres12, databaseName: t, connectAddr: db,
               tls: { enabled: true, caFile: ca.pem, certFile: c.pem, keyFile: c.key,
                      enableHostVerification: true, serverName: db.internal } }",
        );
        validate(&yaml).unwrap();
        let p = persistence(&yaml);
        let tls = p.datastores["db"]
            .sql
            .as_ref()
            .unwrap()
            .tls
            .clone()
            .unwrap();
        assert!(tls.enabled && tls.enable_host_verification);
        assert_eq!(tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("db.internal"));
    }

    #[test]
    fn mysql_needs_connect_addr() {
        let yaml = SQLITE_MEMORY.replace(
            "{ pluginName: sqlite, connectAttributes: { mode: memory } }",
            "{ pluginName: mysql8, databaseName: temporal }",
        );
        assert_eq!(
            error_path(&yaml),
            "persistence.datastores.db.sql.connectAddr"
        );
    }

    #[test]
    fn datastore_needs_exactly_one_backend() {
        let neither = SQLITE_MEMORY.replace(
            "sql: { pluginName: sqlite, connectAttributes: { mode: memory } }",
            "{}",
        );
        assert_eq!(error_path(&neither), "persistence.datastores.db");
        let both = SQLITE_MEMORY.replace(
            "sql: { pluginName: sqlite, connectAttributes: { mode: memory } }",
            "{ sql: { pluginName: sqlite, connectAttributes: { mode: memory } },
               cassandra: { hosts: h, keyspace: k } }",
        );
        assert_eq!(error_path(&both), "persistence.datastores.db");
        let elasticsearch = SQLITE_MEMORY.replace(
            "sql: { pluginName: sqlite, connectAttributes: { mode: memory } }",
            "{ elasticsearch: { version: v7, url: { scheme: http, host: 'es:9200' },
               indices: { visibility: temporal_visibility_v1 } } }",
        );
        validate(&elasticsearch).unwrap();
        let with_sql = elasticsearch.replace(
            "{ elasticsearch:",
            "{ sql: { pluginName: sqlite, databaseName: x }, elasticsearch:",
        );
        assert_eq!(error_path(&with_sql), "persistence.datastores.db");
    }

    #[test]
    fn cassandra_validates_hosts_keyspace_and_levels() {
        let base = SQLITE_MEMORY.replace(
            "sql: { pluginName: sqlite, connectAttributes: { mode: memory } }",
            "cassandra: { hosts: 'a, b', keyspace: temporal, port: 9042,
               consistency: { default: { consistency: LOCAL_QUORUM, serialConsistency: local_serial } } }",
        );
        validate(&base).unwrap();
        let c = persistence(&base);
        let cassandra = c.datastores["db"].cassandra.as_ref().unwrap();
        assert_eq!(cassandra.host_list(), vec!["a", "b"]);

        let no_hosts = base.replace("hosts: 'a, b'", "hosts: ' , '");
        assert_eq!(
            error_path(&no_hosts),
            "persistence.datastores.db.cassandra.hosts"
        );
        let bad_level = base.replace("LOCAL_QUORUM", "most");
        assert_eq!(
            error_path(&bad_level),
            "persistence.datastores.db.cassandra.consistency.default.consistency"
        );
        let bad_serial = base.replace("local_serial", "local_quorum");
        assert_eq!(
            error_path(&bad_serial),
            "persistence.datastores.db.cassandra.consistency.default.serialConsistency"
        );
    }

    #[test]
    fn plugin_names_round_trip() {
        for plugin in [
            SqlPlugin::Sqlite,
            SqlPlugin::Postgres12,
            SqlPlugin::Postgres12Pgx,
            SqlPlugin::Mysql8,
        ] {
            let parsed: SqlPlugin = serde_yaml::from_str(plugin.as_str()).unwrap();
            assert_eq!(parsed, plugin);
        }
        assert!(SqlPlugin::Postgres12Pgx.is_postgres());
        assert!(!SqlPlugin::Mysql8.is_postgres());
    }
}
