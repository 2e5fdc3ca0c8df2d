//! History events: the type of each attribute variant, and the buffering rules of reference
//! §2.4 (which events wait while a workflow task is in flight, and their order on flush).

use temporalio_protos::temporal::api::{
    enums::v1::EventType,
    history::v1::{HistoryEvent, history_event::Attributes},
};

/// Placeholder id of an event waiting in the buffer.
pub const BUFFERED_EVENT_ID: i64 = -123;
/// Placeholder id of an event that is not stored (transient workflow-task events).
pub const TRANSIENT_EVENT_ID: i64 = -124;

/// The event type that goes with an attribute variant.
pub fn event_type_of(attributes: &Attributes) -> EventType {
    use Attributes as A;
    match attributes {
        A::WorkflowExecutionStartedEventAttributes(_) => EventType::WorkflowExecutionStarted,
        A::WorkflowExecutionCompletedEventAttributes(_) => EventType::WorkflowExecutionCompleted,
        A::WorkflowExecutionFailedEventAttributes(_) => EventType::WorkflowExecutionFailed,
        A::WorkflowExecutionTimedOutEventAttributes(_) => EventType::WorkflowExecutionTimedOut,
        A::WorkflowTaskScheduledEventAttributes(_) => EventType::WorkflowTaskScheduled,
        A::WorkflowTaskStartedEventAttributes(_) => EventType::WorkflowTaskStarted,
        A::WorkflowTaskCompletedEventAttributes(_) => EventType::WorkflowTaskCompleted,
        A::WorkflowTaskTimedOutEventAttributes(_) => EventType::WorkflowTaskTimedOut,
        A::WorkflowTaskFailedEventAttributes(_) => EventType::WorkflowTaskFailed,
        A::ActivityTaskScheduledEventAttributes(_) => EventType::ActivityTaskScheduled,
        A::ActivityTaskStartedEventAttributes(_) => EventType::ActivityTaskStarted,
        A::ActivityTaskCompletedEventAttributes(_) => EventType::ActivityTaskCompleted,
        A::ActivityTaskFailedEventAttributes(_) => EventType::ActivityTaskFailed,
        A::ActivityTaskTimedOutEventAttributes(_) => EventType::ActivityTaskTimedOut,
        A::TimerStartedEventAttributes(_) => EventType::TimerStarted,
        A::TimerFiredEventAttributes(_) => EventType::TimerFired,
        A::ActivityTaskCancelRequestedEventAttributes(_) => EventType::ActivityTaskCancelRequested,
        A::ActivityTaskCanceledEventAttributes(_) => EventType::ActivityTaskCanceled,
        A::TimerCanceledEventAttributes(_) => EventType::TimerCanceled,
        A::MarkerRecordedEventAttributes(_) => EventType::MarkerRecorded,
        A::WorkflowExecutionSignaledEventAttributes(_) => EventType::WorkflowExecutionSignaled,
        A::WorkflowExecutionTerminatedEventAttributes(_) => EventType::WorkflowExecutionTerminated,
        A::WorkflowExecutionCancelRequestedEventAttributes(_) => {
            EventType::WorkflowExecutionCancelRequested
        }
        A::WorkflowExecutionCanceledEventAttributes(_) => EventType::WorkflowExecutionCanceled,
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionInitiated
        }
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionFailed
        }
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(_) => {
            EventType::ExternalWorkflowExecutionCancelRequested
        }
        A::WorkflowExecutionContinuedAsNewEventAttributes(_) => {
            EventType::WorkflowExecutionContinuedAsNew
        }
        A::StartChildWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::StartChildWorkflowExecutionInitiated
        }
        A::StartChildWorkflowExecutionFailedEventAttributes(_) => {
            EventType::StartChildWorkflowExecutionFailed
        }
        A::ChildWorkflowExecutionStartedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionStarted
        }
        A::ChildWorkflowExecutionCompletedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionCompleted
        }
        A::ChildWorkflowExecutionFailedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionFailed
        }
        A::ChildWorkflowExecutionCanceledEventAttributes(_) => {
            EventType::ChildWorkflowExecutionCanceled
        }
        A::ChildWorkflowExecutionTimedOutEventAttributes(_) => {
            EventType::ChildWorkflowExecutionTimedOut
        }
        A::ChildWorkflowExecutionTerminatedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionTerminated
        }
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::SignalExternalWorkflowExecutionInitiated
        }
        A::SignalExternalWorkflowExecutionFailedEventAttributes(_) => {
            EventType::SignalExternalWorkflowExecutionFailed
        }
        A::ExternalWorkflowExecutionSignaledEventAttributes(_) => {
            EventType::ExternalWorkflowExecutionSignaled
        }
        A::UpsertWorkflowSearchAttributesEventAttributes(_) => {
            EventType::UpsertWorkflowSearchAttributes
        }
        A::WorkflowExecutionUpdateAcceptedEventAttributes(_) => {
            EventType::WorkflowExecutionUpdateAccepted
        }
        A::WorkflowExecutionUpdateRejectedEventAttributes(_) => {
            EventType::WorkflowExecutionUpdateRejected
        }
        A::WorkflowExecutionUpdateCompletedEventAttributes(_) => {
            EventType::WorkflowExecutionUpdateCompleted
        }
        A::WorkflowPropertiesModifiedExternallyEventAttributes(_) => {
            EventType::WorkflowPropertiesModifiedExternally
        }
        A::ActivityPropertiesModifiedExternallyEventAttributes(_) => {
            EventType::ActivityPropertiesModifiedExternally
        }
        A::WorkflowPropertiesModifiedEventAttributes(_) => EventType::WorkflowPropertiesModified,
        A::WorkflowExecutionUpdateAdmittedEventAttributes(_) => {
            EventType::WorkflowExecutionUpdateAdmitted
        }
        _ => EventType::Unspecified,
    }
}

/// True when an event of this type must wait in the buffer while a workflow task is started:
/// everything except workflow state changes, workflow-task events, events made directly from
/// commands and update accepted/completed.
pub fn is_bufferable(event_type: EventType) -> bool {
    use EventType as E;
    !matches!(
        event_type,
        E::WorkflowExecutionStarted
            | E::WorkflowExecutionCompleted
            | E::WorkflowExecutionFailed
            | E::WorkflowExecutionTimedOut
            | E::WorkflowExecutionTerminated
            | E::WorkflowExecutionContinuedAsNew
            | E::WorkflowExecutionCanceled
            | E::WorkflowTaskScheduled
            | E::WorkflowTaskStarted
            | E::WorkflowTaskCompleted
            | E::WorkflowTaskFailed
            | E::WorkflowTaskTimedOut
            | E::ActivityTaskScheduled
            | E::ActivityTaskCancelRequested
            | E::TimerStarted
            | E::TimerCanceled
            | E::MarkerRecorded
            | E::StartChildWorkflowExecutionInitiated
            | E::SignalExternalWorkflowExecutionInitiated
            | E::RequestCancelExternalWorkflowExecutionInitiated
            | E::UpsertWorkflowSearchAttributes
            | E::WorkflowPropertiesModified
            | E::NexusOperationScheduled
            | E::NexusOperationCancelRequested
            | E::WorkflowExecutionUpdateAccepted
            | E::WorkflowExecutionUpdateCompleted
    )
}

/// True for the events that move to the end of a flushed buffer: activity and child-workflow
/// closing events. Their started events keep their place (checked against the reference
/// server: ActivityTaskStarted, Signaled, ActivityTaskCompleted).
fn moves_to_end(event_type: EventType) -> bool {
    use EventType as E;
    matches!(
        event_type,
        E::ActivityTaskCompleted
            | E::ActivityTaskFailed
            | E::ActivityTaskTimedOut
            | E::ActivityTaskCanceled
            | E::ChildWorkflowExecutionCompleted
            | E::ChildWorkflowExecutionFailed
            | E::ChildWorkflowExecutionCanceled
            | E::ChildWorkflowExecutionTimedOut
            | E::ChildWorkflowExecutionTerminated
    )
}

/// Orders a flushed buffer as Temporal does: other events first, then activity and child
/// closing events, each group in arrival order.
pub fn reorder_buffer(buffer: Vec<HistoryEvent>) -> Vec<HistoryEvent> {
    let (last, mut first): (Vec<_>, Vec<_>) = buffer
        .into_iter()
        .partition(|e| moves_to_end(EventType::try_from(e.event_type).unwrap_or_default()));
    first.extend(last);
    first
}

/// The attributes of an event, mutable.
pub fn attributes_mut(event: &mut HistoryEvent) -> Option<&mut Attributes> {
    event.attributes.as_mut()
}

/// The initiated event id of an event that ends a child workflow for its parent: the child's
/// close, or its failed start.
pub fn child_closed_initiated_id(attributes: &Attributes) -> Option<i64> {
    match attributes {
        Attributes::ChildWorkflowExecutionCompletedEventAttributes(a) => Some(a.initiated_event_id),
        Attributes::ChildWorkflowExecutionFailedEventAttributes(a) => Some(a.initiated_event_id),
        Attributes::ChildWorkflowExecutionCanceledEventAttributes(a) => Some(a.initiated_event_id),
        Attributes::ChildWorkflowExecutionTimedOutEventAttributes(a) => Some(a.initiated_event_id),
        Attributes::ChildWorkflowExecutionTerminatedEventAttributes(a) => {
            Some(a.initiated_event_id)
        }
        Attributes::StartChildWorkflowExecutionFailedEventAttributes(a) => {
            Some(a.initiated_event_id)
        }
        _ => None,
    }
}

/// A child's closing event: its initiated event id and the started-event id it points at (to
/// be set where the started event got its id late).
pub fn child_close_started_id_mut(attributes: &mut Attributes) -> Option<(i64, &mut i64)> {
    match attributes {
        Attributes::ChildWorkflowExecutionCompletedEventAttributes(a) => {
            Some((a.initiated_event_id, &mut a.started_event_id))
        }
        Attributes::ChildWorkflowExecutionFailedEventAttributes(a) => {
            Some((a.initiated_event_id, &mut a.started_event_id))
        }
        Attributes::ChildWorkflowExecutionCanceledEventAttributes(a) => {
            Some((a.initiated_event_id, &mut a.started_event_id))
        }
        Attributes::ChildWorkflowExecutionTimedOutEventAttributes(a) => {
            Some((a.initiated_event_id, &mut a.started_event_id))
        }
        Attributes::ChildWorkflowExecutionTerminatedEventAttributes(a) => {
            Some((a.initiated_event_id, &mut a.started_event_id))
        }
        _ => None,
    }
}

/// The worker-version stamp Temporal writes on started events for a worker that sent a build
/// id (its poll's `worker_version_capabilities`, or the completion's stamp).
pub fn worker_stamp(
    build_id: &str,
) -> Option<temporalio_protos::temporal::api::common::v1::WorkerVersionStamp> {
    (!build_id.is_empty()).then(|| {
        temporalio_protos::temporal::api::common::v1::WorkerVersionStamp {
            build_id: build_id.to_string(),
            use_versioning: false,
        }
    })
}

/// The build id a workflow-task completion reports.
pub fn build_id_of(
    request: &temporalio_protos::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest,
) -> String {
    request
        .worker_version_stamp
        .as_ref()
        .map(|v| v.build_id.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::temporal::api::history::v1::{
        ActivityTaskCompletedEventAttributes, WorkflowExecutionSignaledEventAttributes,
    };

    fn event(attributes: Attributes) -> HistoryEvent {
        HistoryEvent {
            event_type: event_type_of(&attributes) as i32,
            attributes: Some(attributes),
            ..Default::default()
        }
    }

    #[test]
    fn activity_closing_events_move_behind_signals() {
        let completed = event(Attributes::ActivityTaskCompletedEventAttributes(
            ActivityTaskCompletedEventAttributes::default(),
        ));
        let signaled = event(Attributes::WorkflowExecutionSignaledEventAttributes(
            WorkflowExecutionSignaledEventAttributes::default(),
        ));
        let order: Vec<i32> = reorder_buffer(vec![completed, signaled])
            .iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            order,
            vec![
                EventType::WorkflowExecutionSignaled as i32,
                EventType::ActivityTaskCompleted as i32
            ]
        );
    }

    #[test]
    fn command_events_are_never_buffered() {
        assert!(!is_bufferable(EventType::TimerStarted));
        assert!(is_bufferable(EventType::TimerFired));
        assert!(is_bufferable(EventType::WorkflowExecutionSignaled));
        assert!(!is_bufferable(EventType::WorkflowTaskCompleted));
    }
}
