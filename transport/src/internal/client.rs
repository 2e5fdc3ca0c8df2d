//! The remote implementations of the internal services: [`RemoteHistory`] and
//! [`RemoteMatching`] send each call over gRPC to the process that runs the role, found through
//! a [`Peer`] (the membership table names its address). A call that cannot reach that process
//! fails at once with [`Error::Unavailable`], never hangs on a dead peer: connecting is bounded,
//! and HTTP/2 keepalives notice a peer that stopped answering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use sundial_actors::matching::QueryTask;
use sundial_actors::matching_stats::PartitionStats;
use sundial_actors::ops::{ActivityStarted, Request};
use sundial_actors::{
    BoxFuture, Error, HistoryService, MatchingService, Poll, PolledWorkflowTask, Reply, Result,
};
use sundial_engine::TaskInfo;
use sundial_engine::api::workflowservice::v1::RespondQueryTaskCompletedRequest;
use sundial_proto::internal::{
    self as wire, history_service_client::HistoryServiceClient,
    matching_service_client::MatchingServiceClient,
};
use sundial_storage::TaskQueueKey;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use super::codec::{self, key_to, poll_to, query_from, query_to, stats_from};
use super::errors::status_from;
use super::tracing::traced;

/// Where a role's process answers now (`None` while none is known).
pub type Resolve = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// The process that runs a role, reached at the address its resolver gives; one channel per
/// address, made again when the address changes.
#[derive(Clone)]
pub struct Peer {
    role: &'static str,
    resolve: Resolve,
    channel: Arc<Mutex<Option<(String, Channel)>>>,
}

impl Peer {
    /// The `role` process at the address `resolve` names.
    pub fn new(role: &'static str, resolve: Resolve) -> Self {
        Self {
            role,
            resolve,
            channel: Arc::default(),
        }
    }

    /// A peer always at `address` (tests, and roles whose address is configured).
    pub fn fixed(role: &'static str, address: String) -> Self {
        Self::new(
            role,
            Arc::new(move || Box::pin(std::future::ready(Some(address.clone())))),
        )
    }

    /// The channel to the role's current address, and that address.
    async fn channel(&self) -> Result<(Channel, String)> {
        let address = (self.resolve)().await.ok_or_else(|| {
            Error::Unavailable(format!("no {} service is known to be up", self.role))
        })?;
        let mut cached = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, channel)) = cached.as_ref()
            && *at == address
        {
            return Ok((channel.clone(), self.name(&address)));
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Error::Internal(format!("{} address {address:?}: {e}", self.role)))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        *cached = Some((address.clone(), channel.clone()));
        Ok((channel, self.name(&address)))
    }

    fn name(&self, address: &str) -> String {
        format!("{} service at {address}", self.role)
    }
}

/// The largest message the internal API sends or takes (a reset carries whole histories).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// [`HistoryService`] in another process.
#[derive(Clone)]
pub struct RemoteHistory {
    peer: Peer,
}

impl RemoteHistory {
    /// The history service of `peer`.
    pub fn new(peer: Peer) -> Self {
        Self { peer }
    }

    async fn client(&self) -> Result<(HistoryServiceClient<Channel>, String)> {
        let (channel, name) = self.peer.channel().await?;
        let client = HistoryServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok((client, name))
    }
}

impl HistoryService for RemoteHistory {
    fn submit(&self, shard_id: i32, request: Request) -> BoxFuture<'_, Result<Vec<Reply>>> {
        Box::pin(async move {
            let tickets = request.tickets();
            let wire = codec::request_to(shard_id, request)?;
            let (mut client, peer) = self.client().await?;
            if tickets == 1 {
                // One reply (nearly every request): a unary call, answered when the reply is
                // in. Every caller awaits the reply right after submitting, so nothing waits
                // longer than it did.
                let reply = match client.call(traced(wire)).await {
                    Ok(reply) => codec::reply_from(reply.into_inner()),
                    Err(status) => Err(status_from(status, &peer)),
                };
                return Ok(vec![Box::pin(std::future::ready(reply)) as Reply]);
            }
            let mut stream = client
                .submit(traced(wire))
                .await
                .map_err(|s| status_from(s, &peer))?
                .into_inner();
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..tickets).map(|_| oneshot::channel()).unzip();
            // The replies come in order on one stream: hand each to its caller, and stop
            // reading (closing the stream) once every caller has gone.
            let reader_peer = peer.clone();
            tokio::spawn(async move {
                for mut sender in senders {
                    let item = tokio::select! {
                        item = stream.next() => item,
                        () = sender.closed() => return,
                    };
                    let reply = match item {
                        Some(Ok(reply)) => codec::reply_from(reply),
                        Some(Err(status)) => Err(status_from(status, &reader_peer)),
                        None => Err(Error::Unavailable(format!(
                            "{reader_peer} ended its replies early"
                        ))),
                    };
                    let _ = sender.send(reply);
                }
            });
            Ok(receivers
                .into_iter()
                .map(|rx| -> Reply {
                    let peer = peer.clone();
                    Box::pin(async move {
                        rx.await.unwrap_or_else(|_| {
                            Err(Error::Unavailable(format!("{peer} dropped the request")))
                        })
                    })
                })
                .collect())
        })
    }

    fn refresh_namespaces(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            client
                .refresh_namespaces(wire::RefreshNamespacesRequest {})
                .await
                .map_err(|s| status_from(s, &peer))?;
            Ok(())
        })
    }

    fn serving(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let Ok((mut client, _)) = self.client().await else {
                return false;
            };
            client
                .serving(wire::ServingRequest {})
                .await
                .is_ok_and(|r| r.into_inner().serving)
        })
    }
}

/// [`MatchingService`] in another process.
#[derive(Clone)]
pub struct RemoteMatching {
    peer: Peer,
}

impl RemoteMatching {
    /// The matching service of `peer`.
    pub fn new(peer: Peer) -> Self {
        Self { peer }
    }

    async fn client(&self) -> Result<(MatchingServiceClient<Channel>, String)> {
        let (channel, name) = self.peer.channel().await?;
        let client = MatchingServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok((client, name))
    }
}

impl MatchingService for RemoteMatching {
    fn add_task(
        &self,
        key: TaskQueueKey,
        task: TaskInfo,
        sticky: bool,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            let request = wire::AddTaskRequest {
                key: Some(key_to(key)),
                task: task.encode_to_vec(),
                sticky,
            };
            client
                .add_task(traced(request))
                .await
                .map_err(|s| status_from(s, &peer))?;
            Ok(())
        })
    }

    fn poll_workflow_task(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> BoxFuture<'_, Result<Option<PolledWorkflowTask>>> {
        Box::pin(async move {
            use wire::poll_workflow_task_response::Polled;
            let (mut client, peer) = self.client().await?;
            let polled = client
                .poll_workflow_task(traced(poll_to(key, poll)))
                .await
                .map_err(|s| status_from(s, &peer))?
                .into_inner();
            Ok(match polled.polled {
                None => None,
                Some(Polled::Started(started)) => Some(PolledWorkflowTask::Started(Box::new(
                    codec::wft_started_from(started)?,
                ))),
                Some(Polled::Query(query)) => {
                    Some(PolledWorkflowTask::Query(Box::new(query_from(query))))
                }
            })
        })
    }

    fn poll_activity_task(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> BoxFuture<'_, Result<Option<Box<ActivityStarted>>>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            let polled = client
                .poll_activity_task(traced(poll_to(key, poll)))
                .await
                .map_err(|s| status_from(s, &peer))?
                .into_inner();
            match polled.started {
                None => Ok(None),
                Some(started) => Ok(Some(Box::new(codec::activity_started_from(started)?))),
            }
        })
    }

    fn query_workflow(
        &self,
        sticky: Option<TaskQueueKey>,
        normal: TaskQueueKey,
        query: QueryTask,
    ) -> BoxFuture<'_, Result<Option<RespondQueryTaskCompletedRequest>>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            let request = wire::QueryWorkflowRequest {
                sticky: sticky.map(key_to),
                normal: Some(key_to(normal)),
                query: Some(query_to(query)),
            };
            let answer = client
                .query_workflow(traced(request))
                .await
                .map_err(|s| status_from(s, &peer))?;
            Ok(answer.into_inner().answer)
        })
    }

    fn respond_query_task_completed(
        &self,
        query_id: String,
        answer: RespondQueryTaskCompletedRequest,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            let request = wire::RespondQueryTaskCompletedRequest {
                query_id,
                answer: Some(answer),
            };
            let answered = client
                .respond_query_task_completed(traced(request))
                .await
                .map_err(|s| status_from(s, &peer))?;
            Ok(answered.into_inner().answered)
        })
    }

    fn describe_task_queue(
        &self,
        key: TaskQueueKey,
    ) -> BoxFuture<'_, Result<Option<PartitionStats>>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            let request = wire::DescribeTaskQueueRequest {
                key: Some(key_to(key)),
            };
            let stats = client
                .describe_task_queue(traced(request))
                .await
                .map_err(|s| status_from(s, &peer))?;
            Ok(stats.into_inner().stats.map(stats_from))
        })
    }

    fn unload_sticky_queue(&self, key: TaskQueueKey) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (mut client, peer) = self.client().await?;
            let request = wire::UnloadStickyQueueRequest {
                key: Some(key_to(key)),
            };
            client
                .unload_sticky_queue(traced(request))
                .await
                .map_err(|s| status_from(s, &peer))?;
            Ok(())
        })
    }

    fn serving(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { self.peer.channel().await.is_ok() })
    }
}
