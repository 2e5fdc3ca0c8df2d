//! [`Config::dev`]: the config `sundial server start-dev` runs with.

use std::collections::BTreeMap;

use crate::{
    ClusterInformation, ClusterMetadata, Config, DataStore, Global, Log, LogFormat, LogLevel,
    Persistence, PublicClient, Rpc, Service, ServiceRole, Sql, SqlPlugin,
};

/// Name of the single datastore of the dev config.
pub const DEV_DATASTORE: &str = "sqlite-default";

/// Offset of each role's gRPC port from the frontend port (Temporal's 7233/7234/7235/7239).
const PORT_OFFSETS: [(ServiceRole, u16); 4] = [
    (ServiceRole::Frontend, 0),
    (ServiceRole::History, 1),
    (ServiceRole::Matching, 2),
    (ServiceRole::Worker, 6),
];

/// Membership ports sit this far above the gRPC ports, as in Temporal's dev server.
const MEMBERSHIP_OFFSET: u16 = 100;

impl Config {
    /// The equivalent of `temporal server start-dev`: every role on `ip`, one SQLite
    /// datastore named `sqlite-default` (in memory when `db_filename` is `None`, else that
    /// file), 4 history shards, log level info to stdout.
    ///
    /// gRPC ports: frontend `port`, history `port + 1`, matching `port + 2`, worker
    /// `port + 6`; each membership port is its gRPC port + 100. Ports that would pass 65535
    /// saturate, which [`Config::validate`] then reports as a clash.
    pub fn dev(ip: &str, port: u16, db_filename: Option<&str>) -> Config {
        let mut connect_attributes = BTreeMap::new();
        let mode = if db_filename.is_some() {
            "rwc"
        } else {
            "memory"
        };
        connect_attributes.insert("mode".to_owned(), mode.to_owned());
        let sql = Sql {
            plugin_name: SqlPlugin::Sqlite,
            database_name: db_filename.unwrap_or_default().to_owned(),
            connect_addr: String::new(),
            connect_protocol: String::new(),
            user: String::new(),
            password: String::new(),
            connect_attributes,
            max_conns: None,
            max_idle_conns: None,
            max_conn_lifetime: None,
            tls: None,
        };
        let datastore = DataStore {
            sql: Some(sql),
            cassandra: None,
            elasticsearch: None,
        };

        let services = PORT_OFFSETS
            .into_iter()
            .map(|(role, offset)| {
                let grpc_port = port.saturating_add(offset);
                let rpc = Rpc {
                    grpc_port,
                    membership_port: grpc_port.saturating_add(MEMBERSHIP_OFFSET),
                    bind_on_local_host: false,
                    bind_on_ip: Some(ip.to_owned()),
                    http_port: None,
                };
                (role.as_str().to_owned(), Service { rpc })
            })
            .collect();

        let frontend_address = host_port(ip, port);
        let cluster = ClusterInformation {
            enabled: true,
            initial_failover_version: 1,
            rpc_name: ServiceRole::Frontend.as_str().to_owned(),
            rpc_address: frontend_address.clone(),
            http_address: None,
        };
        let defaults = ClusterMetadata::default();
        let cluster_information = [(defaults.current_cluster_name.clone(), cluster)].into();

        Config {
            global: Global::default(),
            persistence: Persistence {
                default_store: DEV_DATASTORE.to_owned(),
                visibility_store: DEV_DATASTORE.to_owned(),
                num_history_shards: 4,
                datastores: [(DEV_DATASTORE.to_owned(), datastore)].into(),
            },
            log: Log {
                stdout: true,
                level: LogLevel::Info,
                format: LogFormat::Console,
                output_file: None,
            },
            cluster_metadata: ClusterMetadata {
                cluster_information,
                ..defaults
            },
            services,
            dynamic_config_client: None,
            public_client: Some(PublicClient {
                host_port: frontend_address,
            }),
            otel: None,
        }
    }
}

/// `ip:port`, with IPv6 addresses in brackets.
fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_dev_config() {
        let config = Config::dev("127.0.0.1", 7233, None);
        config.validate().unwrap();
        let sql = config.default_sql_store().unwrap();
        assert!(sql.is_in_memory());
        assert_eq!(config.persistence.num_history_shards, 4);
        assert_eq!(config.persistence.visibility_store, DEV_DATASTORE);
        assert_eq!(config.log.level, LogLevel::Info);
        let ports: Vec<(&str, u16, u16)> = ["frontend", "history", "matching", "worker"]
            .into_iter()
            .map(|role| {
                let rpc = &config.service(role).unwrap().rpc;
                (role, rpc.grpc_port, rpc.membership_port)
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("frontend", 7233, 7333),
                ("history", 7234, 7334),
                ("matching", 7235, 7335),
                ("worker", 7239, 7339)
            ]
        );
        assert_eq!(config.service("frontend").unwrap().bind_ip(), "127.0.0.1");
        assert!(config.service("internal-frontend").is_none());
    }

    #[test]
    fn file_backed_dev_config() {
        let config = Config::dev("0.0.0.0", 9000, Some("/tmp/dev.db"));
        config.validate().unwrap();
        let sql = config.default_sql_store().unwrap();
        assert!(!sql.is_in_memory());
        assert_eq!(sql.database_name, "/tmp/dev.db");
        assert_eq!(config.service("worker").unwrap().rpc.grpc_port, 9006);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let config = Config::dev("::1", 7233, None);
        config.validate().unwrap();
        assert_eq!(config.public_client.unwrap().host_port, "[::1]:7233");
    }

    #[test]
    fn ports_near_the_top_are_reported_not_wrapped() {
        let err = Config::dev("127.0.0.1", 65500, None)
            .validate()
            .unwrap_err();
        assert!(err.path().unwrap().starts_with("services."), "{err}");
    }
}
