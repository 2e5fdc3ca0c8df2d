//! `sundial server start --config FILE` with the sample config, its ports and database moved.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use sundial_proto::workflowservice::{DescribeNamespaceRequest, GetSystemInfoRequest};
use sundial_tests::process::{SundialProcess, free_port, workspace_root};
use sundial_tests::worker::{Worker, rpc};

/// The sample config with every port replaced by a free one and the SQLite database moved to
/// `database`; returns the text and the frontend's gRPC port.
fn edit_config(sample: &str, database: &str) -> Result<(String, u16)> {
    let mut service = String::new();
    let mut frontend_port = None;
    let mut lines = Vec::new();
    for line in sample.lines() {
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
            "databaseName" => format!("{indent}databaseName: {database}"),
            "listenAddress" => format!("{indent}listenAddress: 127.0.0.1:{}", free_port()?),
            _ => line.to_string(),
        };
        lines.push(edited);
    }
    let port = frontend_port.context("the sample config has no services.frontend.rpc.grpcPort")?;
    let text = lines
        .join("\n")
        .replace("127.0.0.1:7233", &format!("127.0.0.1:{port}"));
    Ok((text, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_start_with_the_sample_config() -> Result<()> {
    let sample_path = workspace_root().join("config/development.yaml");
    let sample = std::fs::read_to_string(&sample_path)
        .with_context(|| format!("reading {}", sample_path.display()))?;
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("from-config.db");
    let (text, port) = edit_config(&sample, &database.to_string_lossy())?;
    let config = dir.path().join("sundial.yaml");
    std::fs::write(&config, text)?;

    let args = [
        "server".as_ref(),
        "start".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut process = SundialProcess::spawn(&args, addr, &dir.path().join("sundial.log"))?;
    let mut client = process.wait_ready().await?;

    let info = client
        .get_system_info(rpc(GetSystemInfoRequest {}))
        .await?
        .into_inner();
    assert!(info.capabilities.unwrap_or_default().sdk_metadata);
    let ns = client
        .describe_namespace(rpc(DescribeNamespaceRequest {
            namespace: "default".into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    assert_eq!(ns.namespace_info.unwrap_or_default().name, "default");
    let mut worker = Worker::new(client);
    worker.start("from-config").await?;
    assert!(
        database.is_file(),
        "the config's databaseName was not used; log:\n{}",
        process.logs()
    );
    process.kill()?;
    Ok(())
}
