//! Transfer tasks that reach other workflows: starting a child on its shard, telling a parent
//! that its child closed, signalling or cancelling another workflow, and parent-close policies.
//! Each is carried out through the [`History`] handle (any shard, this one included) and
//! reports back to the originating run, so a crash between steps only repeats idempotent work.

use prost::Message;
use sundial_engine::api::{
    common::v1::WorkflowExecution,
    enums::v1::{ParentClosePolicy, WorkflowIdConflictPolicy},
    history::v1::{
        HistoryEvent, SignalExternalWorkflowExecutionInitiatedEventAttributes,
        StartChildWorkflowExecutionInitiatedEventAttributes,
        WorkflowExecutionStartedEventAttributes,
    },
};
use sundial_engine::{Signal, StartParams, TaskInfo, TaskKind};

use crate::ops::{Request, RunChange, RunRef, StartOutcome, StartWorkflow};
use crate::{Error, History, Result};

fn source_run(task: &TaskInfo) -> RunRef {
    RunRef {
        namespace_id: task.namespace_id.clone(),
        workflow_id: task.workflow_id.clone(),
        run_id: task.run_id.clone(),
    }
}

fn target_run(task: &TaskInfo) -> RunRef {
    RunRef {
        namespace_id: task.target_namespace_id.clone(),
        workflow_id: task.target_workflow_id.clone(),
        run_id: task.target_run_id.clone(),
    }
}

fn corrupt(e: prost::DecodeError) -> Error {
    Error::Unavailable(format!("corrupt transfer task: {e}"))
}

/// Applies `change` to a run through its shard.
async fn apply(history: &History, run: RunRef, change: RunChange) -> Result<()> {
    let (ns, wf) = (run.namespace_id.clone(), run.workflow_id.clone());
    history.call(&ns, &wf, Request::Apply { run, change }).await
}

/// True for errors that mean "that workflow is not there (any more)".
fn is_gone(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound(_) | Error::Engine(sundial_engine::Error::WorkflowCompleted)
    )
}

/// Carries out one cross-workflow transfer task.
pub async fn carry_out(history: &History, task: TaskInfo) -> Result<()> {
    match task.task_kind() {
        TaskKind::StartChild => start_child(history, task).await,
        TaskKind::RecordChildClose => {
            let close = HistoryEvent::decode(task.payload.as_slice()).map_err(corrupt)?;
            let change = RunChange::ChildClosed {
                initiated_event_id: task.scheduled_event_id,
                child_run_id: task.run_id.clone(),
                close: Box::new(close),
            };
            match apply(history, target_run(&task), change).await {
                Err(e) if is_gone(&e) => Ok(()),
                other => other,
            }
        }
        TaskKind::SignalExternal => {
            let initiated = SignalExternalWorkflowExecutionInitiatedEventAttributes::decode(
                task.payload.as_slice(),
            )
            .map_err(corrupt)?;
            let signal = Signal {
                name: initiated.signal_name,
                input: initiated.input,
                header: initiated.header,
                identity: String::new(),
                request_id: format!("{}:{}", task.run_id, task.scheduled_event_id),
                skip_generate_workflow_task: false,
                external_workflow_execution: Some(WorkflowExecution {
                    workflow_id: task.workflow_id.clone(),
                    run_id: task.run_id.clone(),
                }),
            };
            let target = target_run(&task);
            let (ns, wf) = (target.namespace_id.clone(), target.workflow_id.clone());
            let delivered = match history
                .call::<()>(&ns, &wf, Request::Signal(target, signal))
                .await
            {
                Ok(()) => true,
                Err(e) if is_gone(&e) => false,
                Err(e) => return Err(e),
            };
            let change = RunChange::SignalExternalDone {
                initiated_event_id: task.scheduled_event_id,
                delivered,
            };
            ignore_gone(apply(history, source_run(&task), change).await)
        }
        TaskKind::CancelExternal => {
            let reason = String::from_utf8_lossy(&task.payload).into_owned();
            let source = WorkflowExecution {
                workflow_id: task.workflow_id.clone(),
                run_id: task.run_id.clone(),
            };
            let initiated_event_id = task.scheduled_event_id;
            let change = RunChange::RequestCancel {
                cause: reason,
                external: Some((source, initiated_event_id)),
            };
            let delivered = match apply(history, target_run(&task), change).await {
                Ok(()) => true,
                Err(e) if is_gone(&e) => false,
                Err(e) => return Err(e),
            };
            let change = RunChange::CancelExternalDone {
                initiated_event_id,
                delivered,
            };
            ignore_gone(apply(history, source_run(&task), change).await)
        }
        TaskKind::ParentClosePolicy => {
            let policy = ParentClosePolicy::try_from(task.timeout_type).unwrap_or_default();
            let result = match policy {
                ParentClosePolicy::RequestCancel => {
                    // As Temporal: no reason, the parent named as the requester.
                    let parent = WorkflowExecution {
                        workflow_id: task.workflow_id.clone(),
                        run_id: task.run_id.clone(),
                    };
                    let change = RunChange::RequestCancel {
                        cause: String::new(),
                        external: Some((parent, 0)),
                    };
                    apply(history, target_run(&task), change).await
                }
                ParentClosePolicy::Terminate => {
                    let change = RunChange::Terminate {
                        reason: "by parent close policy".into(),
                    };
                    apply(history, target_run(&task), change).await
                }
                _ => Ok(()),
            };
            ignore_gone(result)
        }
        _ => Ok(()),
    }
}

fn ignore_gone(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if is_gone(&e) => Ok(()),
        other => other,
    }
}

/// Creates the child run (its first task deferred), records the start on the parent, then lets
/// the child run. A taken workflow id becomes StartChildWorkflowExecutionFailed.
async fn start_child(history: &History, task: TaskInfo) -> Result<()> {
    let initiated =
        StartChildWorkflowExecutionInitiatedEventAttributes::decode(task.payload.as_slice())
            .map_err(corrupt)?;
    let initiated_id = task.scheduled_event_id;
    let parent = source_run(&task);
    let params = StartParams {
        namespace_id: task.target_namespace_id.clone(),
        workflow_id: initiated.workflow_id.clone(),
        run_id: uuid::Uuid::new_v4().to_string(),
        // The same request id on a retried task finds the run it already started.
        request_id: format!("{}:{}", task.run_id, initiated_id),
        attributes: WorkflowExecutionStartedEventAttributes {
            workflow_type: initiated.workflow_type.clone(),
            parent_workflow_namespace: initiated.namespace.clone(),
            parent_workflow_namespace_id: task.namespace_id.clone(),
            parent_workflow_execution: Some(WorkflowExecution {
                workflow_id: task.workflow_id.clone(),
                run_id: task.run_id.clone(),
            }),
            parent_initiated_event_id: initiated_id,
            root_workflow_execution: task.root_execution.clone(),
            task_queue: initiated.task_queue.clone(),
            input: initiated.input.clone(),
            workflow_execution_timeout: initiated.workflow_execution_timeout,
            workflow_run_timeout: initiated.workflow_run_timeout,
            workflow_task_timeout: initiated.workflow_task_timeout,
            retry_policy: initiated.retry_policy.clone(),
            cron_schedule: initiated.cron_schedule.clone(),
            memo: initiated.memo.clone(),
            search_attributes: initiated.search_attributes.clone(),
            header: initiated.header.clone(),
            priority: initiated.priority,
            ..Default::default()
        },
        signal: None,
        namespace_name: initiated.namespace.clone(),
        defer_first_workflow_task: true,
    };
    let start = StartWorkflow {
        params,
        reuse_policy: initiated.workflow_id_reuse_policy,
        conflict_policy: WorkflowIdConflictPolicy::Fail as i32,
        eager_identity: None,
    };
    let (ns, wf) = (
        task.target_namespace_id.clone(),
        initiated.workflow_id.clone(),
    );
    match history
        .call::<StartOutcome>(&ns, &wf, Request::Start(start))
        .await
    {
        Ok(outcome) => {
            let run_id = outcome.run_id.clone();
            let change = RunChange::ChildStarted {
                initiated_event_id: initiated_id,
                child_run_id: run_id,
            };
            ignore_gone(apply(history, parent, change).await)?;
            let child = RunRef {
                namespace_id: ns,
                workflow_id: wf,
                run_id: outcome.run_id,
            };
            ignore_gone(apply(history, child, RunChange::ScheduleFirstWorkflowTask).await)
        }
        Err(Error::WorkflowAlreadyStarted { .. }) => ignore_gone(
            apply(
                history,
                parent,
                RunChange::ChildStartFailed {
                    initiated_event_id: initiated_id,
                },
            )
            .await,
        ),
        Err(e) => Err(e),
    }
}
