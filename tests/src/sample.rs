//! The sample configs of `config/`, edited for one test: every port moved to a free one, and
//! chosen keys (the datastore's `databaseName`, `connectAddr`, `user`, `password` ...) set to
//! the test's values, so a test runs the very file a user would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::process::{SundialProcess, free_port, workspace_root};
use crate::server::Client;

/// Longest a `sundial` command that is not a server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A config file's text and where its frontend will listen.
pub struct TestConfig {
    /// The YAML.
    pub text: String,
    /// `services.frontend.rpc.grpcPort`.
    pub frontend_port: u16,
}

impl TestConfig {
    /// `config/<name>` with its ports moved and each `(key, value)` of `set` applied to every
    /// line whose key is `key`, at any depth.
    pub fn sample(name: &str, set: &[(&str, &str)]) -> Result<TestConfig> {
        let path = workspace_root().join("config").join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::edit(&text, set)
    }

    /// `text` (a config in Temporal's layout) with its ports moved and `set` applied.
    pub fn edit(text: &str, set: &[(&str, &str)]) -> Result<TestConfig> {
        let mut service = String::new();
        let mut frontend_port = None;
        let mut lines = Vec::new();
        for line in text.lines() {
            let indent = &line[..line.len() - line.trim_start().len()];
            let trimmed = line.trim_start();
            let key = trimmed.split(':').next().unwrap_or_default();
            if indent.len() == 2 && trimmed.ends_with(':') {
                service = key.to_string();
            }
            let edited = match key {
                "grpcPort" | "membershipPort" => {
                    let port = free_port()?;
                    if key == "grpcPort" && service == "frontend" {
                        frontend_port = Some(port);
                    }
                    format!("{indent}{key}: {port}")
                }
                "listenAddress" => format!("{indent}listenAddress: 127.0.0.1:{}", free_port()?),
                _ => match set.iter().find(|(k, _)| *k == key) {
                    Some((_, value)) => format!("{indent}{key}: {value}"),
                    None => line.to_string(),
                },
            };
            lines.push(edited);
        }
        let port = frontend_port.context("the config has no services.frontend.rpc.grpcPort")?;
        let text = lines
            .join("\n")
            .replace("127.0.0.1:7233", &format!("127.0.0.1:{port}"));
        Ok(TestConfig {
            text,
            frontend_port: port,
        })
    }

    /// Where the frontend will listen.
    pub fn frontend(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.frontend_port))
    }

    /// Writes the config into `dir` (a file of its own) and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let file = dir.join(format!("sundial-{}.yaml", self.frontend_port));
        std::fs::write(&file, &self.text).with_context(|| format!("writing {}", file.display()))?;
        Ok(file)
    }

    /// Runs `sundial <command...> --config FILE <extra...>` to its exit, its output appended to
    /// `dir/sundial.log`; returns whether it succeeded and what it printed.
    pub fn run(&self, dir: &Path, command: &[&str], extra: &[&str]) -> Result<(bool, String)> {
        let file = self.write(dir)?.to_string_lossy().into_owned();
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["--config", &file]);
        args.extend(extra);
        let (status, output) =
            SundialProcess::run_to_exit(&args, &dir.join("sundial.log"), EXIT_TIMEOUT)?;
        Ok((status.success(), output))
    }

    /// Runs `sundial server start` on the config, which must refuse to start; returns what it
    /// printed.
    pub fn refused_start(&self, dir: &Path) -> Result<String> {
        let (ok, output) = self.run(dir, &["server", "start"], &[])?;
        ensure!(
            !ok,
            "sundial started (or exited 0) on a config it must refuse:\n{output}"
        );
        Ok(output)
    }

    /// Starts `sundial server start --config FILE <extra...>`, logging to `dir/server.log`,
    /// and waits until it serves.
    pub async fn serve(&self, dir: &Path, extra: &[&str]) -> Result<(SundialProcess, Client)> {
        let file = self.write(dir)?.to_string_lossy().into_owned();
        let mut args = vec!["server", "start", "--config", &file];
        args.extend(extra);
        let mut process = SundialProcess::spawn(&args, self.frontend(), &dir.join("server.log"))?;
        let client = process.wait_ready().await?;
        Ok((process, client))
    }
}
