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
use sundial_actors::ops::Response;
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
        let channel = connect(self.role, &address)?;
        *cached = Some((address.clone(), channel.clone()));
        Ok((channel, self.name(&address)))
    }

    fn name(&self, address: &str) -> String {
        format!("{} service at {address}", self.role)
    }
}

/// The largest message the internal API sends or takes (a reset carries whole histories).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// The history members that may own a shard, its owner first, then the one that owns it
/// without the owner, and so on (empty while no history member is known).
pub type Route = Arc<dyn Fn(i32) -> BoxFuture<'static, Vec<String>> + Send + Sync>;
/// The history members' addresses.
pub type Members = Arc<dyn Fn() -> BoxFuture<'static, Vec<String>> + Send + Sync>;

/// How many times a call follows a shard's owner named by the member it reached (a member
/// whose view of the cluster is behind the one that answered) before it gives the caller the
/// answer: the views agree again within a heartbeat, and a caller never waits on a loop.
const MAX_HOPS: usize = 2;

/// How long a request waits for a shard that no member serves (a newcomer has not taken it
/// yet, as when a cluster starts, or its owner left and the next one is taking it) before its
/// caller hears the refusal. Temporal's history client likewise retries a shard between
/// owners with backoff. Shorter than a client's usual deadline (10 s), longer than a shard
/// move takes (a newcomer's wait for stable members, then the acquire).
const BETWEEN_OWNERS_WAIT: Duration = Duration::from_secs(5);
/// The first pause before a request for a shard between owners is tried again; it doubles
/// up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// [`HistoryService`] in other processes: each shard's requests go to its owner, which
/// [`Route`] names; a member that answers that another owns the shard is followed to it, and
/// one that cannot be reached, or refuses without naming an owner, gives way to the member that
/// owns the shard without it (the one that takes the shard when the unreachable one is found
/// gone, or that held it before a newcomer), at most [`MAX_HOPS`] times.
#[derive(Clone)]
pub struct RemoteHistory {
    route: Route,
    members: Members,
    channels: Arc<Mutex<std::collections::HashMap<String, Channel>>>,
}

impl RemoteHistory {
    /// The history service of the process `peer` names, for every shard.
    pub fn new(peer: Peer) -> Self {
        let resolve = peer.resolve.clone();
        let members = peer.resolve.clone();
        Self::routed(
            Arc::new(move |_| {
                let found = resolve();
                Box::pin(async move { found.await.into_iter().collect() })
            }),
            Arc::new(move || {
                let members = members();
                Box::pin(async move { members.await.into_iter().collect() })
            }),
        )
    }

    /// The history service of a cluster: shard requests go where `route` says, and
    /// `members` lists every member (for the calls that reach each of them).
    pub fn routed(route: Route, members: Members) -> Self {
        Self {
            route,
            members,
            channels: Arc::default(),
        }
    }

    fn client(&self, address: &str) -> Result<(HistoryServiceClient<Channel>, String)> {
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match channels.get(address) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = connect("history", address)?;
                    channels.insert(address.to_string(), channel.clone());
                    channel
                }
            }
        };
        let client = HistoryServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok((client, format!("history service at {address}")))
    }

    async fn candidates(&self, shard_id: i32) -> Result<Vec<String>> {
        let candidates = (self.route)(shard_id).await;
        if candidates.is_empty() {
            return Err(Error::Unavailable(
                "no history service is known to be up".into(),
            ));
        }
        Ok(candidates)
    }

    /// A one-reply request, sent as [`RemoteHistory::attempt`] does; while no member serves
    /// the shard (every one reached refuses it, or none is known), tried again after a pause
    /// that doubles, for at most [`BETWEEN_OWNERS_WAIT`]. A refused request was not carried
    /// out, so trying it again cannot do it twice.
    async fn call(&self, shard_id: i32, wire: wire::SubmitRequest) -> Result<Response> {
        let give_up = tokio::time::Instant::now() + BETWEEN_OWNERS_WAIT;
        let mut pause = FIRST_PAUSE;
        loop {
            let outcome = match self.candidates(shard_id).await {
                Ok(candidates) => self.attempt(&candidates, &wire).await,
                Err(none_known) => Err(none_known),
            };
            let between_owners = match &outcome {
                Err(Error::ShardOwnershipLost { .. }) => true,
                Err(Error::Unavailable(_)) => (self.route)(shard_id).await.is_empty(),
                _ => false,
            };
            if !between_owners || tokio::time::Instant::now() + pause > give_up {
                return outcome;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// Sends a request to the first of `candidates` (the shard's owner); then, if the member
    /// reached names another owner, to that one, or if it could not be reached, or refuses
    /// without naming an owner, to the next candidate.
    async fn attempt(&self, candidates: &[String], wire: &wire::SubmitRequest) -> Result<Response> {
        let mut address = candidates[0].clone();
        let mut tried = Vec::new();
        for hop in 0..=MAX_HOPS {
            let last = hop == MAX_HOPS;
            let (mut client, peer) = self.client(&address)?;
            tried.push(address.clone());
            let reply = match client.call(traced(wire.clone())).await {
                Ok(reply) => codec::reply_from(reply.into_inner()),
                // Not reached (no Sundial error inside): the member that owns the shard
                // without this one.
                Err(status)
                    if !last
                        && status.code() == tonic::Code::Unavailable
                        && status.details().is_empty() =>
                {
                    match candidates.iter().find(|c| !tried.contains(c)) {
                        Some(next) => {
                            address = next.clone();
                            continue;
                        }
                        None => Err(status_from(status, &peer)),
                    }
                }
                Err(status) => Err(status_from(status, &peer)),
            };
            match reply {
                Err(Error::ShardOwnershipLost { owner, .. })
                    if !last && !owner.is_empty() && !tried.contains(&owner) =>
                {
                    address = owner;
                }
                // Refused by a member that does not know who serves the shard (a newcomer
                // waiting for stable members before it takes it): the shard's previous owner
                // is the next candidate, and serves it until the newcomer's acquire fences it.
                Err(Error::ShardOwnershipLost { owner, shard_id }) if !last && owner.is_empty() => {
                    match candidates.iter().find(|c| !tried.contains(c)) {
                        Some(next) => address = next.clone(),
                        None => return Err(Error::ShardOwnershipLost { owner, shard_id }),
                    }
                }
                reply => return reply,
            }
        }
        unreachable!("the last hop returns")
    }

    /// Calls `each` on every member, in turn.
    async fn each_member<T>(
        &self,
        each: impl AsyncFn(HistoryServiceClient<Channel>, String) -> Result<T>,
    ) -> Vec<Result<T>> {
        let mut out = Vec::new();
        for address in (self.members)().await {
            out.push(match self.client(&address) {
                Ok((client, peer)) => each(client, peer).await,
                Err(e) => Err(e),
            });
        }
        out
    }
}

/// A channel to `address` that connects when first used.
fn connect(role: &str, address: &str) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Error::Internal(format!("{role} address {address:?}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

impl HistoryService for RemoteHistory {
    fn submit(&self, shard_id: i32, request: Request) -> BoxFuture<'_, Result<Vec<Reply>>> {
        Box::pin(async move {
            let tickets = request.tickets();
            let wire = codec::request_to(shard_id, request)?;
            if tickets == 1 {
                // One reply (nearly every request): a unary call, answered when the reply is
                // in. Every caller awaits the reply right after submitting, so nothing waits
                // longer than it did.
                let reply = self.call(shard_id, wire).await;
                return Ok(vec![Box::pin(std::future::ready(reply)) as Reply]);
            }
            let owner = self.candidates(shard_id).await?.swap_remove(0);
            let (mut client, peer) = self.client(&owner)?;
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
            // A member that cannot be reached is skipped: it is gone, or reads every namespace
            // when it starts again (and every member re-reads them every 2 s).
            let results = self
                .each_member(async |mut client, peer| {
                    match client
                        .refresh_namespaces(wire::RefreshNamespacesRequest {})
                        .await
                    {
                        Ok(_) => Ok(true),
                        Err(status) if status.details().is_empty() => Ok(false),
                        Err(status) => Err(status_from(status, &peer)),
                    }
                })
                .await;
            let answered = results.into_iter().collect::<Result<Vec<bool>>>()?;
            if !answered.contains(&true) {
                return Err(Error::Unavailable(
                    "no history service is known to be up".into(),
                ));
            }
            Ok(())
        })
    }

    fn serving(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let Some(shards) = self.shards_and_count().await else {
                return false;
            };
            let (served, count) = shards;
            count > 0 && (1..=count).all(|s| served.binary_search(&s).is_ok())
        })
    }

    fn serving_shards(&self) -> BoxFuture<'_, Vec<i32>> {
        Box::pin(async move { self.shards_and_count().await.unwrap_or_default().0 })
    }
}

impl RemoteHistory {
    /// The shards the members serve (ascending) and how many shards there are; `None` when
    /// no member answers.
    async fn shards_and_count(&self) -> Option<(Vec<i32>, i32)> {
        let answers = self
            .each_member(async |mut client, peer| {
                Ok(client
                    .serving(wire::ServingRequest {})
                    .await
                    .map_err(|s| status_from(s, &peer))?
                    .into_inner())
            })
            .await;
        let mut shards = Vec::new();
        let mut count = None;
        for answer in answers.into_iter().flatten() {
            count = count.max(Some(answer.num_shards));
            shards.extend(answer.shards);
        }
        shards.sort_unstable();
        shards.dedup();
        Some((shards, count?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_actors::ops::{Request, RunRef};
    use sundial_actors::shard_owners::ShardOwners;
    use sundial_actors::{Node, Placement, SystemClock, Telemetry};
    use sundial_proto::internal::history_service_server::HistoryServiceServer;
    use sundial_storage::{DynStore, memory::MemoryStore};

    /// A history member of `store` with one shard, serving the internal API on a port of its
    /// own: told to own the shard when `owns`, else waiting as a newcomer does (refusing
    /// without naming an owner). Answers its address.
    async fn member(store: &DynStore, owns: bool) -> (Node, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let placement = Placement {
            address: address.clone(),
            shard_owners: Some(ShardOwners::default()),
            ..Default::default()
        };
        let node = Node::start_services(
            store.clone(),
            1,
            log,
            Arc::new(SystemClock),
            Telemetry::default(),
            placement,
        );
        let local = node.local_history.clone().unwrap();
        if owns {
            local.own(1, true, String::new());
            while local.serving_shards().is_empty() {
                tokio::task::yield_now().await;
            }
        }
        let server = super::super::HistoryServer::new(Arc::new(local), node.namespaces.clone(), 1);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(HistoryServiceServer::new(server))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (node, address)
    }

    /// While no member serves a shard (the only member is a newcomer that has not taken it
    /// yet, as when a cluster starts), a request waits for one that does instead of failing:
    /// it is retried, and served once the newcomer takes the shard.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_for_a_shard_between_owners_waits_for_its_new_owner() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let (node, newcomer) = member(&store, false).await;
        let routed = Arc::new(tokio::sync::Notify::new());
        let route: Route = {
            let routed = routed.clone();
            let newcomer = newcomer.clone();
            Arc::new(move |_| {
                routed.notify_one();
                let candidates = vec![newcomer.clone()];
                Box::pin(async move { candidates })
            })
        };
        let members: Members = Arc::new(move || {
            let all = vec![newcomer.clone()];
            Box::pin(async move { all })
        });
        let history = RemoteHistory::routed(route, members);
        let describe = Request::Describe(RunRef {
            namespace_id: "ns".into(),
            workflow_id: "no-such-workflow".into(),
            run_id: String::new(),
        });
        let call = tokio::spawn(async move {
            let mut replies = history.submit(1, describe).await?;
            replies.remove(0).await
        });
        // The first attempt is routed, refused; the shard is taken once a second is on its way
        // (or the call has already given up).
        routed.notified().await;
        tokio::select! {
            () = routed.notified() => {}
            () = async { while !call.is_finished() { tokio::task::yield_now().await } } => {}
        }
        node.local_history
            .clone()
            .unwrap()
            .own(1, true, String::new());
        let reply = call.await.unwrap();
        assert!(
            matches!(reply, Err(Error::NotFound(_))),
            "{:?}",
            reply.err()
        );
    }

    /// A newcomer that has not taken its shard yet refuses naming no owner; the caller tries
    /// the next candidate (the shard's previous owner, still serving it) instead of giving the
    /// refusal to its client.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_naming_no_owner_goes_to_the_next_candidate() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let (_newcomer, newcomer) = member(&store, false).await;
        let (_owner, owner) = member(&store, true).await;
        let candidates = vec![newcomer.clone(), owner.clone()];
        let route: Route = Arc::new(move |_| {
            let candidates = candidates.clone();
            Box::pin(async move { candidates })
        });
        let members: Members = {
            let all = vec![newcomer, owner];
            Arc::new(move || {
                let all = all.clone();
                Box::pin(async move { all })
            })
        };
        let history = RemoteHistory::routed(route, members);
        let describe = Request::Describe(RunRef {
            namespace_id: "ns".into(),
            workflow_id: "no-such-workflow".into(),
            run_id: String::new(),
        });
        let mut replies = history.submit(1, describe).await.unwrap();
        // The owner served it: the run does not exist (the newcomer would have refused).
        let reply = replies.remove(0).await;
        assert!(
            matches!(reply, Err(Error::NotFound(_))),
            "{:?}",
            reply.err()
        );
    }
}
