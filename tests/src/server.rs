//! An in-process Sundial server on `127.0.0.1:0`, wired the way `src/main.rs` wires the binary,
//! stopped by a oneshot shutdown. Several can run in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sundial_actors::Node;
use sundial_proto::workflowservice::workflow_service_client::WorkflowServiceClient;
use sundial_storage::{DynStore, memory::MemoryStore, sqlite::SqliteStore};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

/// The generated `WorkflowService` client over a tonic channel.
pub type Client = WorkflowServiceClient<Channel>;

/// History shards of a test server (small, but more than one so routing is exercised).
const NUM_SHARDS: i32 = 4;

/// Longest any single RPC may take on a client from [`connect`] (long polls included).
const RPC_CEILING: Duration = Duration::from_secs(60);

/// A running in-process server. Dropping it shuts the server and its actors down.
pub struct TestServer {
    /// Where the frontend listens.
    pub addr: SocketAddr,
    node: Node,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// Keeps the SQLite file's directory alive as long as the server.
    _dir: Option<TempDir>,
}

impl TestServer {
    /// A server on the in-memory store.
    pub async fn memory() -> Result<Self> {
        Self::start(Arc::new(MemoryStore::new()), None).await
    }

    /// A server on a SQLite file in a fresh temporary directory.
    pub async fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let store = SqliteStore::open(&dir.path().join("sundial.db")).context("opening SQLite")?;
        Self::start(Arc::new(store), Some(dir)).await
    }

    /// A server on `store` with namespace `default`, serving until dropped or [`stop`]ped.
    ///
    /// [`stop`]: TestServer::stop
    pub async fn start(store: DynStore, dir: Option<TempDir>) -> Result<Self> {
        Self::start_with_clock(store, dir, Arc::new(sundial_actors::SystemClock)).await
    }

    /// [`TestServer::start`] on a clock the test controls.
    pub async fn start_with_clock(
        store: DynStore,
        dir: Option<TempDir>,
        clock: Arc<dyn sundial_actors::Clock>,
    ) -> Result<Self> {
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Its shards record the server's address as their owner, as a single process does.
        let placement = sundial_actors::Placement {
            address: addr.to_string(),
            ..Default::default()
        };
        let node = Node::start_services(
            store,
            NUM_SHARDS,
            log,
            clock,
            sundial_actors::Telemetry::default(),
            placement,
        );
        node.namespaces.load_all().await?;
        let mut server = TestServer {
            addr,
            node: node.clone(),
            shutdown: None,
            serving: None,
            _dir: dir,
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            sundial_transport::ensure_namespace(&node.namespaces, "default"),
        )
        .await
        .context("creating namespace default timed out")??;
        let (tx, rx) = oneshot::channel::<()>();
        server.shutdown = Some(tx);
        server.serving = Some(tokio::spawn(sundial_transport::serve(
            listener,
            node,
            async move {
                let _ = rx.await;
            },
        )));
        Ok(server)
    }

    /// Creates another namespace.
    pub async fn add_namespace(&self, name: &str) -> Result<()> {
        tokio::time::timeout(
            Duration::from_secs(10),
            sundial_transport::ensure_namespace(&self.node.namespaces, name),
        )
        .await
        .with_context(|| format!("creating namespace {name} timed out"))??;
        Ok(())
    }

    /// A fresh client connected to this server.
    pub async fn client(&self) -> Result<Client> {
        connect(self.addr).await
    }

    /// Shuts down gracefully and waits (bounded) for the server to finish.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(serving) = self.serving.take() {
            tokio::time::timeout(Duration::from_secs(10), serving)
                .await
                .context("server did not shut down within 10 s")???;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
        self.node.stop();
    }
}

/// A client connected to `addr`, with a connect timeout and a ceiling on every RPC.
pub async fn connect(addr: SocketAddr) -> Result<Client> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(RPC_CEILING)
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    Ok(WorkflowServiceClient::new(channel))
}

/// The health (`grpc.health.v1`) a server at `addr` reports.
pub async fn health(
    addr: SocketAddr,
) -> Result<sundial_proto::health::health_check_response::ServingStatus> {
    use sundial_proto::health::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner()
        .status;
    Ok(status.try_into()?)
}
