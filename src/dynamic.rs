//! Dynamic config for a running node: the limits it sets, reloaded from the file while the
//! server runs (Temporal's `dynamicConfigClient`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use slog::{Logger, info, warn};
use sundial_actors::History;
use sundial_config::DynamicConfig;
use sundial_engine::Limits;

/// Where dynamic config comes from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The file (`dynamicConfigClient.filepath` or `DYNAMIC_CONFIG_FILE_PATH`).
    pub file: Option<PathBuf>,
    /// `KEY=VALUE` overrides (`--dynamic-config-value`), applied over the file.
    pub overrides: Vec<String>,
    /// How often the file is read again.
    pub poll_interval: Duration,
}

impl Source {
    /// Reads the file and applies the overrides.
    pub fn read(&self) -> Result<DynamicConfig> {
        let mut config = match &self.file {
            Some(path) => DynamicConfig::load(path)?,
            None => DynamicConfig::default(),
        };
        for assignment in &self.overrides {
            config.set_override(assignment)?;
        }
        Ok(config)
    }
}

/// The limits a dynamic config sets; other keys are accepted with a warning.
pub fn limits(config: &DynamicConfig, log: &Logger) -> Limits {
    let mut limits = Limits::default();
    for (key, value) in config.iter() {
        let applied = value.as_i64().is_some_and(|v| limits.set(key, v));
        if !applied {
            warn!(log, "dynamic config key not used by Sundial; ignored"; "key" => key);
        }
    }
    limits
}

/// Applies the limits now and, when a file is named, keeps reloading it.
pub fn watch(source: Source, history: History, log: Logger) -> Result<()> {
    let config = source.read()?;
    history.set_limits(limits(&config, &log));
    let Some(file) = source.file.clone() else {
        return Ok(());
    };
    info!(log, "watching dynamic config"; "file" => %file.display());
    tokio::spawn(async move {
        let mut last = config;
        loop {
            tokio::time::sleep(source.poll_interval.max(Duration::from_secs(1))).await;
            match source.read() {
                Ok(config) if config != last => {
                    info!(log, "dynamic config changed; reloading"; "file" => %file.display());
                    history.set_limits(limits(&config, &log));
                    last = config;
                }
                Ok(_) => {}
                Err(e) => warn!(log, "dynamic config not reloaded"; "error" => %e),
            }
        }
    });
    Ok(())
}
