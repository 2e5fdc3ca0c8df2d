//! Dynamic config: Temporal's runtime knobs (`limit.historyCount.error`, ...) from a YAML file
//! in Temporal's layout (each key maps to a list of `{value, constraints}`) and from
//! `KEY=VALUE` overrides on the command line (`--dynamic-config-value`, as the `temporal` CLI
//! accepts them: the value is YAML/JSON). Keys Sundial does not use are kept, so callers can
//! warn about them, as Temporal does.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// One entry of a key's list in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The value.
    value: serde_yaml::Value,
    /// Namespace / task-queue scoping. Sundial applies only unconstrained values.
    #[serde(default)]
    constraints: BTreeMap<String, serde_yaml::Value>,
}

/// Dynamic-config values by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicConfig {
    values: BTreeMap<String, serde_yaml::Value>,
}

impl DynamicConfig {
    /// Parses Temporal's dynamic-config YAML. A key's first entry without constraints wins.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, Error> {
        if yaml.trim().is_empty() {
            return Ok(Self::default());
        }
        let parsed: BTreeMap<String, Vec<Entry>> =
            serde_yaml::from_str(yaml).map_err(|e| Error::Parse {
                path: e
                    .location()
                    .map_or_else(String::new, |l| format!("line {}", l.line())),
                message: e.to_string(),
            })?;
        let mut values = BTreeMap::new();
        for (key, entries) in parsed {
            if let Some(entry) = entries.into_iter().find(|e| e.constraints.is_empty()) {
                values.insert(key, entry.value);
            }
        }
        Ok(Self { values })
    }

    /// Reads and parses a dynamic-config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Applies one `KEY=VALUE` override.
    pub fn set_override(&mut self, assignment: &str) -> Result<(), Error> {
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(Error::Validation {
                path: assignment.to_string(),
                message: "expected KEY=VALUE".into(),
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::Validation {
                path: assignment.to_string(),
                message: "the key is empty".into(),
            });
        }
        let value: serde_yaml::Value = serde_yaml::from_str(value).map_err(|e| Error::Parse {
            path: key.to_string(),
            message: e.to_string(),
        })?;
        self.values.insert(key.to_string(), value);
        Ok(())
    }

    /// Every key with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_yaml::Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A key's value as an integer, if it is one.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.values.get(key).and_then(serde_yaml::Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_layout_and_overrides() {
        let mut dc = DynamicConfig::from_yaml_str(
            "limit.historyCount.error:\n  - value: 100\n    constraints: {namespace: other}\n  - value: 200\nsystem.foo:\n  - value: true\n",
        )
        .unwrap();
        assert_eq!(dc.get_i64("limit.historyCount.error"), Some(200));
        dc.set_override("limit.historyCount.suggestContinueAsNew=50")
            .unwrap();
        assert_eq!(
            dc.get_i64("limit.historyCount.suggestContinueAsNew"),
            Some(50)
        );
        dc.set_override(r#"frontend.namespace="x""#).unwrap();
        assert_eq!(dc.iter().count(), 4);
        assert!(dc.set_override("no-equals-sign").is_err());
    }

    #[test]
    fn bad_file_names_the_problem() {
        let err = DynamicConfig::from_yaml_str("key:\n  - vaule: 1\n").unwrap_err();
        assert!(err.to_string().contains("vaule"), "{err}");
    }
}
