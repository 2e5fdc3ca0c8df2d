//! `clusterMetadata`: which cluster this is and the clusters it replicates with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Cluster identity and replication peers, Temporal's `clusterMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterMetadata {
    /// Allow namespaces replicated across clusters.
    pub enable_global_namespace: bool,
    /// Step between the failover versions of successive failovers; each cluster's
    /// `initialFailoverVersion` must be below it. Defaults to 10.
    pub failover_version_increment: i64,
    /// Cluster that owns cluster-wide decisions such as namespace registration.
    /// Defaults to `active`.
    pub master_cluster_name: String,
    /// This cluster's name. Defaults to `active`.
    pub current_cluster_name: String,
    /// Known clusters by name; when non-empty it must contain `currentClusterName` and
    /// `masterClusterName`.
    pub cluster_information: BTreeMap<String, ClusterInformation>,
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        ClusterMetadata {
            enable_global_namespace: false,
            failover_version_increment: 10,
            master_cluster_name: "active".to_owned(),
            current_cluster_name: "active".to_owned(),
            cluster_information: BTreeMap::new(),
        }
    }
}

/// One cluster, Temporal's `clusterMetadata.clusterInformation.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterInformation {
    /// Whether this cluster takes part in replication.
    pub enabled: bool,
    /// Failover version of namespaces that start active in this cluster; unique per cluster,
    /// in `0..failoverVersionIncrement`.
    pub initial_failover_version: i64,
    /// gRPC service name used when dialing this cluster (Temporal uses `frontend`).
    pub rpc_name: String,
    /// `host:port` of this cluster's frontend gRPC endpoint.
    pub rpc_address: String,
    /// `host:port` of this cluster's frontend HTTP endpoint; `None` if it serves none.
    pub http_address: Option<String>,
}

impl ClusterMetadata {
    pub(crate) fn validate(&self, path: &str) -> Result<(), Error> {
        if self.failover_version_increment < 1 {
            return Err(Error::validation(
                format!("{path}.failoverVersionIncrement"),
                "must be at least 1",
            ));
        }
        for (key, name) in [
            ("currentClusterName", &self.current_cluster_name),
            ("masterClusterName", &self.master_cluster_name),
        ] {
            if name.is_empty() {
                return Err(Error::validation(format!("{path}.{key}"), "required"));
            }
            if !self.cluster_information.is_empty() && !self.cluster_information.contains_key(name)
            {
                let known: Vec<&str> = self
                    .cluster_information
                    .keys()
                    .map(String::as_str)
                    .collect();
                return Err(Error::validation(
                    format!("{path}.{key}"),
                    format!(
                        "{name:?} is not in clusterInformation ({})",
                        known.join(", ")
                    ),
                ));
            }
        }
        for (name, info) in &self.cluster_information {
            let version = info.initial_failover_version;
            if !(0..self.failover_version_increment).contains(&version) {
                return Err(Error::validation(
                    format!("{path}.clusterInformation.{name}.initialFailoverVersion"),
                    format!(
                        "{version} must be in 0..{} (below failoverVersionIncrement)",
                        self.failover_version_increment
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(yaml: &str) -> ClusterMetadata {
        serde_yaml::from_str(yaml).unwrap()
    }

    const ONE_CLUSTER: &str = r#"
enableGlobalNamespace: false
failoverVersionIncrement: 10
masterClusterName: active
currentClusterName: active
clusterInformation:
  active:
    enabled: true
    initialFailoverVersion: 1
    rpcName: frontend
    rpcAddress: localhost:7233
    httpAddress: localhost:7243
"#;

    #[test]
    fn one_cluster_is_valid() {
        let m = metadata(ONE_CLUSTER);
        m.validate("clusterMetadata").unwrap();
        assert_eq!(
            m.cluster_information["active"].rpc_address,
            "localhost:7233"
        );
    }

    #[test]
    fn defaults_are_valid() {
        ClusterMetadata::default()
            .validate("clusterMetadata")
            .unwrap();
        assert_eq!(metadata("{}"), ClusterMetadata::default());
    }

    #[test]
    fn current_cluster_must_be_in_cluster_information() {
        let m =
            metadata(&ONE_CLUSTER.replace("currentClusterName: active", "currentClusterName: b"));
        let err = m.validate("clusterMetadata").unwrap_err();
        assert_eq!(err.path(), Some("clusterMetadata.currentClusterName"));
    }

    #[test]
    fn master_cluster_must_be_in_cluster_information() {
        let m = metadata(&ONE_CLUSTER.replace("masterClusterName: active", "masterClusterName: b"));
        let err = m.validate("clusterMetadata").unwrap_err();
        assert_eq!(err.path(), Some("clusterMetadata.masterClusterName"));
    }

    #[test]
    fn initial_failover_version_below_increment() {
        let m = metadata(
            &ONE_CLUSTER.replace("initialFailoverVersion: 1", "initialFailoverVersion: 10"),
        );
        let err = m.validate("clusterMetadata").unwrap_err();
        assert_eq!(
            err.path(),
            Some("clusterMetadata.clusterInformation.active.initialFailoverVersion")
        );
    }
}
