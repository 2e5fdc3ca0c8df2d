//! `config::Error`: every failure names the file or the config path at fault.

use std::path::PathBuf;

/// Why a config could not be loaded.
///
/// `Parse` and `Validation` carry the dotted path of the offending key in Temporal's YAML
/// layout (e.g. `persistence.datastores.default.sql.pluginName`), so an operator can find it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, a missing key or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// Dotted path of the offending key (`.` for the document root).
        path: String,
        /// What is wrong, with the line and column when the YAML parser knows them.
        message: String,
    },
    /// The YAML is well formed but breaks a rule that spans values (e.g. a store name that
    /// names no datastore, two services on one port).
    #[error("{path}: {message}")]
    Validation {
        /// Dotted path of the offending key.
        path: String,
        /// Which rule is broken.
        message: String,
    },
}

impl Error {
    /// A validation error at `path`.
    pub(crate) fn validation(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The dotted config path at fault, or `None` for an I/O error.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::Io { .. } => None,
            Error::Parse { path, .. } | Error::Validation { path, .. } => Some(path),
        }
    }
}

impl From<serde_path_to_error::Error<serde_yaml::Error>> for Error {
    fn from(err: serde_path_to_error::Error<serde_yaml::Error>) -> Self {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let message = strip_path_prefix(&path, message);
        Error::Parse { path, message }
    }
}

/// serde_yaml sometimes starts its message with the path (or its parent's); since `Parse`
/// already names the path, drop the repetition.
fn strip_path_prefix(path: &str, message: String) -> String {
    if let Some((head, rest)) = message.split_once(": ") {
        let is_prefix = path == head
            || path
                .strip_prefix(head)
                .is_some_and(|tail| tail.starts_with(['.', '[']));
        if !head.is_empty() && is_prefix {
            return rest.to_owned();
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_the_path_first() {
        let err = Error::validation("persistence.numHistoryShards", "must be at least 1");
        assert_eq!(
            err.to_string(),
            "persistence.numHistoryShards: must be at least 1"
        );
        assert_eq!(err.path(), Some("persistence.numHistoryShards"));
    }

    #[test]
    fn repeated_path_prefix_is_dropped() {
        let strip = |path, message: &str| strip_path_prefix(path, message.to_owned());
        assert_eq!(strip("a.b", "a.b: bad"), "bad");
        assert_eq!(
            strip("a.b.c", "a.b: unknown field `c`"),
            "unknown field `c`"
        );
        assert_eq!(strip("a.bc", "a.b: x"), "a.b: x");
        assert_eq!(
            strip("a", "invalid duration \"x\": y"),
            "invalid duration \"x\": y"
        );
    }

    #[test]
    fn io_error_names_the_file() {
        let err = Error::Io {
            path: PathBuf::from("/nope/sundial.yaml"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(err.to_string().contains("/nope/sundial.yaml"), "{err}");
        assert_eq!(err.path(), None);
    }
}
