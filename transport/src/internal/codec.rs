//! The shard's plain-data requests and replies (`sundial_actors::ops`), and matching's keys,
//! polls, legacy queries and partition statistics, to and from the internal API's messages
//! (`sundial.internal.v1`), one for one. Encoding cannot fail except for a timer,
//! which never leaves its shard; decoding refuses a message that lacks a part the request
//! needs, naming it.

use std::time::Duration;

use prost::Message;
use sundial_actors::matching::QueryTask;
use sundial_actors::matching_stats::PartitionStats;
use sundial_actors::ops::{
    ActivityReport, ActivityStarted, ActivityTarget, CompletedWorkflowTask, Request, ResetWorkflow,
    Response, RunChange, RunRef, StartOutcome, StartWorkflow, WorkflowTaskStarted,
};
use sundial_actors::query_buffer::QueryRoute;
use sundial_actors::updates::{UpdateAnswer, UpdateRequest};
use sundial_actors::{Error, Poll, Result};
use sundial_engine::api::enums::v1::WorkflowTaskFailedCause;
use sundial_engine::{
    AbortReason, ActivityInfo, CommandError, CompletionOutcome, MutableState, Reapply, ResetParams,
    Signal, StartParams, UpdateRefusal, UpdateStatus, WorkflowTaskStart,
};
use sundial_proto::internal as wire;
use sundial_storage::TaskQueueKey;
use wire::submit_request::Request as W;

fn missing(what: &str) -> Error {
    Error::InvalidArgument(format!("internal request: {what} is not set"))
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::InvalidArgument(format!("internal request: {what}: {e}")))
}

fn run_to(run: RunRef) -> wire::RunRef {
    wire::RunRef {
        namespace_id: run.namespace_id,
        workflow_id: run.workflow_id,
        run_id: run.run_id,
    }
}

fn run_from(run: Option<wire::RunRef>) -> Result<RunRef> {
    let run = run.ok_or_else(|| missing("run"))?;
    Ok(RunRef {
        namespace_id: run.namespace_id,
        workflow_id: run.workflow_id,
        run_id: run.run_id,
    })
}

fn signal_to(s: Signal) -> wire::Signal {
    wire::Signal {
        name: s.name,
        input: s.input,
        header: s.header,
        identity: s.identity,
        request_id: s.request_id,
        skip_generate_workflow_task: s.skip_generate_workflow_task,
        external_workflow_execution: s.external_workflow_execution,
    }
}

fn signal_from(s: wire::Signal) -> Signal {
    Signal {
        name: s.name,
        input: s.input,
        header: s.header,
        identity: s.identity,
        request_id: s.request_id,
        skip_generate_workflow_task: s.skip_generate_workflow_task,
        external_workflow_execution: s.external_workflow_execution,
    }
}

fn start_to(s: StartWorkflow) -> wire::StartWorkflow {
    let p = s.params;
    wire::StartWorkflow {
        params: Some(wire::StartParams {
            namespace_id: p.namespace_id,
            workflow_id: p.workflow_id,
            run_id: p.run_id,
            request_id: p.request_id,
            attributes: Some(p.attributes),
            signal: p.signal.map(signal_to),
            namespace_name: p.namespace_name,
            defer_first_workflow_task: p.defer_first_workflow_task,
        }),
        reuse_policy: s.reuse_policy,
        conflict_policy: s.conflict_policy,
        eager_identity: s.eager_identity,
    }
}

fn start_from(s: Option<wire::StartWorkflow>) -> Result<StartWorkflow> {
    let s = s.ok_or_else(|| missing("start"))?;
    let p = s.params.ok_or_else(|| missing("start.params"))?;
    Ok(StartWorkflow {
        params: StartParams {
            namespace_id: p.namespace_id,
            workflow_id: p.workflow_id,
            run_id: p.run_id,
            request_id: p.request_id,
            attributes: p
                .attributes
                .ok_or_else(|| missing("start.params.attributes"))?,
            signal: p.signal.map(signal_from),
            namespace_name: p.namespace_name,
            defer_first_workflow_task: p.defer_first_workflow_task,
        },
        reuse_policy: s.reuse_policy,
        conflict_policy: s.conflict_policy,
        eager_identity: s.eager_identity,
    })
}

fn task_start_to((started_event_id, started_time_ms): (i64, i64)) -> Option<wire::TaskStart> {
    Some(wire::TaskStart {
        started_event_id,
        started_time_ms,
    })
}

fn task_start_from(t: Option<wire::TaskStart>) -> (i64, i64) {
    t.map_or((0, 0), |t| (t.started_event_id, t.started_time_ms))
}

fn change_to(change: RunChange) -> wire::RunChange {
    use wire::run_change::Change as C;
    let change = match change {
        RunChange::ChildStarted {
            initiated_event_id,
            child_run_id,
        } => C::ChildStarted(wire::ChildStarted {
            initiated_event_id,
            child_run_id,
        }),
        RunChange::ChildStartFailed { initiated_event_id } => {
            C::ChildStartFailed(initiated_event_id)
        }
        RunChange::ChildClosed {
            initiated_event_id,
            child_run_id,
            close,
        } => C::ChildClosed(wire::ChildClosed {
            initiated_event_id,
            child_run_id,
            close: Some(*close),
        }),
        RunChange::ScheduleFirstWorkflowTask => C::ScheduleFirstWorkflowTask(wire::Empty {}),
        RunChange::SignalExternalDone {
            initiated_event_id,
            delivered,
        } => C::SignalExternalDone(wire::ExternalDone {
            initiated_event_id,
            delivered,
        }),
        RunChange::RequestCancel { cause, external } => {
            C::RequestCancel(wire::RequestCancelChange {
                cause,
                external: external.map(|(execution, initiated_event_id)| wire::CancelFrom {
                    execution: Some(execution),
                    initiated_event_id,
                }),
            })
        }
        RunChange::CancelExternalDone {
            initiated_event_id,
            delivered,
        } => C::CancelExternalDone(wire::ExternalDone {
            initiated_event_id,
            delivered,
        }),
        RunChange::Terminate { reason } => C::Terminate(reason),
        RunChange::ResetStickyTaskQueue => C::ResetStickyTaskQueue(wire::Empty {}),
    };
    wire::RunChange {
        change: Some(change),
    }
}

fn change_from(change: Option<wire::RunChange>) -> Result<RunChange> {
    use wire::run_change::Change as C;
    let change = change
        .and_then(|c| c.change)
        .ok_or_else(|| missing("apply.change"))?;
    Ok(match change {
        C::ChildStarted(c) => RunChange::ChildStarted {
            initiated_event_id: c.initiated_event_id,
            child_run_id: c.child_run_id,
        },
        C::ChildStartFailed(initiated_event_id) => {
            RunChange::ChildStartFailed { initiated_event_id }
        }
        C::ChildClosed(c) => RunChange::ChildClosed {
            initiated_event_id: c.initiated_event_id,
            child_run_id: c.child_run_id,
            close: Box::new(c.close.ok_or_else(|| missing("child_closed.close"))?),
        },
        C::ScheduleFirstWorkflowTask(_) => RunChange::ScheduleFirstWorkflowTask,
        C::SignalExternalDone(d) => RunChange::SignalExternalDone {
            initiated_event_id: d.initiated_event_id,
            delivered: d.delivered,
        },
        C::RequestCancel(r) => RunChange::RequestCancel {
            cause: r.cause,
            external: r
                .external
                .map(|e| (e.execution.unwrap_or_default(), e.initiated_event_id)),
        },
        C::CancelExternalDone(d) => RunChange::CancelExternalDone {
            initiated_event_id: d.initiated_event_id,
            delivered: d.delivered,
        },
        C::Terminate(reason) => RunChange::Terminate { reason },
        C::ResetStickyTaskQueue(_) => RunChange::ResetStickyTaskQueue,
    })
}

fn update_to(update: UpdateRequest) -> wire::Update {
    use wire::update::Kind;
    let kind = match update {
        UpdateRequest::Update {
            run,
            first_execution_run_id,
            request,
            stage,
        } => Kind::Update(wire::UpdateRun {
            run: Some(run_to(run)),
            first_execution_run_id,
            request: Some(request),
            stage,
        }),
        UpdateRequest::Poll {
            run,
            update_id,
            stage,
        } => Kind::Poll(wire::PollUpdate {
            run: Some(run_to(run)),
            update_id,
            stage,
        }),
        UpdateRequest::UpdateWithStart {
            start,
            request,
            stage,
        } => Kind::UpdateWithStart(wire::UpdateWithStart {
            start: Some(start_to(*start)),
            request: Some(request),
            stage,
        }),
    };
    wire::Update { kind: Some(kind) }
}

fn update_from(update: wire::Update) -> Result<UpdateRequest> {
    use wire::update::Kind;
    Ok(match update.kind.ok_or_else(|| missing("update.kind"))? {
        Kind::Update(u) => UpdateRequest::Update {
            run: run_from(u.run)?,
            first_execution_run_id: u.first_execution_run_id,
            request: u.request.ok_or_else(|| missing("update.request"))?,
            stage: u.stage,
        },
        Kind::Poll(p) => UpdateRequest::Poll {
            run: run_from(p.run)?,
            update_id: p.update_id,
            stage: p.stage,
        },
        Kind::UpdateWithStart(u) => UpdateRequest::UpdateWithStart {
            start: Box::new(start_from(u.start)?),
            request: u.request.ok_or_else(|| missing("update.request"))?,
            stage: u.stage,
        },
    })
}

fn reset_to(r: ResetWorkflow) -> wire::Reset {
    wire::Reset {
        current: Some(run_to(r.current)),
        base: r.base.encode_to_vec(),
        base_events: r.base_events,
        later_runs: r
            .later_runs
            .into_iter()
            .map(|(run_id, next_event_id, events)| wire::LaterRun {
                run_id,
                next_event_id,
                events,
            })
            .collect(),
        workflow_task_finish_event_id: r.params.workflow_task_finish_event_id,
        reason: r.params.reason,
        request_id: r.params.request_id,
        reapply_signals: r.reapply.signals,
        reapply_updates: r.reapply.updates,
    }
}

fn reset_from(r: wire::Reset) -> Result<ResetWorkflow> {
    Ok(ResetWorkflow {
        current: run_from(r.current)?,
        base: decode(&r.base, "reset.base")?,
        base_events: r.base_events,
        later_runs: r
            .later_runs
            .into_iter()
            .map(|l| (l.run_id, l.next_event_id, l.events))
            .collect(),
        params: ResetParams {
            workflow_task_finish_event_id: r.workflow_task_finish_event_id,
            reason: r.reason,
            request_id: r.request_id,
        },
        reapply: Reapply {
            signals: r.reapply_signals,
            updates: r.reapply_updates,
        },
    })
}

fn report_to(
    target: ActivityTarget,
    report: ActivityReport,
) -> (wire::report_activity::Target, wire::report_activity::Report) {
    use wire::report_activity::{Report as R, Target as T};
    let target = match target {
        ActivityTarget::Scheduled {
            scheduled_event_id,
            attempt,
        } => T::Scheduled(wire::ScheduledActivity {
            scheduled_event_id,
            attempt,
        }),
        ActivityTarget::Id(id) => T::ActivityId(id),
    };
    let maybe = |payloads| wire::MaybePayloads { payloads };
    let report = match report {
        ActivityReport::Completed(p) => R::Completed(maybe(p)),
        ActivityReport::Failed(failure, details) => R::Failed(wire::ActivityFailed {
            failure,
            last_heartbeat_details: details,
        }),
        ActivityReport::Canceled(p) => R::Canceled(maybe(p)),
        ActivityReport::Heartbeat(p) => R::Heartbeat(maybe(p)),
    };
    (target, report)
}

fn report_from(r: wire::ReportActivity) -> Result<Request> {
    use wire::report_activity::{Report as R, Target as T};
    let target = match r.target.ok_or_else(|| missing("report_activity.target"))? {
        T::Scheduled(s) => ActivityTarget::Scheduled {
            scheduled_event_id: s.scheduled_event_id,
            attempt: s.attempt,
        },
        T::ActivityId(id) => ActivityTarget::Id(id),
    };
    let report = match r.report.ok_or_else(|| missing("report_activity.report"))? {
        R::Completed(p) => ActivityReport::Completed(p.payloads),
        R::Failed(f) => ActivityReport::Failed(f.failure, f.last_heartbeat_details),
        R::Canceled(p) => ActivityReport::Canceled(p.payloads),
        R::Heartbeat(p) => ActivityReport::Heartbeat(p.payloads),
    };
    Ok(Request::ReportActivity {
        run: run_from(r.run)?,
        target,
        report,
        identity: r.identity,
    })
}

/// A shard request as the internal API sends it to shard `shard_id`. A timer never leaves
/// its shard: it is refused.
pub fn request_to(shard_id: i32, request: Request) -> Result<wire::SubmitRequest> {
    let request = match request {
        Request::Start(s) => W::Start(start_to(s)),
        Request::SignalWithStart(s, signal) => W::SignalWithStart(wire::SignalWithStart {
            start: Some(start_to(s)),
            signal: Some(signal_to(signal)),
        }),
        Request::RecordWorkflowTaskStarted {
            run,
            scheduled_event_id,
            attempt,
            request_id,
            identity,
            build_id,
            polled_queue,
        } => W::RecordWorkflowTaskStarted(wire::RecordWorkflowTaskStarted {
            run: Some(run_to(run)),
            scheduled_event_id,
            attempt,
            request_id,
            identity,
            build_id,
            polled_queue,
        }),
        Request::CompleteWorkflowTask {
            run,
            scheduled_event_id,
            attempt,
            started,
            request,
        } => W::CompleteWorkflowTask(wire::CompleteWorkflowTask {
            run: Some(run_to(run)),
            scheduled_event_id,
            attempt,
            started: task_start_to(started),
            request: Some(*request),
        }),
        Request::FailWorkflowTask {
            run,
            scheduled_event_id,
            attempt,
            started,
            cause,
            failure,
            identity,
        } => W::FailWorkflowTask(wire::FailWorkflowTask {
            run: Some(run_to(run)),
            scheduled_event_id,
            attempt,
            started: task_start_to(started),
            cause: cause as i32,
            failure,
            identity,
        }),
        Request::RecordActivityTaskStarted {
            run,
            scheduled_event_id,
            attempt,
            request_id,
            identity,
            build_id,
        } => W::RecordActivityTaskStarted(wire::RecordActivityTaskStarted {
            run: Some(run_to(run)),
            scheduled_event_id,
            attempt,
            request_id,
            identity,
            build_id,
        }),
        Request::ReportActivity {
            run,
            target,
            report,
            identity,
        } => {
            let (target, report) = report_to(target, report);
            W::ReportActivity(wire::ReportActivity {
                run: Some(run_to(run)),
                target: Some(target),
                report: Some(report),
                identity,
            })
        }
        Request::Signal(run, signal) => W::Signal(wire::SignalRun {
            run: Some(run_to(run)),
            signal: Some(signal_to(signal)),
        }),
        Request::RequestCancel {
            run,
            cause,
            identity,
        } => W::RequestCancel(wire::RequestCancel {
            run: Some(run_to(run)),
            cause,
            identity,
        }),
        Request::Terminate {
            run,
            reason,
            details,
            identity,
        } => W::Terminate(wire::Terminate {
            run: Some(run_to(run)),
            reason,
            details,
            identity,
        }),
        Request::Describe(run) => W::Describe(run_to(run)),
        Request::Watch { run, next_event_id } => W::Watch(wire::Watch {
            run: Some(run_to(run)),
            next_event_id,
        }),
        Request::Timer(..) => {
            return Err(Error::Internal(
                "a timer is fired by its own shard, never sent to one".into(),
            ));
        }
        Request::Update(u) => W::Update(update_to(u)),
        Request::Query {
            run,
            query,
            reject_condition,
        } => W::Query(wire::Query {
            run: Some(run_to(run)),
            query: Some(query),
            reject_condition,
        }),
        Request::Reset(r) => W::Reset(reset_to(*r)),
        Request::Delete(run) => W::Delete(run_to(run)),
        Request::Apply { run, change } => W::Apply(wire::Apply {
            run: Some(run_to(run)),
            change: Some(change_to(change)),
        }),
    };
    Ok(wire::SubmitRequest {
        shard_id,
        request: Some(request),
    })
}

/// The shard request an internal `Submit` carries.
pub fn request_from(request: wire::SubmitRequest) -> Result<(i32, Request)> {
    let shard = request.shard_id;
    let request = match request.request.ok_or_else(|| missing("request"))? {
        W::Start(s) => Request::Start(start_from(Some(s))?),
        W::SignalWithStart(s) => Request::SignalWithStart(
            start_from(s.start)?,
            signal_from(s.signal.ok_or_else(|| missing("signal"))?),
        ),
        W::RecordWorkflowTaskStarted(r) => Request::RecordWorkflowTaskStarted {
            run: run_from(r.run)?,
            scheduled_event_id: r.scheduled_event_id,
            attempt: r.attempt,
            request_id: r.request_id,
            identity: r.identity,
            build_id: r.build_id,
            polled_queue: r.polled_queue,
        },
        W::CompleteWorkflowTask(c) => Request::CompleteWorkflowTask {
            run: run_from(c.run)?,
            scheduled_event_id: c.scheduled_event_id,
            attempt: c.attempt,
            started: task_start_from(c.started),
            request: Box::new(c.request.ok_or_else(|| missing("request"))?),
        },
        W::FailWorkflowTask(f) => Request::FailWorkflowTask {
            run: run_from(f.run)?,
            scheduled_event_id: f.scheduled_event_id,
            attempt: f.attempt,
            started: task_start_from(f.started),
            cause: WorkflowTaskFailedCause::try_from(f.cause)
                .unwrap_or(WorkflowTaskFailedCause::Unspecified),
            failure: f.failure,
            identity: f.identity,
        },
        W::RecordActivityTaskStarted(r) => Request::RecordActivityTaskStarted {
            run: run_from(r.run)?,
            scheduled_event_id: r.scheduled_event_id,
            attempt: r.attempt,
            request_id: r.request_id,
            identity: r.identity,
            build_id: r.build_id,
        },
        W::ReportActivity(r) => report_from(r)?,
        W::Signal(s) => Request::Signal(
            run_from(s.run)?,
            signal_from(s.signal.ok_or_else(|| missing("signal"))?),
        ),
        W::RequestCancel(r) => Request::RequestCancel {
            run: run_from(r.run)?,
            cause: r.cause,
            identity: r.identity,
        },
        W::Terminate(t) => Request::Terminate {
            run: run_from(t.run)?,
            reason: t.reason,
            details: t.details,
            identity: t.identity,
        },
        W::Describe(run) => Request::Describe(run_from(Some(run))?),
        W::Watch(w) => Request::Watch {
            run: run_from(w.run)?,
            next_event_id: w.next_event_id,
        },
        W::Update(u) => Request::Update(update_from(u)?),
        W::Query(q) => Request::Query {
            run: run_from(q.run)?,
            query: q.query.ok_or_else(|| missing("query"))?,
            reject_condition: q.reject_condition,
        },
        W::Reset(r) => Request::Reset(Box::new(reset_from(r)?)),
        W::Delete(run) => Request::Delete(run_from(Some(run))?),
        W::Apply(a) => Request::Apply {
            run: run_from(a.run)?,
            change: change_from(a.change)?,
        },
    };
    Ok((shard, request))
}

fn wft_start_to(s: WorkflowTaskStart) -> wire::WorkflowTaskStart {
    wire::WorkflowTaskStart {
        scheduled_event_id: s.scheduled_event_id,
        started_event_id: s.started_event_id,
        attempt: s.attempt,
        previous_started_event_id: s.previous_started_event_id,
        scheduled_time_ms: s.scheduled_time_ms,
        started_time_ms: s.started_time_ms,
        transient_events: s.transient_events,
        next_event_id: s.next_event_id,
        messages: s.messages,
    }
}

fn wft_start_from(s: wire::WorkflowTaskStart) -> WorkflowTaskStart {
    WorkflowTaskStart {
        scheduled_event_id: s.scheduled_event_id,
        started_event_id: s.started_event_id,
        attempt: s.attempt,
        previous_started_event_id: s.previous_started_event_id,
        scheduled_time_ms: s.scheduled_time_ms,
        started_time_ms: s.started_time_ms,
        transient_events: s.transient_events,
        next_event_id: s.next_event_id,
        messages: s.messages,
    }
}

/// A started workflow task as the internal API carries it.
pub fn wft_started_to(s: WorkflowTaskStarted) -> wire::WorkflowTaskStarted {
    wire::WorkflowTaskStarted {
        run_id: s.run_id,
        start: Some(wft_start_to(s.start)),
        state: s.state.encode_to_vec(),
        queries: s.queries,
    }
}

/// A started workflow task from the internal API.
pub fn wft_started_from(s: wire::WorkflowTaskStarted) -> Result<WorkflowTaskStarted> {
    Ok(WorkflowTaskStarted {
        run_id: s.run_id,
        start: wft_start_from(
            s.start
                .ok_or_else(|| missing("workflow_task_started.start"))?,
        ),
        state: decode(&s.state, "workflow_task_started.state")?,
        queries: s.queries,
    })
}

/// A started activity as the internal API carries it.
pub fn activity_started_to(a: ActivityStarted) -> wire::ActivityStarted {
    wire::ActivityStarted {
        activity: a.activity.encode_to_vec(),
        state: a.state.encode_to_vec(),
    }
}

/// A started activity from the internal API.
pub fn activity_started_from(a: wire::ActivityStarted) -> Result<ActivityStarted> {
    Ok(ActivityStarted {
        activity: decode::<ActivityInfo>(&a.activity, "activity_started.activity")?,
        state: decode::<MutableState>(&a.state, "activity_started.state")?,
    })
}

fn update_status_to(status: UpdateStatus) -> wire::UpdateStatus {
    use wire::update_status::Status as S;
    let status = match status {
        UpdateStatus::Admitted => S::Admitted(wire::Empty {}),
        UpdateStatus::Accepted => S::Accepted(wire::Empty {}),
        UpdateStatus::Outcome(outcome) => S::Outcome(*outcome),
        UpdateStatus::CompletedAt(event_id) => S::CompletedAt(event_id),
        UpdateStatus::Aborted(AbortReason::WorkflowCompleted) => S::Aborted(1),
        UpdateStatus::Aborted(AbortReason::WorkflowContinuing) => S::Aborted(2),
    };
    wire::UpdateStatus {
        status: Some(status),
    }
}

fn update_status_from(status: Option<wire::UpdateStatus>) -> Result<UpdateStatus> {
    use wire::update_status::Status as S;
    Ok(
        match status
            .and_then(|s| s.status)
            .ok_or_else(|| missing("update.status"))?
        {
            S::Admitted(_) => UpdateStatus::Admitted,
            S::Accepted(_) => UpdateStatus::Accepted,
            S::Outcome(outcome) => UpdateStatus::Outcome(Box::new(outcome)),
            S::CompletedAt(event_id) => UpdateStatus::CompletedAt(event_id),
            S::Aborted(2) => UpdateStatus::Aborted(AbortReason::WorkflowContinuing),
            S::Aborted(_) => UpdateStatus::Aborted(AbortReason::WorkflowCompleted),
        },
    )
}

fn update_answer_to(answer: UpdateAnswer) -> wire::UpdateAnswer {
    use wire::update_answer::Answer as A;
    use wire::update_refusal::Refusal as R;
    let answer = match answer {
        UpdateAnswer::Reached { run_id, status } => A::Reached(wire::UpdateReached {
            run_id,
            status: Some(update_status_to(status)),
        }),
        UpdateAnswer::Refused(refusal) => A::Refused(wire::UpdateRefusal {
            refusal: Some(match refusal {
                UpdateRefusal::WrongFirstRun => R::WrongFirstRun(wire::Empty {}),
                UpdateRefusal::WorkflowCompleted => R::WorkflowCompleted(wire::Empty {}),
                UpdateRefusal::WorkflowTaskFailing => R::WorkflowTaskFailing(wire::Empty {}),
                UpdateRefusal::TooManyInFlight(limit) => R::TooManyInFlight(limit),
                UpdateRefusal::TooManyTotal(limit) => R::TooManyTotal(limit),
            }),
        }),
        UpdateAnswer::NotFound => A::NotFound(wire::Empty {}),
    };
    wire::UpdateAnswer {
        answer: Some(answer),
    }
}

fn update_answer_from(answer: wire::UpdateAnswer) -> Result<UpdateAnswer> {
    use wire::update_answer::Answer as A;
    use wire::update_refusal::Refusal as R;
    Ok(
        match answer.answer.ok_or_else(|| missing("update answer"))? {
            A::Reached(r) => UpdateAnswer::Reached {
                run_id: r.run_id,
                status: update_status_from(r.status)?,
            },
            A::Refused(r) => {
                UpdateAnswer::Refused(match r.refusal.ok_or_else(|| missing("update refusal"))? {
                    R::WrongFirstRun(_) => UpdateRefusal::WrongFirstRun,
                    R::WorkflowCompleted(_) => UpdateRefusal::WorkflowCompleted,
                    R::WorkflowTaskFailing(_) => UpdateRefusal::WorkflowTaskFailing,
                    R::TooManyInFlight(limit) => UpdateRefusal::TooManyInFlight(limit),
                    R::TooManyTotal(limit) => UpdateRefusal::TooManyTotal(limit),
                })
            }
            A::NotFound(_) => UpdateAnswer::NotFound,
        },
    )
}

/// A shard's reply (or error) as the internal API streams it.
pub fn reply_to(reply: Result<Response>) -> wire::Reply {
    use wire::reply::Reply as R;
    let reply = match reply {
        Err(e) => R::Error(super::errors::error_to(&e)),
        Ok(Response::Done) => R::Done(wire::Empty {}),
        Ok(Response::Started(s)) => R::Started(wire::StartOutcome {
            run_id: s.run_id,
            started: s.started,
            eager: s.eager.map(|e| wft_started_to(*e)),
        }),
        Ok(Response::WorkflowTaskStarted(s)) => R::WorkflowTaskStarted(wft_started_to(*s)),
        Ok(Response::WorkflowTaskCompleted(c)) => {
            let c = *c;
            R::WorkflowTaskCompleted(wire::CompletedWorkflowTask {
                new_workflow_task: c.outcome.new_workflow_task.map(wft_start_to),
                eager_activities: c
                    .outcome
                    .eager_activities
                    .iter()
                    .map(Message::encode_to_vec)
                    .collect(),
                rejected: c.outcome.rejected.map(|r| wire::CommandError {
                    cause: r.cause as i32,
                    message: r.message,
                    terminate: r.terminate,
                }),
                reset_history_event_id: c.outcome.reset_history_event_id,
                state: c.state.encode_to_vec(),
                queries: c.queries,
            })
        }
        Ok(Response::ActivityStarted(a)) => R::ActivityStarted(activity_started_to(*a)),
        Ok(Response::CancelRequested(c)) => R::CancelRequested(c),
        Ok(Response::State(s)) => R::State(s.encode_to_vec()),
        Ok(Response::Query(route)) => {
            use wire::query_route::Route;
            R::Query(wire::QueryRoute {
                route: Some(match route {
                    QueryRoute::Rejected(status) => Route::Rejected(status),
                    QueryRoute::Direct(state) => Route::Direct(state.encode_to_vec()),
                    QueryRoute::Answered(result) => Route::Answered(*result),
                    QueryRoute::Unblocked => Route::Unblocked(wire::Empty {}),
                }),
            })
        }
        Ok(Response::Update(answer)) => R::Update(update_answer_to(answer)),
        Ok(Response::Reset(run_id)) => R::ResetRunId(run_id),
    };
    wire::Reply { reply: Some(reply) }
}

/// A shard's reply from the internal API.
pub fn reply_from(reply: wire::Reply) -> Result<Response> {
    use wire::reply::Reply as R;
    Ok(match reply.reply.ok_or_else(|| missing("reply"))? {
        R::Error(e) => return Err(super::errors::error_from(e)),
        R::Done(_) => Response::Done,
        R::Started(s) => Response::Started(StartOutcome {
            run_id: s.run_id,
            started: s.started,
            eager: match s.eager {
                Some(e) => Some(Box::new(wft_started_from(e)?)),
                None => None,
            },
        }),
        R::WorkflowTaskStarted(s) => Response::WorkflowTaskStarted(Box::new(wft_started_from(s)?)),
        R::WorkflowTaskCompleted(c) => {
            let eager_activities = c
                .eager_activities
                .iter()
                .map(|a| decode::<ActivityInfo>(a, "eager activity"))
                .collect::<Result<_>>()?;
            Response::WorkflowTaskCompleted(Box::new(CompletedWorkflowTask {
                outcome: CompletionOutcome {
                    new_workflow_task: c.new_workflow_task.map(wft_start_from),
                    eager_activities,
                    rejected: c.rejected.map(|r| CommandError {
                        cause: WorkflowTaskFailedCause::try_from(r.cause)
                            .unwrap_or(WorkflowTaskFailedCause::Unspecified),
                        message: r.message,
                        terminate: r.terminate,
                    }),
                    reset_history_event_id: c.reset_history_event_id,
                },
                state: decode(&c.state, "completed.state")?,
                queries: c.queries,
            }))
        }
        R::ActivityStarted(a) => Response::ActivityStarted(Box::new(activity_started_from(a)?)),
        R::CancelRequested(c) => Response::CancelRequested(c),
        R::State(s) => Response::State(Box::new(decode(&s, "state")?)),
        R::Query(q) => {
            use wire::query_route::Route;
            Response::Query(match q.route.ok_or_else(|| missing("query route"))? {
                Route::Rejected(status) => QueryRoute::Rejected(status),
                Route::Direct(state) => QueryRoute::Direct(Box::new(decode(&state, "state")?)),
                Route::Answered(result) => QueryRoute::Answered(Box::new(result)),
                Route::Unblocked(_) => QueryRoute::Unblocked,
            })
        }
        R::Update(answer) => Response::Update(update_answer_from(answer)?),
        R::ResetRunId(run_id) => Response::Reset(run_id),
    })
}

// Matching's messages.

/// A task-queue key as the internal API carries it.
pub fn key_to(key: TaskQueueKey) -> wire::TaskQueueKey {
    wire::TaskQueueKey {
        namespace_id: key.namespace_id,
        name: key.name,
        task_type: key.task_type,
        partition: key.partition,
    }
}

/// A task-queue key from the internal API.
pub fn key_from(key: Option<wire::TaskQueueKey>) -> Result<TaskQueueKey> {
    let key =
        key.ok_or_else(|| Error::InvalidArgument("internal request: key is not set".into()))?;
    Ok(TaskQueueKey {
        namespace_id: key.namespace_id,
        name: key.name,
        task_type: key.task_type,
        partition: key.partition,
    })
}

/// A legacy query as the internal API carries it.
pub fn query_to(q: QueryTask) -> wire::QueryTask {
    wire::QueryTask {
        query_id: q.query_id,
        namespace_id: q.namespace_id,
        workflow_id: q.workflow_id,
        run_id: q.run_id,
        query: Some(q.query),
        expires_ms: q.expires_ms,
    }
}

/// A legacy query from the internal API.
pub fn query_from(q: wire::QueryTask) -> QueryTask {
    QueryTask {
        query_id: q.query_id,
        namespace_id: q.namespace_id,
        workflow_id: q.workflow_id,
        run_id: q.run_id,
        query: q.query.unwrap_or_default(),
        expires_ms: q.expires_ms,
    }
}

/// Partition statistics as the internal API carries them.
pub fn stats_to(s: PartitionStats) -> wire::PartitionStats {
    wire::PartitionStats {
        backlog_count: s.backlog_count as i64,
        oldest_enqueued_ms: s.oldest_enqueued_ms,
        tasks_add_rate: s.tasks_add_rate,
        tasks_dispatch_rate: s.tasks_dispatch_rate,
        pollers_waiting: s.pollers_waiting as i64,
        recent_pollers: s
            .recent_pollers
            .into_iter()
            .map(|(identity, last_access_ms)| wire::Poller {
                identity,
                last_access_ms,
            })
            .collect(),
    }
}

/// Partition statistics from the internal API.
pub fn stats_from(s: wire::PartitionStats) -> PartitionStats {
    PartitionStats {
        backlog_count: s.backlog_count.max(0) as usize,
        oldest_enqueued_ms: s.oldest_enqueued_ms,
        tasks_add_rate: s.tasks_add_rate,
        tasks_dispatch_rate: s.tasks_dispatch_rate,
        pollers_waiting: s.pollers_waiting.max(0) as usize,
        recent_pollers: s
            .recent_pollers
            .into_iter()
            .map(|p| (p.identity, p.last_access_ms))
            .collect(),
    }
}

/// A poll as the internal API carries it.
pub fn poll_to(key: TaskQueueKey, poll: Poll) -> wire::PollRequest {
    wire::PollRequest {
        key: Some(key_to(key)),
        identity: poll.identity,
        build_id: poll.build_id,
        queue: poll.queue,
        sticky: poll.sticky,
        timeout_ms: poll.timeout.as_millis().min(i64::MAX as u128) as i64,
    }
}

/// A poll from the internal API.
pub fn poll_from(p: wire::PollRequest) -> Result<(TaskQueueKey, Poll)> {
    Ok((
        key_from(p.key)?,
        Poll {
            identity: p.identity,
            build_id: p.build_id,
            queue: p.queue,
            sticky: p.sticky,
            timeout: Duration::from_millis(p.timeout_ms.clamp(0, 60_000) as u64),
        },
    ))
}
