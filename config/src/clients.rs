//! Small top-level sections: `dynamicConfigClient`, `publicClient`, `otel`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where the dynamic-config file lives, Temporal's `dynamicConfigClient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamicConfigClient {
    /// Path of the dynamic-config YAML file. Overridden by `DYNAMIC_CONFIG_FILE_PATH`.
    pub filepath: PathBuf,
    /// How often the file is checked for changes. Defaults to 10s.
    #[serde(default = "default_poll_interval", with = "crate::duration")]
    pub poll_interval: Duration,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(10)
}

/// How server-side workers reach the frontend, Temporal's `publicClient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicClient {
    /// `host:port` of the frontend, e.g. `127.0.0.1:7233`.
    pub host_port: String,
}

/// Trace export over OTLP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Otel {
    /// OTLP collector endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
}

impl DynamicConfigClient {
    pub(crate) fn validate(&self, path: &str) -> Result<(), Error> {
        if self.filepath.as_os_str().is_empty() {
            return Err(Error::validation(format!("{path}.filepath"), "required"));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::validation(
                format!("{path}.pollInterval"),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

impl PublicClient {
    pub(crate) fn validate(&self, path: &str) -> Result<(), Error> {
        if self.host_port.is_empty() {
            return Err(Error::validation(format!("{path}.hostPort"), "required"));
        }
        Ok(())
    }
}

impl Otel {
    pub(crate) fn validate(&self, path: &str) -> Result<(), Error> {
        if self.endpoint.is_empty() {
            return Err(Error::validation(format!("{path}.endpoint"), "required"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_config_poll_interval_defaults_and_parses() {
        let c: DynamicConfigClient = serde_yaml::from_str("filepath: dc.yaml").unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(10));
        let c: DynamicConfigClient =
            serde_yaml::from_str("{ filepath: dc.yaml, pollInterval: 500ms }").unwrap();
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        c.validate("dynamicConfigClient").unwrap();
    }

    #[test]
    fn dynamic_config_zero_poll_interval_is_rejected() {
        let c: DynamicConfigClient =
            serde_yaml::from_str("{ filepath: dc.yaml, pollInterval: 0s }").unwrap();
        let err = c.validate("dynamicConfigClient").unwrap_err();
        assert_eq!(err.path(), Some("dynamicConfigClient.pollInterval"));
    }

    #[test]
    fn empty_strings_are_rejected() {
        let p = PublicClient {
            host_port: String::new(),
        };
        assert_eq!(
            p.validate("publicClient").unwrap_err().path(),
            Some("publicClient.hostPort")
        );
        let o = Otel {
            endpoint: String::new(),
        };
        assert_eq!(
            o.validate("otel").unwrap_err().path(),
            Some("otel.endpoint")
        );
    }
}
