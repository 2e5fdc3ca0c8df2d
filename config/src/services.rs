//! `services`: the roles a node can run and the ports each one listens on.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The roles Temporal defines; the keys `services` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceRole {
    /// Public gRPC API for SDKs and the CLI.
    Frontend,
    /// Frontend for the server's own system workers, not exposed to users.
    InternalFrontend,
    /// Owns history shards: workflow state, events, transfer and timer tasks.
    History,
    /// Owns task-queue partitions: hands tasks to polling workers.
    Matching,
    /// Runs the server's system workflows (scanners, schedules, batch operations).
    Worker,
}

impl ServiceRole {
    /// Every role, in Temporal's order.
    pub const ALL: [ServiceRole; 5] = [
        ServiceRole::Frontend,
        ServiceRole::InternalFrontend,
        ServiceRole::History,
        ServiceRole::Matching,
        ServiceRole::Worker,
    ];

    /// The name as written in YAML and in `--services` / `SERVICES`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceRole::Frontend => "frontend",
            ServiceRole::InternalFrontend => "internal-frontend",
            ServiceRole::History => "history",
            ServiceRole::Matching => "matching",
            ServiceRole::Worker => "worker",
        }
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`ServiceRole::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown service role {0:?}; expected one of frontend, internal-frontend, history, matching, worker"
)]
pub struct UnknownRole(pub String);

impl FromStr for ServiceRole {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ServiceRole::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

/// One role's settings, Temporal's `services.<role>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// Where the role listens.
    pub rpc: Rpc,
}

impl Service {
    /// The IP address to bind: `bindOnIP` if set, else `127.0.0.1` if `bindOnLocalHost`,
    /// else `0.0.0.0` (every interface).
    pub fn bind_ip(&self) -> String {
        match (&self.rpc.bind_on_ip, self.rpc.bind_on_local_host) {
            (Some(ip), _) => ip.clone(),
            (None, true) => "127.0.0.1".to_owned(),
            (None, false) => "0.0.0.0".to_owned(),
        }
    }
}

/// Listener settings, Temporal's `services.<role>.rpc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rpc {
    /// gRPC port (Temporal's defaults: frontend 7233, history 7234, matching 7235,
    /// worker 7239).
    pub grpc_port: u16,
    /// Port of the membership (gossip) listener (Temporal's defaults: 6933 to 6939).
    pub membership_port: u16,
    /// Bind on `127.0.0.1` only. Mutually exclusive with `bindOnIP`.
    #[serde(default)]
    pub bind_on_local_host: bool,
    /// Bind on this IP address (e.g. `0.0.0.0`). Mutually exclusive with `bindOnLocalHost`.
    #[serde(default, rename = "bindOnIP")]
    pub bind_on_ip: Option<String>,
    /// Port of the HTTP API (frontend only; Temporal's default is 7243); `None` serves none.
    #[serde(default)]
    pub http_port: Option<u16>,
}

/// Validates role names, bind addresses and ports across all of `services`.
pub(crate) fn validate(services: &BTreeMap<String, Service>, path: &str) -> Result<(), Error> {
    if services.is_empty() {
        return Err(Error::validation(path, "configure at least one service"));
    }
    // (path of the port key, bind address, port) of every listener seen so far.
    let mut listeners: Vec<(String, IpAddr, u16)> = Vec::new();
    for (name, service) in services {
        let service_path = format!("{path}.{name}");
        if let Err(err) = name.parse::<ServiceRole>() {
            return Err(Error::validation(service_path, err.to_string()));
        }
        let rpc = &service.rpc;
        let rpc_path = format!("{service_path}.rpc");
        if rpc.bind_on_local_host && rpc.bind_on_ip.is_some() {
            return Err(Error::validation(
                format!("{rpc_path}.bindOnIP"),
                "set bindOnIP or bindOnLocalHost, not both",
            ));
        }
        let ip: IpAddr = service.bind_ip().parse().map_err(|_| {
            Error::validation(
                format!("{rpc_path}.bindOnIP"),
                format!("{:?} is not an IP address", service.bind_ip()),
            )
        })?;
        let ports = [
            ("grpcPort", Some(rpc.grpc_port)),
            ("membershipPort", Some(rpc.membership_port)),
            ("httpPort", rpc.http_port),
        ];
        for (key, port) in ports {
            let Some(port) = port else { continue };
            let port_path = format!("{rpc_path}.{key}");
            if port == 0 {
                return Err(Error::validation(port_path, "port must not be 0"));
            }
            let clash = listeners
                .iter()
                .find(|(_, other_ip, other_port)| *other_port == port && overlap(ip, *other_ip));
            if let Some((other_path, other_ip, _)) = clash {
                return Err(Error::validation(
                    port_path,
                    format!("port {port} on {ip} is already taken by {other_path} (on {other_ip})"),
                ));
            }
            listeners.push((port_path, ip, port));
        }
    }
    Ok(())
}

/// True when listeners on `a` and `b` with the same port would collide: the same address, or
/// either is the wildcard address, which takes the port on every interface.
fn overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(yaml: &str) -> BTreeMap<String, Service> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn error_path(yaml: &str) -> String {
        let err = validate(&services(yaml), "services").unwrap_err();
        err.path().unwrap().to_owned()
    }

    const TEMPORAL_PORTS: &str = r#"
frontend: { rpc: { grpcPort: 7233, membershipPort: 6933, bindOnLocalHost: true, httpPort: 7243 } }
history: { rpc: { grpcPort: 7234, membershipPort: 6934, bindOnLocalHost: true } }
matching: { rpc: { grpcPort: 7235, membershipPort: 6935, bindOnLocalHost: true } }
worker: { rpc: { grpcPort: 7239, membershipPort: 6939, bindOnLocalHost: true } }
"#;

    #[test]
    fn temporal_default_ports_are_valid() {
        validate(&services(TEMPORAL_PORTS), "services").unwrap();
    }

    #[test]
    fn role_names_round_trip() {
        for role in ServiceRole::ALL {
            assert_eq!(role.as_str().parse::<ServiceRole>(), Ok(role));
        }
        assert!("frontends".parse::<ServiceRole>().is_err());
    }

    #[test]
    fn unknown_role_is_rejected_with_its_path() {
        let yaml = TEMPORAL_PORTS.replace("worker:", "workers:");
        assert_eq!(error_path(&yaml), "services.workers");
    }

    #[test]
    fn no_services_is_rejected() {
        let err = validate(&BTreeMap::new(), "services").unwrap_err();
        assert_eq!(err.path(), Some("services"));
    }

    #[test]
    fn zero_port_is_rejected() {
        let yaml = TEMPORAL_PORTS.replace("membershipPort: 6934", "membershipPort: 0");
        assert_eq!(error_path(&yaml), "services.history.rpc.membershipPort");
    }

    #[test]
    fn duplicate_port_on_same_ip_is_rejected() {
        let yaml = TEMPORAL_PORTS.replace("grpcPort: 7235", "grpcPort: 7234");
        // BTreeMap order: frontend, history, matching, worker.
        assert_eq!(error_path(&yaml), "services.matching.rpc.grpcPort");
        let err = validate(&services(&yaml), "services").unwrap_err();
        assert!(
            err.to_string().contains("services.history.rpc.grpcPort"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_port_across_grpc_and_membership_is_rejected() {
        let yaml = TEMPORAL_PORTS.replace("membershipPort: 6939", "membershipPort: 7243");
        assert_eq!(error_path(&yaml), "services.worker.rpc.membershipPort");
    }

    #[test]
    fn same_port_on_different_ips_is_allowed_but_not_with_wildcard() {
        let two_ips = r#"
frontend: { rpc: { grpcPort: 7233, membershipPort: 6933, bindOnIP: 10.0.0.1 } }
history: { rpc: { grpcPort: 7233, membershipPort: 6933, bindOnIP: 10.0.0.2 } }
"#;
        validate(&services(two_ips), "services").unwrap();
        let wildcard = two_ips.replace("bindOnIP: 10.0.0.2", "bindOnIP: 0.0.0.0");
        assert_eq!(error_path(&wildcard), "services.history.rpc.grpcPort");
        let default_bind = two_ips.replace(", bindOnIP: 10.0.0.2", "");
        assert_eq!(error_path(&default_bind), "services.history.rpc.grpcPort");
    }

    #[test]
    fn bind_ip_rules() {
        let s = services(
            r#"
frontend: { rpc: { grpcPort: 1, membershipPort: 2, bindOnIP: 192.168.1.5 } }
history: { rpc: { grpcPort: 3, membershipPort: 4, bindOnLocalHost: true } }
matching: { rpc: { grpcPort: 5, membershipPort: 6 } }
"#,
        );
        assert_eq!(s["frontend"].bind_ip(), "192.168.1.5");
        assert_eq!(s["history"].bind_ip(), "127.0.0.1");
        assert_eq!(s["matching"].bind_ip(), "0.0.0.0");
    }

    #[test]
    fn bind_ip_must_be_an_ip_and_exclusive_with_localhost() {
        let bad_ip = TEMPORAL_PORTS.replace(
            "frontend: { rpc: { grpcPort: 7233, membershipPort: 6933, bindOnLocalHost: true",
            "frontend: { rpc: { grpcPort: 7233, membershipPort: 6933, bindOnIP: localhost",
        );
        assert_eq!(error_path(&bad_ip), "services.frontend.rpc.bindOnIP");
        let both = TEMPORAL_PORTS.replace(
            "bindOnLocalHost: true, httpPort",
            "bindOnLocalHost: true, bindOnIP: 127.0.0.1, httpPort",
        );
        assert_eq!(error_path(&both), "services.frontend.rpc.bindOnIP");
    }
}
