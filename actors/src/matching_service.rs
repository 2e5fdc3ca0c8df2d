//! [`MatchingService`] over this process's partitions ([`Matching`]): a poll takes a task from
//! its partition, records the task's start in history (as Temporal's matching does, so the
//! caller gets a started task in one call), then tells the partition whether the task was
//! consumed. A task whose run or event is gone is consumed and the poll goes on; any other
//! failure gives the task back to the queue.

use std::time::Duration;

use sundial_engine::TaskInfo;
use sundial_engine::api::workflowservice::v1::RespondQueryTaskCompletedRequest;
use sundial_storage::TaskQueueKey;

use crate::matching::{Matched, Matching, QueryTask, QueueItem};
use crate::matching_stats::PartitionStats;
use crate::ops::{ActivityStarted, FromResponse, Request, RunRef, WorkflowTaskStarted};
use crate::services::{BoxFuture, MatchingService, Poll, PolledWorkflowTask};
use crate::{Error, Result};

fn run_of(task: &TaskInfo) -> RunRef {
    RunRef {
        namespace_id: task.namespace_id.clone(),
        workflow_id: task.workflow_id.clone(),
        run_id: task.run_id.clone(),
    }
}

/// What recording a start in history came to.
enum Recorded<T> {
    Started(T),
    /// The run or its event is gone (or the task was started already): try the next task.
    Gone,
}

impl Matching {
    /// Takes the next item of `key` before `deadline`; `None` once it passes.
    async fn next_item(
        &self,
        key: &TaskQueueKey,
        deadline: tokio::time::Instant,
        identity: &str,
    ) -> Result<Option<Matched>> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.poll_as(key, left, identity).await
    }

    /// Records the start of `task`, handed over as `matched`, in history with `request`, then
    /// settles the task with its partition.
    async fn record_start<T: FromResponse>(
        &self,
        matched: Matched,
        task: &TaskInfo,
        request: Request,
    ) -> Result<Recorded<T>> {
        let recorded = match self.history() {
            Ok(history) => {
                history
                    .call(&task.namespace_id, &task.workflow_id, request)
                    .await
            }
            Err(e) => Err(e),
        };
        match recorded {
            Ok(started) => {
                matched.ack(true);
                Ok(Recorded::Started(started))
            }
            Err(Error::Engine(_) | Error::NotFound(_)) => {
                matched.ack(true);
                Ok(Recorded::Gone)
            }
            Err(e) => {
                matched.ack(false);
                Err(e)
            }
        }
    }

    async fn poll_workflow(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> Result<Option<PolledWorkflowTask>> {
        let deadline = tokio::time::Instant::now() + poll.timeout;
        loop {
            let Some(matched) = self.next_item(&key, deadline, &poll.identity).await? else {
                return Ok(None);
            };
            let task = match &matched.item {
                QueueItem::Task(task) => task.clone(),
                QueueItem::Query(query) => {
                    let query = query.clone();
                    matched.ack(true);
                    return Ok(Some(PolledWorkflowTask::Query(Box::new(query))));
                }
            };
            let request = Request::RecordWorkflowTaskStarted {
                run: run_of(&task),
                scheduled_event_id: task.scheduled_event_id,
                attempt: task.attempt,
                request_id: uuid::Uuid::new_v4().to_string(),
                identity: poll.identity.clone(),
                build_id: poll.build_id.clone(),
                polled_queue: poll.queue.clone(),
            };
            let recorded = self.record_start::<WorkflowTaskStarted>(matched, &task, request);
            if let Recorded::Started(started) = recorded.await? {
                return Ok(Some(PolledWorkflowTask::Started(Box::new(started))));
            }
        }
    }

    async fn poll_activity(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> Result<Option<Box<ActivityStarted>>> {
        let deadline = tokio::time::Instant::now() + poll.timeout;
        loop {
            let Some(matched) = self.next_item(&key, deadline, &poll.identity).await? else {
                return Ok(None);
            };
            let QueueItem::Task(task) = matched.item.clone() else {
                // Queries go to workflow queues only.
                matched.ack(true);
                continue;
            };
            let request = Request::RecordActivityTaskStarted {
                run: run_of(&task),
                scheduled_event_id: task.scheduled_event_id,
                attempt: task.attempt,
                request_id: uuid::Uuid::new_v4().to_string(),
                identity: poll.identity.clone(),
                build_id: poll.build_id.clone(),
            };
            let recorded = self.record_start::<ActivityStarted>(matched, &task, request);
            if let Recorded::Started(started) = recorded.await? {
                return Ok(Some(Box::new(started)));
            }
        }
    }

    async fn query(
        &self,
        sticky: Option<TaskQueueKey>,
        normal: TaskQueueKey,
        query: QueryTask,
    ) -> Result<Option<RespondQueryTaskCompletedRequest>> {
        let query_id = query.query_id.clone();
        let wait = Duration::from_millis(
            query
                .expires_ms
                .saturating_sub(self.clock().now_ms())
                .max(0) as u64,
        );
        let answer = self.queries().register(&query_id);
        let item = QueueItem::Query(query);
        let sticky_added = match &sticky {
            Some(key) => self.add(key, item.clone(), true).await.is_ok(),
            None => false,
        };
        if !sticky_added && let Err(e) = self.add(&normal, item, false).await {
            self.queries().forget(&query_id);
            return Err(e);
        }
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => Ok(Some(answer)),
            _ => {
                self.queries().forget(&query_id);
                Ok(None)
            }
        }
    }
}

impl MatchingService for Matching {
    fn add_task(
        &self,
        key: TaskQueueKey,
        task: TaskInfo,
        sticky: bool,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.add(&key, QueueItem::Task(task), sticky).await })
    }

    fn poll_workflow_task(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> BoxFuture<'_, Result<Option<PolledWorkflowTask>>> {
        Box::pin(self.poll_workflow(key, poll))
    }

    fn poll_activity_task(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> BoxFuture<'_, Result<Option<Box<ActivityStarted>>>> {
        Box::pin(self.poll_activity(key, poll))
    }

    fn query_workflow(
        &self,
        sticky: Option<TaskQueueKey>,
        normal: TaskQueueKey,
        query: QueryTask,
    ) -> BoxFuture<'_, Result<Option<RespondQueryTaskCompletedRequest>>> {
        Box::pin(self.query(sticky, normal, query))
    }

    fn respond_query_task_completed(
        &self,
        query_id: String,
        answer: RespondQueryTaskCompletedRequest,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move { Ok(self.queries().answer(&query_id, answer)) })
    }

    fn describe_task_queue(
        &self,
        key: TaskQueueKey,
    ) -> BoxFuture<'_, Result<Option<PartitionStats>>> {
        Box::pin(async move { Ok(self.describe(&key).await) })
    }

    fn unload_sticky_queue(&self, key: TaskQueueKey) -> BoxFuture<'_, Result<()>> {
        self.unload(&key);
        Box::pin(async { Ok(()) })
    }

    fn serving(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}
