//! `global`: process-wide settings shared by every role (membership, metrics, TLS).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Process-wide settings, Temporal's `global` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Global {
    /// How this node joins the cluster's membership ring.
    #[serde(default)]
    pub membership: Membership,
    /// Metrics export; absent means no metrics endpoint.
    #[serde(default)]
    pub metrics: Option<Metrics>,
    /// TLS for node-to-node and client-to-frontend traffic; absent means plaintext.
    #[serde(default)]
    pub tls: Tls,
    /// Who may call what: JWT verification, claim mapping and the authorizer. Absent (or
    /// every key empty) means every caller may call everything.
    #[serde(default)]
    pub authorization: Authorization,
}

/// Authentication and authorization of API calls, Temporal's `global.authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorization {
    /// Where the keys that sign JWTs come from.
    pub jwt_key_provider: JwtKeyProvider,
    /// Name of the JWT claim holding the caller's permissions (Temporal: `permissions`).
    pub permissions_claim_name: String,
    /// Regular expression that splits a permission into namespace and role.
    pub permissions_regex: String,
    /// `default` for Temporal's default authorizer; empty lets every call through.
    pub authorizer: String,
    /// `default` for Temporal's default JWT claim mapper; empty maps no claims.
    pub claim_mapper: String,
    /// Header carrying the caller's token (Temporal: `authorization`).
    pub auth_header_name: String,
    /// A second header passed to the claim mapper.
    pub auth_extra_header_name: String,
}

/// Temporal's `global.authorization.jwtKeyProvider`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtKeyProvider {
    /// URIs of JWKS documents holding the signing keys.
    #[serde(rename = "keySourceURIs")]
    pub key_source_uris: Vec<String>,
    /// How often the keys are fetched again; `None` uses the server's default.
    #[serde(with = "crate::duration::option")]
    pub refresh_interval: Option<Duration>,
}

impl Authorization {
    /// The keys that turn checking on, set here (paths below `authorization`): an authorizer,
    /// a claim mapper, JWT key sources. The other keys only tune those.
    pub fn enabled_keys(&self) -> Vec<&'static str> {
        let uris = &self.jwt_key_provider.key_source_uris;
        [
            ("authorizer", !self.authorizer.trim().is_empty()),
            ("claimMapper", !self.claim_mapper.trim().is_empty()),
            (
                "jwtKeyProvider.keySourceURIs",
                uris.iter().any(|uri| !uri.trim().is_empty()),
            ),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    /// True when calls would be checked (see [`Authorization::enabled_keys`]).
    pub fn is_enabled(&self) -> bool {
        !self.enabled_keys().is_empty()
    }
}

/// Membership ring settings, Temporal's `global.membership`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Membership {
    /// How long a starting node waits to join the ring before giving up; `None` uses the
    /// server's default.
    #[serde(default, with = "crate::duration::option")]
    pub max_join_duration: Option<Duration>,
    /// IP address other nodes use to reach this one, for when the bind address is `0.0.0.0`
    /// or the node sits behind NAT. `None` advertises the bind address.
    #[serde(default)]
    pub broadcast_address: Option<String>,
}

/// Metrics settings, Temporal's `global.metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus scrape endpoint; absent means none is served.
    #[serde(default)]
    pub prometheus: Option<Prometheus>,
}

/// A Prometheus scrape endpoint, Temporal's `global.metrics.prometheus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prometheus {
    /// Metrics library Temporal would use. Sundial always uses OpenTelemetry; the key is
    /// accepted so Temporal config files load unchanged.
    #[serde(default)]
    pub framework: MetricsFramework,
    /// How timers are exported: histogram buckets (default) or summaries.
    #[serde(default)]
    pub timer_type: TimerType,
    /// `ip:port` the scrape endpoint listens on, e.g. `127.0.0.1:8000`.
    pub listen_address: String,
}

/// Temporal's `framework` choice for Prometheus metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFramework {
    /// Uber's tally (Temporal's historical default).
    Tally,
    /// OpenTelemetry (what Sundial uses).
    #[default]
    Opentelemetry,
}

/// How timer metrics are exported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerType {
    /// Histogram buckets.
    #[default]
    Histogram,
    /// Client-side summaries (quantiles).
    Summary,
}

/// TLS settings, Temporal's `global.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// Node-to-node traffic (history, matching, internal frontend).
    #[serde(default)]
    pub internode: GroupTls,
    /// SDK and CLI traffic to the public frontend.
    #[serde(default)]
    pub frontend: GroupTls,
}

/// TLS for one group of connections: how we listen and how we dial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupTls {
    /// Listener side.
    #[serde(default)]
    pub server: ServerTls,
    /// Dialer side.
    #[serde(default)]
    pub client: ClientTls,
}

impl GroupTls {
    /// The keys set in this group (paths below it, e.g. `server.certFile`), the ones that
    /// matter most first.
    pub fn configured_keys(&self) -> Vec<&'static str> {
        let (server, client) = (&self.server, &self.client);
        [
            ("server.requireClientAuth", server.require_client_auth),
            ("server.certFile", server.cert_file.is_some()),
            ("server.keyFile", server.key_file.is_some()),
            ("server.clientCaFiles", !server.client_ca_files.is_empty()),
            ("client.serverName", client.server_name.is_some()),
            ("client.rootCaFiles", !client.root_ca_files.is_empty()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    /// True when the listener serves TLS (a certificate is configured).
    pub fn is_server_enabled(&self) -> bool {
        self.server.cert_file.is_some()
    }

    /// True when the dialer uses TLS (root CAs or a server name are configured).
    pub fn is_client_enabled(&self) -> bool {
        !self.client.root_ca_files.is_empty() || self.client.server_name.is_some()
    }
}

/// Listener TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTls {
    /// PEM certificate chain this listener presents.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `certFile`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Require clients to present a certificate signed by one of `clientCaFiles` (mutual TLS).
    #[serde(default)]
    pub require_client_auth: bool,
    /// PEM CA certificates trusted to sign client certificates.
    #[serde(default)]
    pub client_ca_files: Vec<PathBuf>,
}

/// Dialer TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTls {
    /// DNS name expected in the server's certificate; `None` uses the dialed host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM CA certificates trusted to sign server certificates; empty uses the system roots.
    #[serde(default)]
    pub root_ca_files: Vec<PathBuf>,
}

impl Global {
    pub(crate) fn validate(&self, path: &str) -> Result<(), Error> {
        if let Some(address) = &self.membership.broadcast_address
            && address.parse::<IpAddr>().is_err()
        {
            return Err(Error::validation(
                format!("{path}.membership.broadcastAddress"),
                format!("{address:?} is not an IP address"),
            ));
        }
        if let Some(prometheus) = self.metrics.as_ref().and_then(|m| m.prometheus.as_ref())
            && prometheus.listen_address.parse::<SocketAddr>().is_err()
        {
            return Err(Error::validation(
                format!("{path}.metrics.prometheus.listenAddress"),
                format!("{:?} is not an ip:port address", prometheus.listen_address),
            ));
        }
        self.tls
            .internode
            .validate(&format!("{path}.tls.internode"))?;
        self.tls.frontend.validate(&format!("{path}.tls.frontend"))
    }
}

impl GroupTls {
    fn validate(&self, path: &str) -> Result<(), Error> {
        let server = &self.server;
        match (&server.cert_file, &server.key_file) {
            (Some(_), None) => {
                return Err(Error::validation(
                    format!("{path}.server.keyFile"),
                    "required when certFile is set",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::validation(
                    format!("{path}.server.certFile"),
                    "required when keyFile is set",
                ));
            }
            _ => {}
        }
        if server.require_client_auth {
            if server.cert_file.is_none() {
                return Err(Error::validation(
                    format!("{path}.server.requireClientAuth"),
                    "needs certFile and keyFile: client authentication only works over TLS",
                ));
            }
            if server.client_ca_files.is_empty() {
                return Err(Error::validation(
                    format!("{path}.server.clientCaFiles"),
                    "required when requireClientAuth is true: no client certificate could be trusted",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(yaml: &str) -> Global {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn empty_global_is_valid() {
        assert_eq!(Global::default().validate("global").ok(), Some(()));
    }

    #[test]
    fn broadcast_address_must_be_an_ip() {
        let g = global("membership: { broadcastAddress: my-host }");
        let err = g.validate("global").unwrap_err();
        assert_eq!(err.path(), Some("global.membership.broadcastAddress"));
    }

    #[test]
    fn prometheus_listen_address_must_be_ip_port() {
        let g = global("metrics: { prometheus: { listenAddress: '127.0.0.1' } }");
        let err = g.validate("global").unwrap_err();
        assert_eq!(err.path(), Some("global.metrics.prometheus.listenAddress"));
    }

    #[test]
    fn tls_cert_needs_key() {
        let g = global("tls: { frontend: { server: { certFile: a.pem } } }");
        let err = g.validate("global").unwrap_err();
        assert_eq!(err.path(), Some("global.tls.frontend.server.keyFile"));
    }

    #[test]
    fn tls_client_auth_needs_client_cas() {
        let g = global(
            "tls: { internode: { server: { certFile: a.pem, keyFile: a.key, requireClientAuth: true } } }",
        );
        let err = g.validate("global").unwrap_err();
        assert_eq!(
            err.path(),
            Some("global.tls.internode.server.clientCaFiles")
        );
    }

    #[test]
    fn full_tls_section_parses_and_validates() {
        let g = global(
            r#"
tls:
  internode:
    server: { certFile: n.pem, keyFile: n.key, requireClientAuth: true, clientCaFiles: [ca.pem] }
    client: { serverName: internode.sundial, rootCaFiles: [ca.pem] }
  frontend:
    server: { certFile: f.pem, keyFile: f.key }
"#,
        );
        g.validate("global").unwrap();
        assert!(g.tls.internode.is_server_enabled());
        assert!(g.tls.internode.is_client_enabled());
        assert!(!g.tls.frontend.is_client_enabled());
        assert_eq!(
            g.tls.frontend.configured_keys(),
            ["server.certFile", "server.keyFile"]
        );
        assert_eq!(
            g.tls.internode.configured_keys()[0],
            "server.requireClientAuth"
        );
        assert!(GroupTls::default().configured_keys().is_empty());
        assert_eq!(
            g.tls.internode.client.server_name.as_deref(),
            Some("internode.sundial")
        );
    }

    #[test]
    fn authorization_is_enabled_by_an_authorizer_a_claim_mapper_or_key_sources() {
        assert!(!Global::default().authorization.is_enabled());
        // Temporal's docker template: every key present, all empty but the claim name.
        let template = global(
            "authorization: { jwtKeyProvider: { keySourceURIs: [''], refreshInterval: 1m },
               permissionsClaimName: permissions, authorizer: '', claimMapper: '' }",
        );
        assert!(!template.authorization.is_enabled());
        assert_eq!(
            global("authorization: { claimMapper: default, authorizer: default }")
                .authorization
                .enabled_keys(),
            ["authorizer", "claimMapper"]
        );
        for yaml in [
            "authorization: { authorizer: default }",
            "authorization: { claimMapper: default }",
            "authorization: { jwtKeyProvider: { keySourceURIs: ['http://keys/jwks.json'] } }",
        ] {
            assert!(global(yaml).authorization.is_enabled(), "{yaml}");
        }
    }
}
