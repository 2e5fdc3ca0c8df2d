//! User-timer transitions: started → fired / canceled.

use temporalio_protos::temporal::api::{
    command::v1::StartTimerCommandAttributes,
    enums::v1::{EventType, WorkflowTaskFailedCause},
    history::v1::{
        TimerCanceledEventAttributes, TimerFiredEventAttributes, TimerStartedEventAttributes,
        history_event::Attributes,
    },
};

use crate::Result;
use crate::commands::CommandError;
use crate::state::{TaskInfo, TaskKind};
use crate::time::{duration_ms, validate_and_cap};
use crate::workflow::{Env, Workflow};

impl Workflow {
    /// StartTimer: TimerStarted and a timer task.
    pub(crate) fn start_timer(
        &mut self,
        mut attrs: StartTimerCommandAttributes,
        completed_event_id: i64,
        env: &Env,
    ) -> std::result::Result<(), CommandError> {
        if attrs.timer_id.is_empty() {
            return Err(CommandError::new(
                WorkflowTaskFailedCause::BadStartTimerAttributes,
                "TimerId is not set on StartTimerCommand.",
            ));
        }
        validate_and_cap(attrs.start_to_fire_timeout.as_mut()).map_err(|e| {
            CommandError::new(
                WorkflowTaskFailedCause::BadStartTimerAttributes,
                &format!(
                    "An invalid StartToFireTimeout is set on StartTimerCommand: {e}. TimerId={}",
                    attrs.timer_id
                ),
            )
        })?;
        let fire_after = duration_ms(attrs.start_to_fire_timeout.as_ref());
        if fire_after <= 0 {
            return Err(CommandError::new(
                WorkflowTaskFailedCause::BadStartTimerAttributes,
                "A valid StartToFireTimeout is not set on StartTimerCommand.",
            ));
        }
        if self.state.timers.contains_key(&attrs.timer_id) {
            return Err(CommandError::new(
                WorkflowTaskFailedCause::StartTimerDuplicateId,
                &format!("Timer ID {} already exists.", attrs.timer_id),
            ));
        }
        let timer_id = attrs.timer_id.clone();
        let id = self.append(
            env.now_ms,
            Attributes::TimerStartedEventAttributes(TimerStartedEventAttributes {
                timer_id: attrs.timer_id,
                start_to_fire_timeout: attrs.start_to_fire_timeout,
                workflow_task_completed_event_id: completed_event_id,
            }),
        );
        let expiry = env.now_ms.saturating_add(fire_after);
        self.push_timer(TaskKind::UserTimer, expiry, |t| {
            t.timer_id = timer_id;
            t.scheduled_event_id = id;
        });
        Ok(())
    }

    /// A user-timer task fired: TimerFired and a workflow task.
    pub fn fire_timer(&mut self, task: &TaskInfo, env: &Env) -> Result<()> {
        if !self.is_open() {
            return Ok(());
        }
        match self.state.timers.get(&task.timer_id) {
            Some(t) if t.started_event_id == task.scheduled_event_id => {}
            _ => return Ok(()),
        }
        self.append(
            env.now_ms,
            Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes {
                timer_id: task.timer_id.clone(),
                started_event_id: task.scheduled_event_id,
            }),
        );
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// CancelTimer: TimerCanceled. A fire of the same timer still waiting in the buffer is
    /// dropped, since the workflow never saw it.
    pub(crate) fn cancel_timer(
        &mut self,
        timer_id: String,
        completed_event_id: i64,
        identity: &str,
        env: &Env,
    ) -> std::result::Result<(), CommandError> {
        let started_event_id = if let Some(timer) = self.state.timers.remove(&timer_id) {
            timer.started_event_id
        } else if let Some(pos) = self.state.buffered_events.iter().position(|e| {
            e.event_type == EventType::TimerFired as i32
                && matches!(&e.attributes, Some(Attributes::TimerFiredEventAttributes(a)) if a.timer_id == timer_id)
        }) {
            let fired = self.state.buffered_events.remove(pos);
            match fired.attributes {
                Some(Attributes::TimerFiredEventAttributes(a)) => a.started_event_id,
                _ => 0,
            }
        } else {
            return Err(CommandError::new(
                WorkflowTaskFailedCause::BadCancelTimerAttributes,
                &format!("Timer ID {timer_id} is not pending."),
            ));
        };
        self.append(
            env.now_ms,
            Attributes::TimerCanceledEventAttributes(TimerCanceledEventAttributes {
                timer_id,
                started_event_id,
                workflow_task_completed_event_id: completed_event_id,
                identity: identity.to_string(),
            }),
        );
        Ok(())
    }
}
