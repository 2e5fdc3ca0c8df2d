//! Connection options of the PostgreSQL backend, one field per key of Temporal's
//! `persistence.datastores.<name>.sql` section that applies to PostgreSQL. Every key is either
//! honoured or refused with an error that names it; none is ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::Config as PgConfig;
use deadpool_postgres::tokio_postgres::config::{ChannelBinding, SslMode, TargetSessionAttrs};

use super::tls::{MakeTls, Verify};
use crate::{Error, Result};

/// Pool size when `maxConns` is not set.
pub const DEFAULT_MAX_CONNS: usize = 20;

/// How long a caller waits for a free pooled connection before the call fails with
/// [`Error::Unavailable`].
pub(super) const POOL_WAIT: Duration = Duration::from_secs(10);

/// Settings of every session the store opens (the startup `options` parameter).
///
/// Every statement of the store finds its rows by key: a primary-key lookup, a range of a
/// key's prefix, or keys given in arrays and looked up one by one (`commit.rs`). A plan that
/// reads other rows is a mistake the planner makes on bad estimates: statistics taken while a
/// table was small once made commits join their arrays to every row of the shard (600 rows
/// read per commit after 10k workflows, growing with the table). So sessions forbid the plans
/// that do not go by key where a key exists (sequential and bitmap scans, hash and merge
/// joins: the planner still uses them where nothing else can run), and then plan each
/// statement once (`plan_cache_mode=force_generic_plan`): planning every execution with its
/// parameters cost PostgreSQL a third of its CPU.
///
/// A session idle inside a transaction for 5 s is ended by the server
/// (`idle_in_transaction_session_timeout`): a commit holds the shard row's lock (`FOR SHARE`)
/// while it runs, and an owner that stopped mid-commit (SIGSTOP, a frozen VM) would otherwise
/// keep the next owner's acquire of the shard waiting for as long as it is stopped. Sundial's
/// transactions send their statements back to back, so no healthy one is idle that long.
const SESSION_OPTIONS: &str = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off \
     -c enable_bitmapscan=off -c enable_hashjoin=off -c enable_mergejoin=off \
     -c idle_in_transaction_session_timeout=5s";

/// How long opening one connection may take, unless `connectAttributes.connect_timeout` says
/// otherwise.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach the database: Temporal's `sql` keys, by their Rust names.
///
/// A value of `0` (or an empty map) means "not set", as in Temporal's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostgresOptions {
    /// `connectAddr`: `host:port`, `[ipv6]:port` or `host` (port 5432).
    pub connect_addr: String,
    /// `databaseName`.
    pub database_name: String,
    /// `user`.
    pub user: String,
    /// `password` (empty: none).
    pub password: String,
    /// `maxConns`: most connections the pool opens ([`DEFAULT_MAX_CONNS`] when 0).
    pub max_conns: usize,
    /// `maxIdleConns`: most idle connections kept open; idle ones past it are closed (all are
    /// kept when 0).
    pub max_idle_conns: usize,
    /// `maxConnLifetime`: a connection older than this is closed instead of being reused
    /// (no limit when zero).
    pub max_conn_lifetime: Duration,
    /// `connectAttributes`: libpq connection parameters. Honoured: `application_name`,
    /// `options`, `connect_timeout`, `tcp_user_timeout`, `keepalives`, `keepalives_idle`,
    /// `keepalives_interval`, `keepalives_retries`, `target_session_attrs`, `channel_binding`
    /// and `sslmode` (`disable`, `prefer`, `require`, and with `tls` `verify-ca` and
    /// `verify-full`). Any other key is refused.
    pub connect_attributes: BTreeMap<String, String>,
    /// `tls`.
    pub tls: TlsOptions,
}

/// Temporal's `sql.tls` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `enabled`: connect with TLS (`sslmode=require`, or `verify-full` with
    /// `enable_host_verification`; `connectAttributes.sslmode` may say otherwise). The other
    /// keys apply only to TLS connections, so while it is `false` they are unused (as in
    /// Temporal). See `tls` for what each mode checks.
    pub enabled: bool,
    /// `caFile`: the roots the server's certificate must lead to (needed to verify it).
    pub ca_file: Option<PathBuf>,
    /// `certFile`: the client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// `keyFile`: its private key.
    pub key_file: Option<PathBuf>,
    /// `enableHostVerification`: check the server's name too (`verify-full`).
    pub enable_host_verification: bool,
    /// `serverName`: the name sent and checked instead of `connectAddr`'s host.
    pub server_name: Option<String>,
}

/// An option Sundial cannot honour, named by its Temporal key.
fn invalid(key: &str, why: impl std::fmt::Display) -> Error {
    Error::Backend(format!("PostgreSQL option `{key}`: {why}"))
}

impl PostgresOptions {
    /// The pool size.
    pub(super) fn pool_size(&self) -> usize {
        if self.max_conns == 0 {
            DEFAULT_MAX_CONNS
        } else {
            self.max_conns
        }
    }

    /// How many idle connections the pool keeps.
    pub(super) fn idle_limit(&self) -> usize {
        if self.max_idle_conns == 0 {
            self.pool_size()
        } else {
            self.max_idle_conns.min(self.pool_size())
        }
    }

    /// The lifetime limit of a connection, if any.
    pub(super) fn lifetime_limit(&self) -> Option<Duration> {
        (!self.max_conn_lifetime.is_zero()).then_some(self.max_conn_lifetime)
    }

    /// Where the server is, for messages: `host:port/database as user`.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL at {} (database {:?}, user {:?})",
            self.connect_addr, self.database_name, self.user
        )
    }

    /// The driver's configuration for connecting to `database` (the configured one, or a
    /// maintenance database when creating it), and the TLS connector it needs. Refuses every
    /// option it cannot honour.
    pub(super) fn connection(&self, database: &str) -> Result<(PgConfig, MakeTls)> {
        let (host, port) = split_addr(&self.connect_addr)?;
        if database.is_empty() {
            return Err(invalid("databaseName", "must be set"));
        }
        if self.user.is_empty() {
            return Err(invalid("user", "must be set"));
        }
        let mut config = PgConfig::new();
        config
            .host(host)
            .port(port)
            .dbname(database)
            .user(&self.user)
            .application_name("sundial")
            .options(SESSION_OPTIONS)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        if !self.password.is_empty() {
            config.password(self.password.as_bytes());
        }
        for (key, value) in &self.connect_attributes {
            apply_attribute(&mut config, key, value)?;
        }
        let (ssl_mode, tls) = self.tls_mode()?;
        config.ssl_mode(ssl_mode);
        Ok((config, tls))
    }

    /// The driver's `sslmode` and the TLS connector, from `tls` and
    /// `connectAttributes.sslmode`, as Temporal's PostgreSQL plugin derives libpq's `sslmode`.
    fn tls_mode(&self) -> Result<(SslMode, MakeTls)> {
        const KEY: &str = "connectAttributes.sslmode";
        let attribute = self.connect_attributes.get("sslmode").map(String::as_str);
        if !self.tls.enabled {
            return match attribute {
                None | Some("disable") => Ok((SslMode::Disable, MakeTls::off())),
                // Encrypted if the server offers TLS, unverified, as libpq does.
                Some("prefer") => Ok((
                    SslMode::Prefer,
                    MakeTls::new(&TlsOptions::default(), Verify::Nothing)?,
                )),
                Some("require") => Ok((
                    SslMode::Require,
                    MakeTls::new(&TlsOptions::default(), Verify::Nothing)?,
                )),
                Some(mode @ ("verify-ca" | "verify-full")) => Err(invalid(
                    KEY,
                    format!("{mode:?} needs tls.enabled and tls.caFile"),
                )),
                Some(mode) => Err(unsupported_sslmode(mode)),
            };
        }
        let mode = attribute.unwrap_or(if self.tls.enable_host_verification {
            "verify-full"
        } else {
            "require"
        });
        let verify = match mode {
            // libpq: `require` with a root certificate verifies the chain.
            "require" if self.tls.ca_file.is_some() => Verify::Chain,
            "require" => Verify::Nothing,
            "verify-ca" => Verify::Chain,
            "verify-full" => Verify::Full,
            "disable" | "prefer" => {
                return Err(invalid(KEY, format!("{mode:?} contradicts tls.enabled")));
            }
            mode => return Err(unsupported_sslmode(mode)),
        };
        Ok((SslMode::Require, MakeTls::new(&self.tls, verify)?))
    }
}

fn unsupported_sslmode(mode: &str) -> Error {
    invalid(
        "connectAttributes.sslmode",
        format!("{mode:?} is not one of disable, prefer, require, verify-ca, verify-full"),
    )
}

/// Splits `connectAddr` into host and port.
fn split_addr(addr: &str) -> Result<(&str, u16)> {
    const KEY: &str = "connectAddr";
    if addr.is_empty() {
        return Err(invalid(KEY, "must be set (host:port)"));
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(KEY, format!("{addr:?}: unclosed '['")))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(KEY, format!("{addr:?}: expected :port after ']'"))),
            },
        }
    } else {
        match addr.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(invalid(
                    KEY,
                    format!("{addr:?}: write an IPv6 address as [address]:port"),
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (addr, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(KEY, format!("{addr:?}: no host")));
    }
    let port = match port {
        None => 5432,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(KEY, format!("{addr:?}: bad port {port:?}")))?,
    };
    Ok((host, port))
}

/// Applies one `connectAttributes` entry, or refuses it.
fn apply_attribute(config: &mut PgConfig, key: &str, value: &str) -> Result<()> {
    let path = format!("connectAttributes.{key}");
    let bad = |what: &str| invalid(&path, format!("{value:?} is not {what}"));
    let seconds = || {
        value
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad("a number of seconds"))
    };
    match key {
        "application_name" => {
            config.application_name(value);
        }
        "options" => {
            // The user's settings come last, so theirs win.
            config.options(format!("{SESSION_OPTIONS} {value}"));
        }
        "connect_timeout" => {
            // libpq's 0 waits forever; Sundial bounds every connection attempt.
            let timeout = seconds()?;
            if timeout.is_zero() {
                return Err(bad("at least 1 second"));
            }
            config.connect_timeout(timeout);
        }
        "tcp_user_timeout" => {
            let millis = value
                .parse::<u64>()
                .map_err(|_| bad("a number of milliseconds"))?;
            config.tcp_user_timeout(Duration::from_millis(millis));
        }
        "keepalives" => {
            let on = match value {
                "1" => true,
                "0" => false,
                _ => return Err(bad("0 or 1")),
            };
            config.keepalives(on);
        }
        "keepalives_idle" => {
            config.keepalives_idle(seconds()?);
        }
        "keepalives_interval" => {
            config.keepalives_interval(seconds()?);
        }
        "keepalives_retries" => {
            config.keepalives_retries(value.parse().map_err(|_| bad("a count"))?);
        }
        "target_session_attrs" => {
            config.target_session_attrs(match value {
                "any" => TargetSessionAttrs::Any,
                "read-write" => TargetSessionAttrs::ReadWrite,
                "read-only" => TargetSessionAttrs::ReadOnly,
                _ => return Err(bad("any, read-write or read-only")),
            });
        }
        "channel_binding" => {
            config.channel_binding(match value {
                "disable" => ChannelBinding::Disable,
                "prefer" => ChannelBinding::Prefer,
                "require" => ChannelBinding::Require,
                _ => return Err(bad("disable, prefer or require")),
            });
        }
        // Read with the `tls` keys (`tls_mode`).
        "sslmode" => {}
        "user" | "password" | "dbname" | "host" | "hostaddr" | "port" => {
            return Err(invalid(
                &path,
                "set it with its own key (user, password, databaseName, connectAddr)",
            ));
        }
        _ => {
            return Err(invalid(
                &path,
                "not a connection parameter Sundial supports",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(addr: &str) -> PostgresOptions {
        PostgresOptions {
            connect_addr: addr.to_string(),
            database_name: "sundial".to_string(),
            user: "temporal".to_string(),
            ..PostgresOptions::default()
        }
    }

    fn refusal(options: &PostgresOptions) -> String {
        match options.connection("sundial") {
            Err(Error::Backend(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn connect_addr_forms() {
        assert_eq!(split_addr("db.local:6543").unwrap(), ("db.local", 6543));
        assert_eq!(split_addr("db.local").unwrap(), ("db.local", 5432));
        assert_eq!(split_addr("[::1]:5433").unwrap(), ("::1", 5433));
        assert_eq!(split_addr("[::1]").unwrap(), ("::1", 5432));
        for bad in ["", ":5432", "db:0", "db:port", "::1:5432", "[::1", "[::1]x"] {
            let err = split_addr(bad).unwrap_err();
            assert!(err.to_string().contains("connectAddr"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn connection_carries_the_keys() {
        let mut o = options("127.0.0.1:5433");
        o.password = "secret".to_string();
        o.connect_attributes = BTreeMap::from([
            ("application_name".to_string(), "worker-7".to_string()),
            ("connect_timeout".to_string(), "3".to_string()),
            ("keepalives_idle".to_string(), "30".to_string()),
            ("options".to_string(), "-c statement_timeout=5s".to_string()),
            ("sslmode".to_string(), "disable".to_string()),
        ]);
        let (config, _) = o.connection("sundial").unwrap();
        assert_eq!(config.get_ports(), &[5433]);
        assert_eq!(config.get_dbname(), Some("sundial"));
        assert_eq!(config.get_user(), Some("temporal"));
        assert_eq!(config.get_password(), Some(&b"secret"[..]));
        assert_eq!(config.get_application_name(), Some("worker-7"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(30));
        // The store's session settings first, the user's after them (theirs win).
        assert_eq!(
            config.get_options(),
            Some(format!("{SESSION_OPTIONS} -c statement_timeout=5s").as_str())
        );
    }

    #[test]
    fn unknown_or_unsupported_keys_are_refused_by_name() {
        let mut o = options("db:5432");
        o.connect_attributes
            .insert("statement_cache".to_string(), "1".to_string());
        assert!(refusal(&o).contains("connectAttributes.statement_cache"));

        let mut o = options("db:5432");
        o.connect_attributes
            .insert("sslmode".to_string(), "verify-full".to_string());
        let message = refusal(&o);
        assert!(message.contains("connectAttributes.sslmode"), "{message}");
        assert!(message.contains("tls.caFile"), "{message}");
        o.connect_attributes
            .insert("sslmode".to_string(), "allow".to_string());
        assert!(refusal(&o).contains("connectAttributes.sslmode"));

        let mut o = options("db:5432");
        o.connect_attributes
            .insert("dbname".to_string(), "other".to_string());
        assert!(refusal(&o).contains("connectAttributes.dbname"));

        let mut o = options("db:5432");
        o.connect_attributes
            .insert("keepalives".to_string(), "yes".to_string());
        assert!(refusal(&o).contains("connectAttributes.keepalives"));

        let mut o = options("db:5432");
        o.tls.enabled = true;
        o.tls.enable_host_verification = true;
        let message = refusal(&o);
        assert!(message.contains("tls.caFile"), "{message}");
        o.tls.enable_host_verification = false;
        o.connect_attributes
            .insert("sslmode".to_string(), "disable".to_string());
        assert!(refusal(&o).contains("contradicts tls.enabled"));
        o.connect_attributes.clear();
        o.tls.cert_file = Some("client.pem".into());
        assert!(refusal(&o).contains("tls.keyFile"));
        o.tls.cert_file = None;
        o.tls.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(refusal(&o).contains("tls.caFile"));

        let mut o = options("db:5432");
        o.user.clear();
        assert!(refusal(&o).contains("`user`"));
    }

    #[test]
    fn tls_modes_follow_temporal_and_libpq() {
        let mode = |o: &PostgresOptions| o.connection("sundial").unwrap().0.get_ssl_mode();
        let mut o = options("db:5432");
        assert_eq!(mode(&o), SslMode::Disable);
        o.connect_attributes
            .insert("sslmode".to_string(), "prefer".to_string());
        assert_eq!(mode(&o), SslMode::Prefer);
        o.connect_attributes.clear();
        o.tls.enabled = true;
        assert_eq!(mode(&o), SslMode::Require);
    }

    #[test]
    fn pool_limits_follow_temporal_defaults() {
        let mut o = options("db");
        assert_eq!(
            (o.pool_size(), o.idle_limit()),
            (DEFAULT_MAX_CONNS, DEFAULT_MAX_CONNS)
        );
        assert_eq!(o.lifetime_limit(), None);
        o.max_conns = 8;
        o.max_idle_conns = 20;
        o.max_conn_lifetime = Duration::from_secs(3600);
        assert_eq!((o.pool_size(), o.idle_limit()), (8, 8));
        assert_eq!(o.lifetime_limit(), Some(Duration::from_secs(3600)));
        o.max_idle_conns = 2;
        assert_eq!(o.idle_limit(), 2);
    }
}
