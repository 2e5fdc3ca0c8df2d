//! How to reach a MySQL server: the keys of Temporal's `persistence.datastores.<name>.sql` that
//! apply to MySQL, checked and turned into `mysql_async` options. A key Sundial cannot honour is
//! an error naming it, never ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mysql_async::{Opts, OptsBuilder, PoolConstraints, PoolOpts};

/// Connections a pool opens at most when `maxConns` is not set (Temporal's sample configs use
/// 20; Go's "unlimited" default is not offered).
pub const DEFAULT_MAX_CONNS: usize = 20;

/// The MySQL keys of a datastore's `sql` section, named as Temporal names them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MysqlOptions {
    /// `connectAddr`: `host:port` for TCP (port 3306 when left out), the socket's path for
    /// `unix`.
    pub connect_addr: String,
    /// `connectProtocol`: `tcp` (the default when empty) or `unix`.
    pub connect_protocol: String,
    /// `databaseName`.
    pub database_name: String,
    /// `user`.
    pub user: String,
    /// `password`.
    pub password: String,
    /// `maxConns`: connections the pool opens at most; 0 means [`DEFAULT_MAX_CONNS`].
    pub max_conns: usize,
    /// `maxIdleConns`: idle connections the pool keeps (more are closed when returned); 0 means
    /// as many as `maxConns`; more than `maxConns` counts as `maxConns`, as in Go.
    pub max_idle_conns: usize,
    /// `maxConnLifetime`: a connection is closed once this old (whole seconds); zero: never.
    pub max_conn_lifetime: Duration,
    /// `connectAttributes`: as Temporal's MySQL plugin does it (go-sql-driver DSN parameters),
    /// each is a session system variable set on every new connection (`SET SESSION key =
    /// value`, the value as SQL, so strings carry their quotes). Driver parameters of
    /// go-sql-driver are refused.
    pub connect_attributes: BTreeMap<String, String>,
    /// `tls`.
    pub tls: TlsOptions,
}

/// The `tls` keys of a datastore's `sql` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// `enabled`: TLS to MySQL is not supported yet, so `true` is refused. The other keys apply
    /// to TLS connections only, so while it is `false` they are unused (as in Temporal).
    pub enabled: bool,
    /// `caFile`.
    pub ca_file: Option<PathBuf>,
    /// `certFile`.
    pub cert_file: Option<PathBuf>,
    /// `keyFile`.
    pub key_file: Option<PathBuf>,
    /// `enableHostVerification`.
    pub enable_host_verification: bool,
    /// `serverName`.
    pub server_name: Option<String>,
}

/// A key of [`MysqlOptions`] that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// The key, as Temporal spells it under `sql` (`tls.enabled`, `connectAttributes.tls`).
    pub key: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sql.{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for OptionError {}

fn refuse(key: impl Into<String>, reason: impl Into<String>) -> OptionError {
    OptionError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// go-sql-driver's own DSN parameters: in Temporal they configure the Go driver, not the
/// session, and Sundial has no equivalent for them.
const GO_DRIVER_PARAMETERS: &[&str] = &[
    "allowAllFiles",
    "allowCleartextPasswords",
    "allowFallbackToPlaintext",
    "allowNativePasswords",
    "allowOldPasswords",
    "charset",
    "checkConnLiveness",
    "clientFoundRows",
    "collation",
    "columnsWithAlias",
    "connectionAttributes",
    "interpolateParams",
    "loc",
    "maxAllowedPacket",
    "multiStatements",
    "parseTime",
    "readTimeout",
    "rejectReadOnly",
    "serverPubKey",
    "timeTruncate",
    "timeout",
    "tls",
    "writeTimeout",
];

/// The session variables that choose the isolation level: Sundial's transactions rely on
/// READ COMMITTED (see `super::store`), so only that value is accepted.
const ISOLATION_VARIABLES: &[&str] = &["transaction_isolation", "tx_isolation"];

/// How a connection reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Tcp,
    Unix,
}

impl MysqlOptions {
    /// Checks every key; the first that cannot be honoured is the error.
    pub fn check(&self) -> Result<(), OptionError> {
        self.protocol()?;
        if self.connect_addr.trim().is_empty() {
            return Err(refuse("connectAddr", "must name the server"));
        }
        if self.database_name.is_empty() {
            return Err(refuse("databaseName", "must name the database"));
        }
        if !is_identifier(&self.database_name) {
            return Err(refuse(
                "databaseName",
                "only letters, digits, `_` and `$` are supported",
            ));
        }
        let lifetime = self.max_conn_lifetime;
        if !lifetime.is_zero() && lifetime < Duration::from_secs(1) {
            return Err(refuse(
                "maxConnLifetime",
                "must be zero (unlimited) or at least one second",
            ));
        }
        self.session_variables()?;
        if self.tls.enabled {
            return Err(refuse(
                "tls.enabled",
                "TLS connections to MySQL are not supported yet",
            ));
        }
        Ok(())
    }

    fn protocol(&self) -> Result<Protocol, OptionError> {
        match self.connect_protocol.as_str() {
            "" | "tcp" => Ok(Protocol::Tcp),
            "unix" => Ok(Protocol::Unix),
            other => Err(refuse(
                "connectProtocol",
                format!("`{other}` is not supported (use `tcp` or `unix`)"),
            )),
        }
    }

    /// The `SET SESSION` assignments of `connectAttributes`, checked.
    fn session_variables(&self) -> Result<Vec<String>, OptionError> {
        let mut assignments = Vec::new();
        for (name, value) in &self.connect_attributes {
            let key = format!("connectAttributes.{name}");
            if GO_DRIVER_PARAMETERS.contains(&name.as_str()) {
                return Err(refuse(
                    key,
                    "a go-sql-driver parameter, which Sundial does not support",
                ));
            }
            if !is_identifier(name) {
                return Err(refuse(key, "not a MySQL system variable name"));
            }
            let value = value.trim();
            if value.is_empty() || value.contains(';') {
                return Err(refuse(key, "the value must be one SQL value"));
            }
            let lower = name.to_ascii_lowercase();
            if ISOLATION_VARIABLES.contains(&lower.as_str()) {
                let level = value.trim_matches('\'').to_ascii_uppercase();
                if level != "READ-COMMITTED" {
                    return Err(refuse(
                        key,
                        "Sundial runs its transactions at READ-COMMITTED only",
                    ));
                }
                continue; // Set anyway, below.
            }
            assignments.push(format!("{name} = {value}"));
        }
        Ok(assignments)
    }

    /// Where the server is, for messages: `host:port/database` or `socket/database`.
    pub fn target(&self) -> String {
        format!("{}/{}", self.connect_addr, self.database_name)
    }

    /// The `mysql_async` options of a pool on the database (`with_database`) or on the server
    /// alone (to create the database).
    pub(super) fn to_opts(&self, with_database: bool) -> Result<Opts, OptionError> {
        self.check()?;
        let mut builder = OptsBuilder::default()
            .user(Some(&self.user))
            .pass(Some(&self.password))
            .db_name(with_database.then_some(&self.database_name))
            // Statements a connection keeps prepared: every statement of the store fits.
            .stmt_cache_size(64)
            .init(self.session_setup()?);
        builder = match self.protocol()? {
            Protocol::Tcp => {
                let (host, port) = split_host_port(&self.connect_addr)?;
                // Never switch to the server's socket behind the caller's back.
                builder
                    .ip_or_hostname(host)
                    .tcp_port(port)
                    .prefer_socket(false)
            }
            Protocol::Unix => builder.socket(Some(&self.connect_addr)),
        };
        let max = if self.max_conns == 0 {
            DEFAULT_MAX_CONNS
        } else {
            self.max_conns
        };
        let idle = match self.max_idle_conns {
            0 => max,
            n => n.min(max),
        };
        let constraints = PoolConstraints::new(idle, max)
            .ok_or_else(|| refuse("maxIdleConns", "must not exceed maxConns"))?;
        let lifetime = Some(self.max_conn_lifetime).filter(|d| !d.is_zero());
        let pool = PoolOpts::default()
            .with_constraints(constraints)
            // Zero: at most `idle` connections wait in the pool, the rest close on return.
            .with_inactive_connection_ttl(Duration::ZERO)
            .with_abs_conn_ttl(lifetime)
            // Sessions hold nothing to reset (no temporary tables, no user variables), and a
            // reset would cost a round trip and drop the prepared statements on every return.
            .with_reset_connection(false);
        Ok(builder.pool_opts(pool).into())
    }

    /// The statements every new connection runs first: the session's isolation level, its SQL
    /// mode, then the `connectAttributes` (which may override the SQL mode).
    fn session_setup(&self) -> Result<Vec<String>, OptionError> {
        let mut assignments = vec![
            // Strict: a key or value too long for its column fails instead of being cut.
            "sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'".to_string(),
        ];
        assignments.extend(self.session_variables()?);
        Ok(vec![
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
            format!("SET SESSION {}", assignments.join(", ")),
        ])
    }
}

/// `host:port`, `host` (port 3306), `[v6]:port`.
fn split_host_port(addr: &str) -> Result<(String, u16), OptionError> {
    let addr = addr.trim();
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| refuse("connectAddr", format!("`{addr}`: unclosed `[`")))?;
        (host, tail.strip_prefix(':'))
    } else if addr.matches(':').count() == 1 {
        let (host, port) = addr.split_once(':').unwrap_or((addr, ""));
        (host, Some(port))
    } else {
        (addr, None)
    };
    let port = match port {
        None => 3306,
        Some(p) => p
            .parse()
            .map_err(|_| refuse("connectAddr", format!("`{addr}`: bad port")))?,
    };
    Ok((host.to_string(), port))
}

/// An unquoted MySQL identifier Sundial accepts: ASCII letters, digits, `_` and `$`.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> MysqlOptions {
        MysqlOptions {
            connect_addr: "127.0.0.1:3306".into(),
            database_name: "temporal".into(),
            user: "temporal".into(),
            password: "secret".into(),
            ..MysqlOptions::default()
        }
    }

    fn refused_key(options: &MysqlOptions) -> String {
        options.check().unwrap_err().key
    }

    #[test]
    fn plain_options_are_accepted() {
        options().check().unwrap();
        let opts = options().to_opts(true).unwrap();
        assert_eq!(opts.ip_or_hostname(), "127.0.0.1");
        assert_eq!(opts.tcp_port(), 3306);
        assert_eq!(opts.db_name(), Some("temporal"));
        assert!(!opts.prefer_socket());
        let pool = opts.pool_opts().constraints();
        assert_eq!((pool.min(), pool.max()), (20, 20));
    }

    #[test]
    fn pool_keys_are_honoured() {
        let mut o = options();
        o.max_conns = 8;
        o.max_idle_conns = 3;
        o.max_conn_lifetime = Duration::from_secs(3600);
        let opts = o.to_opts(true).unwrap();
        let pool = opts.pool_opts();
        assert_eq!((pool.constraints().min(), pool.constraints().max()), (3, 8));
        assert_eq!(pool.abs_conn_ttl(), Some(Duration::from_secs(3600)));
        o.max_idle_conns = 50;
        let capped = o.to_opts(true).unwrap().pool_opts().constraints();
        assert_eq!((capped.min(), capped.max()), (8, 8));
    }

    #[test]
    fn addresses_and_protocols() {
        assert_eq!(split_host_port("db").unwrap(), ("db".into(), 3306));
        assert_eq!(split_host_port("db:3307").unwrap(), ("db".into(), 3307));
        assert_eq!(split_host_port("[::1]:3307").unwrap(), ("::1".into(), 3307));
        assert_eq!(split_host_port("db:x").unwrap_err().key, "connectAddr");
        let mut o = options();
        o.connect_protocol = "unix".into();
        o.connect_addr = "/run/mysqld/mysqld.sock".into();
        assert_eq!(
            o.to_opts(true).unwrap().socket(),
            Some("/run/mysqld/mysqld.sock")
        );
        o.connect_protocol = "udp".into();
        assert_eq!(refused_key(&o), "connectProtocol");
    }

    #[test]
    fn tls_is_refused_until_supported() {
        let mut o = options();
        o.tls.ca_file = Some("ca.pem".into());
        o.check().unwrap();
        o.tls.enabled = true;
        let err = o.check().unwrap_err();
        assert_eq!(err.key, "tls.enabled");
        assert!(err.to_string().contains("not supported yet"), "{err}");
    }

    #[test]
    fn connect_attributes_are_session_variables() {
        let mut o = options();
        o.connect_attributes
            .insert("innodb_lock_wait_timeout".into(), "7".into());
        o.connect_attributes
            .insert("transaction_isolation".into(), "'read-committed'".into());
        let setup = o.session_setup().unwrap().join("; ");
        assert!(setup.contains("innodb_lock_wait_timeout = 7"), "{setup}");
        assert!(!setup.contains("transaction_isolation"), "{setup}");

        for (name, value) in [
            ("tls", "skip-verify"),
            ("tx_isolation", "'REPEATABLE-READ'"),
            ("bad-name", "1"),
            ("wait_timeout", "1; DROP TABLE shards"),
        ] {
            let mut o = options();
            o.connect_attributes.insert(name.into(), value.into());
            assert_eq!(refused_key(&o), format!("connectAttributes.{name}"));
        }
    }

    #[test]
    fn other_refusals_name_their_key() {
        let mut o = options();
        o.database_name = "temporal`; --".into();
        assert_eq!(refused_key(&o), "databaseName");
        let mut o = options();
        o.connect_addr = String::new();
        assert_eq!(refused_key(&o), "connectAddr");
        let mut o = options();
        o.max_conn_lifetime = Duration::from_millis(500);
        assert_eq!(refused_key(&o), "maxConnLifetime");
    }
}
