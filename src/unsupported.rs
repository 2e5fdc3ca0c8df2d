//! What a config file asks for that Sundial does not do yet.
//!
//! The config crate parses all of Temporal's layout it knows, so Temporal config files load;
//! this module decides what happens to the settings Sundial does not act on. A security setting
//! ([`refuse`]) stops the server: serving plaintext under `requireClientAuth: true`, or every
//! caller under an authorizer, is worse than not starting. Any other ([`warnings`]) is named in
//! a warning at start-up: never silently ignored.

use anyhow::{Result, bail};
use sundial_config::{Config, MetricsFramework, ServiceRole, TimerType};

/// The cluster name Sundial reports (Temporal's default single cluster).
pub const CLUSTER_NAME: &str = "active";

/// Refuses a config that asks for TLS or authorization, naming the first key that does.
pub fn refuse(config: &Config) -> Result<()> {
    let tls = &config.global.tls;
    for (group, settings) in [("internode", &tls.internode), ("frontend", &tls.frontend)] {
        if let Some((first, others)) = settings.configured_keys().split_first() {
            let also = also_set(&format!("global.tls.{group}"), others);
            bail!(
                "global.tls.{group}.{first}: TLS is not supported yet, and Sundial does not \
                 serve plaintext where TLS is configured{also}; remove global.tls to run without \
                 TLS"
            );
        }
    }
    let authorization = &config.global.authorization;
    if let Some((first, others)) = authorization.enabled_keys().split_first() {
        let also = also_set("global.authorization", others);
        bail!(
            "global.authorization.{first}: authorization is not supported yet, and Sundial does \
             not serve every caller where authorization is configured{also}; remove \
             global.authorization to run without it"
        );
    }
    Ok(())
}

/// ` (also set: a.b, a.c)`, or nothing.
fn also_set(prefix: &str, keys: &[&str]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let paths: Vec<String> = keys.iter().map(|key| format!("{prefix}.{key}")).collect();
    format!(" (also set: {})", paths.join(", "))
}

/// One line per setting that is parsed but has no effect, naming its path; `opened` is the
/// datastore the node opens.
pub fn warnings(config: &Config, opened: &str, services: &[String]) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut warn = |path: String, why: &str| warnings.push(format!("{path}: {why}"));

    let global = &config.global;
    if global.membership.max_join_duration.is_some() {
        warn(
            "global.membership.maxJoinDuration".into(),
            "not used: a process joins at once and keeps greeting the members the \
             cluster_membership table lists until gossip reaches them (no join deadline)",
        );
    }
    if global.membership.broadcast_address.is_some() && services.is_empty() {
        warn(
            "global.membership.broadcastAddress".into(),
            "not used: without --services every role runs in this one process",
        );
    }
    if let Some(prometheus) = global.metrics.as_ref().and_then(|m| m.prometheus.as_ref()) {
        if prometheus.framework == MetricsFramework::Tally {
            warn(
                "global.metrics.prometheus.framework".into(),
                "tally is not used: Sundial exports through OpenTelemetry, with Temporal's names",
            );
        }
        if prometheus.timer_type == TimerType::Summary {
            warn(
                "global.metrics.prometheus.timerType".into(),
                "summary is not supported: timers are exported as histograms",
            );
        }
    }
    let authorization = &global.authorization;
    let tuning = [
        (
            "permissionsClaimName",
            !authorization.permissions_claim_name.is_empty(),
        ),
        (
            "permissionsRegex",
            !authorization.permissions_regex.is_empty(),
        ),
        ("authHeaderName", !authorization.auth_header_name.is_empty()),
        (
            "authExtraHeaderName",
            !authorization.auth_extra_header_name.is_empty(),
        ),
        (
            "jwtKeyProvider.refreshInterval",
            authorization.jwt_key_provider.refresh_interval.is_some(),
        ),
    ];
    for (key, set) in tuning {
        if set {
            warn(
                format!("global.authorization.{key}"),
                "not used: authorization is not supported yet",
            );
        }
    }

    let persistence = &config.persistence;
    if persistence.visibility_store != opened {
        warn(
            "persistence.visibilityStore".into(),
            "not used: visibility is not supported yet, so that datastore is not opened",
        );
    }
    for name in persistence.datastores.keys() {
        if name != opened && *name != persistence.visibility_store {
            warn(
                format!("persistence.datastores.{name}"),
                "not used: neither defaultStore nor visibilityStore names it",
            );
        }
    }

    if config.log.stdout && config.log.output_file.is_some() {
        warn(
            "log.outputFile".into(),
            "not used: log.stdout is true, so logs go to stdout",
        );
    }

    let cluster = &config.cluster_metadata;
    if cluster.enable_global_namespace {
        warn(
            "clusterMetadata.enableGlobalNamespace".into(),
            "not used: replication is not supported yet",
        );
    }
    if cluster.current_cluster_name != CLUSTER_NAME {
        warn(
            "clusterMetadata.currentClusterName".into(),
            "not used: Sundial reports its cluster as \"active\"",
        );
    }
    for name in cluster.cluster_information.keys() {
        if *name != cluster.current_cluster_name {
            warn(
                format!("clusterMetadata.clusterInformation.{name}"),
                "not used: replication is not supported yet",
            );
        }
    }

    for (role, service) in &config.services {
        let path = format!("services.{role}.rpc");
        let rpc = &service.rpc;
        let named = services.iter().any(|s| s == role);
        if services.is_empty() && role != ServiceRole::Frontend.as_str() {
            warn(
                path,
                &format!(
                    "not opened (grpcPort {}, membershipPort {}): the {role} role runs inside \
                     this process, behind the frontend",
                    rpc.grpc_port, rpc.membership_port
                ),
            );
            continue;
        }
        if !services.is_empty() && !named {
            // Another process runs it.
            continue;
        }
        // A process gossips once, on the port of the first role it runs.
        let gossips_on = ["frontend", "history", "matching", "worker"]
            .into_iter()
            .find(|r| services.iter().any(|s| s == r));
        match gossips_on {
            Some(gossip) if gossip != role => warn(
                format!("{path}.membershipPort"),
                &format!(
                    "not opened: this process gossips once, on \
                     services.{gossip}.rpc.membershipPort"
                ),
            ),
            Some(_) => {}
            None => warn(
                format!("{path}.membershipPort"),
                "not opened: a process that runs every role joins no cluster",
            ),
        }
        if rpc.http_port.is_some() {
            warn(
                format!("{path}.httpPort"),
                "not served: the HTTP API is not supported yet",
            );
        }
    }

    if config.public_client.is_some() {
        warn(
            "publicClient.hostPort".into(),
            "not used: Sundial runs no server-side workers yet",
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "persistence:
  defaultStore: db
  visibilityStore: db
  numHistoryShards: 1
  datastores:
    db: { sql: { pluginName: sqlite, connectAttributes: { mode: memory } } }
services:
  frontend: { rpc: { grpcPort: 7233, membershipPort: 6933 } }
";

    fn config(extra: &str) -> Config {
        Config::from_yaml_str(&format!("{BASE}{extra}")).unwrap()
    }

    fn refusal(extra: &str) -> String {
        refuse(&config(extra)).unwrap_err().to_string()
    }

    #[test]
    fn tls_is_refused_naming_the_key() {
        let message = refusal(
            "global:
  tls:
    frontend:
      server: { certFile: f.pem, keyFile: f.key, requireClientAuth: true, clientCaFiles: [ca.pem] }
",
        );
        assert!(
            message.starts_with(
                "global.tls.frontend.server.requireClientAuth: TLS is not supported yet"
            ),
            "{message}"
        );
        assert!(
            message.contains("also set: global.tls.frontend.server.certFile"),
            "{message}"
        );
        let client = refusal("global: { tls: { internode: { client: { serverName: n } } } }");
        assert!(
            client.starts_with("global.tls.internode.client.serverName: "),
            "{client}"
        );
    }

    #[test]
    fn authorization_is_refused_naming_the_key() {
        let message = refusal("global: { authorization: { claimMapper: default } }");
        assert!(
            message.starts_with(
                "global.authorization.claimMapper: authorization is not supported yet"
            ),
            "{message}"
        );
        // Temporal's docker template leaves it all empty: nothing to refuse, only a warning.
        let template = config("global: { authorization: { permissionsClaimName: permissions } }");
        refuse(&template).unwrap();
        assert!(
            warnings(&template, "db", &[]).contains(
                &"global.authorization.permissionsClaimName: not used: authorization is not \
                  supported yet"
                    .to_string()
            )
        );
    }

    #[test]
    fn unused_settings_are_named() {
        let c = config(
            "global: { membership: { broadcastAddress: 127.0.0.1 } }
log: { stdout: true, outputFile: x.log }
clusterMetadata:
  currentClusterName: active
  masterClusterName: active
  clusterInformation:
    active: { rpcAddress: 'localhost:7233' }
    other: { rpcAddress: 'elsewhere:7233', initialFailoverVersion: 2 }
publicClient: { hostPort: 'localhost:7233' }
",
        );
        let paths: Vec<String> = warnings(&c, "db", &[])
            .iter()
            .map(|w| w.split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "global.membership.broadcastAddress",
                "log.outputFile",
                "clusterMetadata.clusterInformation.other",
                "services.frontend.rpc.membershipPort",
                "publicClient.hostPort",
            ]
        );
    }

    #[test]
    fn roles_and_stores_that_are_not_separate_are_named() {
        let yaml = BASE.replace(
            "services:\n",
            "services:\n  history: { rpc: { grpcPort: 7234, membershipPort: 6934 } }\n",
        );
        let yaml = yaml.replace(
            "visibilityStore: db",
            "visibilityStore: vis",
        ).replace(
            "  datastores:\n",
            "  datastores:\n    vis: { sql: { pluginName: sqlite, databaseName: v.db } }\n    spare: { sql: { pluginName: sqlite, databaseName: s.db } }\n",
        );
        let c = Config::from_yaml_str(&yaml).unwrap();
        let all = warnings(&c, "db", &[]).join("\n");
        for needle in [
            "persistence.visibilityStore: not used",
            "persistence.datastores.spare: not used",
            "services.history.rpc: not opened (grpcPort 7234, membershipPort 6934)",
        ] {
            assert!(all.contains(needle), "{needle} missing from:\n{all}");
        }
        // A role another process runs is not this one's to warn about.
        let split = warnings(&c, "db", &["frontend".into()]).join("\n");
        assert!(!split.contains("services.history"), "{split}");
        assert!(!split.contains("membershipPort"), "{split}");
        // A process of two roles gossips on the first one's port.
        let yaml = yaml.replace(
            "services:\n",
            "services:\n  matching: { rpc: { grpcPort: 7235, membershipPort: 6935 } }\n",
        );
        let c = Config::from_yaml_str(&yaml).unwrap();
        let two = warnings(&c, "db", &["matching".into(), "history".into()]).join("\n");
        assert!(
            two.contains(
                "services.matching.rpc.membershipPort: not opened: this process gossips once, \
                 on services.history.rpc.membershipPort"
            ),
            "{two}"
        );
        assert!(
            !two.lines()
                .any(|l| l.starts_with("services.history.rpc.membershipPort")),
            "{two}"
        );
    }
}
