//! The internal API's servers: [`HistoryServer`] and [`MatchingServer`] take the calls of other
//! processes and hand them to this process's service (the local actors), answering its errors
//! typed (see `errors`).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use sundial_actors::{HistoryService, MatchingClient, Namespaces, PolledWorkflowTask};
use sundial_engine::TaskInfo;
use sundial_proto::internal::{
    self as wire, history_service_server::HistoryService as HistoryRpc,
    matching_service_server::MatchingService as MatchingRpc,
};
use tonic::{Request, Response, Status};

use super::codec;
use super::codec::{key_from, poll_from, query_from, query_to, stats_to};
use super::errors::status_to;
use super::tracing::{caller, within};

/// Serves this process's history shards to other processes.
#[derive(Clone)]
pub struct HistoryServer {
    history: Arc<dyn HistoryService>,
    /// The registry the shards read namespaces from.
    namespaces: Namespaces,
    num_shards: i32,
}

impl HistoryServer {
    /// Serves `history` (the local shards, of `num_shards`), whose namespaces `namespaces`
    /// keeps.
    pub fn new(history: Arc<dyn HistoryService>, namespaces: Namespaces, num_shards: i32) -> Self {
        Self {
            history,
            namespaces,
            num_shards,
        }
    }
}

type Replies = Pin<Box<dyn Stream<Item = Result<wire::Reply, Status>> + Send>>;

#[tonic::async_trait]
impl HistoryRpc for HistoryServer {
    type SubmitStream = Replies;

    async fn submit(
        &self,
        request: Request<wire::SubmitRequest>,
    ) -> Result<Response<Replies>, Status> {
        let trace = caller(&request);
        let (shard, request) =
            codec::request_from(request.into_inner()).map_err(|e| status_to(&e))?;
        let replies = within(trace, self.history.submit(shard, request))
            .await
            .map_err(|e| status_to(&e))?;
        // In order, each once the shard has it; a caller that goes away drops the rest.
        let stream = futures::stream::iter(replies)
            .then(|reply| async move { Ok(codec::reply_to(reply.await)) });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn call(
        &self,
        request: Request<wire::SubmitRequest>,
    ) -> Result<Response<wire::Reply>, Status> {
        let trace = caller(&request);
        let (shard, request) =
            codec::request_from(request.into_inner()).map_err(|e| status_to(&e))?;
        if request.tickets() != 1 {
            return Err(Status::invalid_argument(format!(
                "Call takes a request with one reply; this one gets {} (use Submit)",
                request.tickets()
            )));
        }
        let mut replies = within(trace, self.history.submit(shard, request))
            .await
            .map_err(|e| status_to(&e))?;
        let Some(reply) = replies.pop() else {
            return Err(Status::internal("the shard gave no reply"));
        };
        Ok(Response::new(codec::reply_to(reply.await)))
    }

    async fn refresh_namespaces(
        &self,
        _: Request<wire::RefreshNamespacesRequest>,
    ) -> Result<Response<wire::RefreshNamespacesResponse>, Status> {
        self.namespaces
            .load_all()
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::RefreshNamespacesResponse {}))
    }

    async fn serving(
        &self,
        _: Request<wire::ServingRequest>,
    ) -> Result<Response<wire::ServingResponse>, Status> {
        Ok(Response::new(wire::ServingResponse {
            serving: self.history.serving().await,
            shards: self.history.serving_shards().await,
            num_shards: self.num_shards,
        }))
    }
}

/// Serves this process's task-queue partitions to other processes.
#[derive(Clone)]
pub struct MatchingServer {
    matching: MatchingClient,
}

impl MatchingServer {
    /// Serves `matching` (the local partitions).
    pub fn new(matching: MatchingClient) -> Self {
        Self { matching }
    }
}

fn invalid_task(e: prost::DecodeError) -> Status {
    status_to(&sundial_actors::Error::InvalidArgument(format!(
        "internal request: task: {e}"
    )))
}

#[tonic::async_trait]
impl MatchingRpc for MatchingServer {
    async fn add_task(
        &self,
        request: Request<wire::AddTaskRequest>,
    ) -> Result<Response<wire::AddTaskResponse>, Status> {
        let request = request.into_inner();
        let key = key_from(request.key).map_err(|e| status_to(&e))?;
        let task = TaskInfo::decode(request.task.as_slice()).map_err(invalid_task)?;
        self.matching
            .add_task(key, task, request.sticky)
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::AddTaskResponse {}))
    }

    async fn poll_workflow_task(
        &self,
        request: Request<wire::PollRequest>,
    ) -> Result<Response<wire::PollWorkflowTaskResponse>, Status> {
        use wire::poll_workflow_task_response::Polled;
        let trace = caller(&request);
        let (key, poll) = poll_from(request.into_inner()).map_err(|e| status_to(&e))?;
        let polled = within(trace, self.matching.poll_workflow_task(key, poll))
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::PollWorkflowTaskResponse {
            polled: polled.map(|p| match p {
                PolledWorkflowTask::Started(started) => {
                    Polled::Started(codec::wft_started_to(*started))
                }
                PolledWorkflowTask::Query(query) => Polled::Query(query_to(*query)),
            }),
        }))
    }

    async fn poll_activity_task(
        &self,
        request: Request<wire::PollRequest>,
    ) -> Result<Response<wire::PollActivityTaskResponse>, Status> {
        let trace = caller(&request);
        let (key, poll) = poll_from(request.into_inner()).map_err(|e| status_to(&e))?;
        let polled = within(trace, self.matching.poll_activity_task(key, poll))
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::PollActivityTaskResponse {
            started: polled.map(|a| codec::activity_started_to(*a)),
        }))
    }

    async fn query_workflow(
        &self,
        request: Request<wire::QueryWorkflowRequest>,
    ) -> Result<Response<wire::QueryWorkflowResponse>, Status> {
        let request = request.into_inner();
        let sticky = match request.sticky {
            Some(key) => Some(key_from(Some(key)).map_err(|e| status_to(&e))?),
            None => None,
        };
        let normal = key_from(request.normal).map_err(|e| status_to(&e))?;
        let query = request.query.ok_or_else(|| {
            status_to(&sundial_actors::Error::InvalidArgument(
                "internal request: query is not set".into(),
            ))
        })?;
        let answer = self
            .matching
            .query_workflow(sticky, normal, query_from(query))
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::QueryWorkflowResponse { answer }))
    }

    async fn respond_query_task_completed(
        &self,
        request: Request<wire::RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<wire::RespondQueryTaskCompletedResponse>, Status> {
        let request = request.into_inner();
        let answered = self
            .matching
            .respond_query_task_completed(request.query_id, request.answer.unwrap_or_default())
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::RespondQueryTaskCompletedResponse {
            answered,
        }))
    }

    async fn describe_task_queue(
        &self,
        request: Request<wire::DescribeTaskQueueRequest>,
    ) -> Result<Response<wire::DescribeTaskQueueResponse>, Status> {
        let key = key_from(request.into_inner().key).map_err(|e| status_to(&e))?;
        let stats = self
            .matching
            .describe_task_queue(key)
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::DescribeTaskQueueResponse {
            stats: stats.map(stats_to),
        }))
    }

    async fn unload_sticky_queue(
        &self,
        request: Request<wire::UnloadStickyQueueRequest>,
    ) -> Result<Response<wire::UnloadStickyQueueResponse>, Status> {
        let key = key_from(request.into_inner().key).map_err(|e| status_to(&e))?;
        self.matching
            .unload_sticky_queue(key)
            .await
            .map_err(|e| status_to(&e))?;
        Ok(Response::new(wire::UnloadStickyQueueResponse {}))
    }
}
