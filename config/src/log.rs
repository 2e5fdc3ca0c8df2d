//! `log`: where logs go, how verbose, in which format.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Logging, Temporal's `log` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Log {
    /// Write logs to stdout. When false and `outputFile` is unset, logs go to stderr
    /// (Temporal's behaviour).
    pub stdout: bool,
    /// Least severe level written. Overridden by the `LOG_LEVEL` environment variable.
    pub level: LogLevel,
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
    /// Append logs to this file instead of stderr (ignored when `stdout` is true).
    pub output_file: Option<PathBuf>,
}

/// Log severity threshold; written in lowercase.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-request detail.
    Debug,
    /// Normal operation.
    #[default]
    Info,
    /// Something unexpected that the server recovered from.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The name as written in YAML and in `LOG_LEVEL`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `LOG_LEVEL` value that names no level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}; expected one of debug, info, warn, error")]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    /// Parses the lowercase names the YAML accepts (for `LOG_LEVEL`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ]
        .into_iter()
        .find(|level| level.as_str() == name)
        .ok_or_else(|| UnknownLogLevel(name.to_owned()))
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Console,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let log: Log = serde_yaml::from_str("{}").unwrap();
        assert_eq!(log.level, LogLevel::Info);
        assert_eq!(log.format, LogFormat::Console);
        assert!(!log.stdout);
        assert_eq!(log.output_file, None);
    }

    #[test]
    fn level_parses_lowercase_names_only() {
        assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert!("WARN".parse::<LogLevel>().is_err());
        assert!(serde_yaml::from_str::<LogLevel>("WARN").is_err());
        assert!(LogLevel::Debug < LogLevel::Error);
    }
}
