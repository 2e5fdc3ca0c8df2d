//! Sundial's typed static config.
//!
//! Owns: the YAML config file in Temporal's layout (`global`, `persistence`, `log`,
//! `clusterMetadata`, `services`, `dynamicConfigClient`, `publicClient`, `otel`; see
//! Temporal's `common/config/config.go`), parsed into plain structs, strictly: unknown keys
//! are rejected, durations are written in human units (`10s`, `500ms`), and every parse or
//! validation error names the offending path, e.g.
//! `persistence.datastores.default.sql.pluginName: unknown variant ...`.
//! Also owns [`Config::validate`] (rules that span values) and [`Config::dev`], the
//! equivalent of `temporal server start-dev`.
//!
//! Must not depend on: engine, storage, actors (or any other server crate). Those crates
//! read this one, never the reverse; this crate opens no connections and binds no ports.
//!
//! ```
//! let config = sundial_config::Config::dev("127.0.0.1", 7233, None);
//! config.validate().unwrap();
//! assert_eq!(config.service("history").unwrap().rpc.grpc_port, 7234);
//! ```

#![warn(missing_docs)]

mod clients;
mod cluster;
mod dev;
pub mod duration;
mod dynamic;
mod error;
mod global;
mod log;
mod persistence;
mod services;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use clients::{DynamicConfigClient, Otel, PublicClient};
pub use cluster::{ClusterInformation, ClusterMetadata};
pub use dev::DEV_DATASTORE;
pub use dynamic::DynamicConfig;
pub use error::Error;
pub use global::{
    Authorization, ClientTls, Global, GroupTls, JwtKeyProvider, Membership, Metrics,
    MetricsFramework, Prometheus, ServerTls, TimerType, Tls,
};
pub use log::{Log, LogFormat, LogLevel, UnknownLogLevel};
pub use persistence::{
    Cassandra, CassandraConsistency, CassandraConsistencySettings, DataStore, Persistence, Sql,
    SqlPlugin, SqlTls,
};
pub use services::{Rpc, Service, ServiceRole, UnknownRole};

/// A whole config file, Temporal's top-level layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Process-wide settings: membership, metrics, TLS.
    #[serde(default)]
    pub global: Global,
    /// Datastores and the number of history shards.
    pub persistence: Persistence,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// Cluster identity and replication peers; defaults to a single cluster named `active`.
    #[serde(default)]
    pub cluster_metadata: ClusterMetadata,
    /// Listener settings by role name (`frontend`, `internal-frontend`, `history`,
    /// `matching`, `worker`). A node runs the roles chosen by `--services` / `SERVICES`.
    pub services: BTreeMap<String, Service>,
    /// The dynamic-config file; absent means built-in defaults only.
    #[serde(default)]
    pub dynamic_config_client: Option<DynamicConfigClient>,
    /// How server-side workers reach the frontend; absent means the local frontend.
    #[serde(default)]
    pub public_client: Option<PublicClient>,
    /// Trace export; absent means traces are not exported.
    #[serde(default)]
    pub otel: Option<Otel>,
}

impl Config {
    /// Parses and validates a config from YAML text.
    pub fn from_yaml_str(yaml: &str) -> Result<Config, Error> {
        let deserializer = serde_yaml::Deserializer::from_str(yaml);
        let config: Config = serde_path_to_error::deserialize(deserializer)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml_str(&yaml)
    }

    /// Checks the rules that span values; the first broken rule is returned, naming its path.
    ///
    /// [`Config::from_yaml_str`] and [`Config::load`] call this; call it yourself after
    /// building or changing a `Config` in code.
    pub fn validate(&self) -> Result<(), Error> {
        self.global.validate("global")?;
        self.persistence.validate("persistence")?;
        self.cluster_metadata.validate("clusterMetadata")?;
        services::validate(&self.services, "services")?;
        if let Some(client) = &self.dynamic_config_client {
            client.validate("dynamicConfigClient")?;
        }
        if let Some(client) = &self.public_client {
            client.validate("publicClient")?;
        }
        if let Some(otel) = &self.otel {
            otel.validate("otel")?;
        }
        Ok(())
    }

    /// The settings of the role named `role` (e.g. `"frontend"`, or
    /// `ServiceRole::History.as_str()`), if configured.
    pub fn service(&self, role: &str) -> Option<&Service> {
        self.services.get(role)
    }

    /// The SQL settings of the default store, or `None` if it is not a SQL store.
    pub fn default_sql_store(&self) -> Option<&Sql> {
        self.persistence.default_datastore()?.sql.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn sample(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    /// A small valid config; tests break one thing at a time.
    const MINIMAL: &str = r#"
persistence:
  defaultStore: default
  visibilityStore: default
  numHistoryShards: 4
  datastores:
    default:
      sql:
        pluginName: sqlite
        connectAttributes:
          mode: memory
        maxConnLifetime: 1h
services:
  frontend:
    rpc:
      grpcPort: 7233
      membershipPort: 6933
"#;

    fn parse_error(yaml: &str) -> (String, String) {
        match Config::from_yaml_str(yaml).unwrap_err() {
            Error::Parse { path, message } => (path, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_parses_with_defaults() {
        let config = Config::from_yaml_str(MINIMAL).unwrap();
        assert_eq!(config.log.level, LogLevel::Info);
        assert_eq!(config.cluster_metadata.current_cluster_name, "active");
        let sql = config.default_sql_store().unwrap();
        assert!(sql.is_in_memory());
        assert_eq!(sql.max_conn_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(config.service("frontend").unwrap().bind_ip(), "0.0.0.0");
        assert!(config.service("history").is_none());
    }

    #[test]
    fn development_sample_loads() {
        let config = Config::load(sample("development.yaml")).unwrap();
        assert_eq!(config.persistence.num_history_shards, 4);
        let sql = config.default_sql_store().unwrap();
        assert_eq!(sql.plugin_name, SqlPlugin::Sqlite);
        assert_eq!(sql.database_name, "sundial.db");
        let ports: Vec<(u16, u16)> = ["frontend", "history", "matching", "worker"]
            .iter()
            .map(|role| {
                let rpc = &config.service(role).unwrap().rpc;
                (rpc.grpc_port, rpc.membership_port)
            })
            .collect();
        assert_eq!(
            ports,
            [(7233, 6933), (7234, 6934), (7235, 6935), (7239, 6939)]
        );
        let prometheus = config.global.metrics.as_ref().unwrap().prometheus.as_ref();
        assert_eq!(prometheus.unwrap().listen_address, "127.0.0.1:8000");
        assert_eq!(config.log.level, LogLevel::Info);
    }

    #[test]
    fn postgres_sample_loads() {
        let config = Config::load(sample("development-postgres.yaml")).unwrap();
        let sql = config.default_sql_store().unwrap();
        assert!(sql.plugin_name.is_postgres());
        assert!(!sql.connect_addr.is_empty());
    }

    #[test]
    fn mysql_sample_loads() {
        let config = Config::load(sample("development-mysql.yaml")).unwrap();
        assert_eq!(
            config.default_sql_store().unwrap().plugin_name,
            SqlPlugin::Mysql8
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_file() {
        let err = Config::load(sample("no-such-file.yaml")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-file.yaml"), "{err}");
    }

    #[test]
    fn unknown_nested_key_names_its_path() {
        let yaml = MINIMAL.replace(
            "maxConnLifetime: 1h",
            "maxConnLifetime: 1h\n        maxConn: 3",
        );
        let (path, message) = parse_error(&yaml);
        assert_eq!(path, "persistence.datastores.default.sql.maxConn");
        assert!(message.contains("unknown field `maxConn`"), "{message}");
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        let (path, message) = parse_error(&format!("{MINIMAL}archival: {{}}\n"));
        assert_eq!(path, "archival");
        assert!(message.contains("unknown field `archival`"), "{message}");
    }

    #[test]
    fn bad_enum_value_names_its_path() {
        let yaml = MINIMAL.replace("pluginName: sqlite", "pluginName: oracle");
        let err = Config::from_yaml_str(&yaml).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "persistence.datastores.default.sql.pluginName: unknown variant `oracle`"
            ),
            "{text}"
        );
        let (_, message) = parse_error(&format!("{MINIMAL}log: {{ level: loud }}\n"));
        assert!(message.contains("unknown variant `loud`"), "{message}");
    }

    #[test]
    fn bad_duration_names_its_path() {
        let yaml = MINIMAL.replace("maxConnLifetime: 1h", "maxConnLifetime: forever");
        let (path, message) = parse_error(&yaml);
        assert_eq!(path, "persistence.datastores.default.sql.maxConnLifetime");
        assert!(
            message.contains("invalid duration \"forever\""),
            "{message}"
        );
        let unitless = MINIMAL.replace("maxConnLifetime: 1h", "maxConnLifetime: 10");
        let (path, _) = parse_error(&unitless);
        assert_eq!(path, "persistence.datastores.default.sql.maxConnLifetime");
    }

    #[test]
    fn out_of_range_port_names_its_path() {
        let yaml = MINIMAL.replace("grpcPort: 7233", "grpcPort: 70000");
        let (path, _) = parse_error(&yaml);
        assert_eq!(path, "services.frontend.rpc.grpcPort");
    }

    #[test]
    fn missing_required_key_is_a_parse_error() {
        let yaml = MINIMAL.replace("  numHistoryShards: 4\n", "");
        let (path, message) = parse_error(&yaml);
        assert_eq!(path, "persistence");
        assert!(message.contains("numHistoryShards"), "{message}");
    }

    #[test]
    fn validation_runs_on_load() {
        let yaml = MINIMAL.replace("numHistoryShards: 4", "numHistoryShards: 0");
        let err = Config::from_yaml_str(&yaml).unwrap_err();
        assert!(matches!(err, Error::Validation { .. }), "{err:?}");
        assert_eq!(err.path(), Some("persistence.numHistoryShards"));
        let yaml = MINIMAL.replace("frontend:", "front-end:");
        let err = Config::from_yaml_str(&yaml).unwrap_err();
        assert_eq!(err.path(), Some("services.front-end"));
    }

    #[test]
    fn serialized_config_parses_back_unchanged() {
        for name in [
            "development.yaml",
            "development-postgres.yaml",
            "development-mysql.yaml",
        ] {
            let config = Config::load(sample(name)).unwrap();
            let yaml = serde_yaml::to_string(&config).unwrap();
            assert_eq!(Config::from_yaml_str(&yaml).unwrap(), config, "{name}");
        }
    }
}
