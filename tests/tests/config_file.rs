//! `sundial server start --config FILE`: the sample config served, and configs Sundial cannot
//! honour refused, each with its own message and a non-zero exit.

use std::path::Path;

use anyhow::Result;
use sundial_proto::workflowservice::{DescribeNamespaceRequest, GetSystemInfoRequest};
use sundial_tests::sample::TestConfig;
use sundial_tests::worker::{Worker, rpc};

/// The SQLite sample on `database`, with each `(from, to)` of `edits` replaced in its text.
fn sqlite_sample(database: &Path, edits: &[(&str, &str)]) -> Result<TestConfig> {
    let config = TestConfig::sample(
        "development.yaml",
        &[("databaseName", &database.to_string_lossy())],
    )?;
    let text = edits
        .iter()
        .fold(config.text, |text, (from, to)| text.replace(from, to));
    Ok(TestConfig { text, ..config })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_start_with_the_sample_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("from-config.db");
    let config = sqlite_sample(&database, &[])?;
    let (mut process, mut client) = config.serve(dir.path(), &[]).await?;

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
    // The roles that are not separate processes yet are named, not silently ignored.
    let logs = process.logs();
    assert!(
        logs.contains("services.history.rpc: not opened"),
        "no warning about the history role's ports; log:\n{logs}"
    );
    process.kill()?;

    // SQLite migrates itself when it opens the file; `schema version` reports it.
    let (ok, output) = config.run(dir.path(), &["schema", "version"], &[])?;
    assert!(ok, "{output}");
    assert!(output.contains("(current)"), "{output}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_plugin_is_refused_naming_its_path() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edit = ("pluginName: sqlite", "pluginName: oracle");
    let config = sqlite_sample(&dir.path().join("x.db"), &[edit])?;
    let output = config.refused_start(dir.path())?;
    assert!(
        output.contains(
            "persistence.datastores.sqlite-default.sql.pluginName: unknown variant `oracle`"
        ),
        "{output}"
    );
    assert!(!dir.path().join("x.db").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_tls_with_client_auth_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tls = "global:
  tls:
    frontend:
      server:
        certFile: /etc/sundial/frontend.pem
        keyFile: /etc/sundial/frontend.key
        requireClientAuth: true
        clientCaFiles: [/etc/sundial/ca.pem]
";
    let config = sqlite_sample(&dir.path().join("x.db"), &[("global:\n", tls)])?;
    let output = config.refused_start(dir.path())?;
    assert!(
        output.contains("global.tls.frontend.server.requireClientAuth: TLS is not supported yet"),
        "{output}"
    );
    // Refused before anything is opened or served.
    assert!(!dir.path().join("x.db").exists());
    assert!(
        tokio::net::TcpStream::connect(config.frontend())
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_authorization_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let authorization = "global:
  authorization:
    jwtKeyProvider:
      keySourceURIs: [http://127.0.0.1:1/jwks.json]
    permissionsClaimName: permissions
    authorizer: default
    claimMapper: default
";
    let config = sqlite_sample(&dir.path().join("x.db"), &[("global:\n", authorization)])?;
    let output = config.refused_start(dir.path())?;
    assert!(
        output.contains(
            "global.authorization.authorizer: authorization is not supported yet, and Sundial \
             does not serve every caller where authorization is configured (also set: \
             global.authorization.claimMapper, global.authorization.jwtKeyProvider.keySourceURIs)"
        ),
        "{output}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_output_file_gets_the_logs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log_file = dir.path().join("server-log.txt");
    let output_file = format!("  stdout: false\n  outputFile: {}\n", log_file.display());
    let config = sqlite_sample(
        &dir.path().join("x.db"),
        &[("  stdout: true\n", &output_file)],
    )?;
    let (mut process, _) = config.serve(dir.path(), &[]).await?;
    process.kill()?;
    let logged = std::fs::read_to_string(&log_file)?;
    assert!(
        logged.contains("Sundial is serving the Temporal API"),
        "log.outputFile holds:\n{logged}"
    );
    assert!(
        !process
            .logs()
            .contains("Sundial is serving the Temporal API")
    );
    Ok(())
}
