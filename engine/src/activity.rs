//! Activity transitions: scheduled → started (not written until the activity closes) →
//! completed / failed / canceled / timed out, with server-side retries (reference §2.3).

use temporalio_protos::temporal::api::{
    command::v1::ScheduleActivityTaskCommandAttributes,
    common::v1::Payloads,
    enums::v1::{RetryState, TimeoutType, WorkflowTaskFailedCause},
    failure::v1::{Failure, TimeoutFailureInfo, failure::FailureInfo},
    history::v1::{
        ActivityTaskCancelRequestedEventAttributes, ActivityTaskCanceledEventAttributes,
        ActivityTaskCompletedEventAttributes, ActivityTaskFailedEventAttributes,
        ActivityTaskScheduledEventAttributes, ActivityTaskStartedEventAttributes,
        ActivityTaskTimedOutEventAttributes, history_event::Attributes,
    },
    taskqueue::v1::TaskQueue,
};

use crate::commands::CommandError;
use crate::retry::{self, Decision};
use crate::state::{ActivityInfo, TaskInfo, TaskKind};
use crate::time::{duration, duration_ms, validate_and_cap};
use crate::workflow::{Env, Workflow};
use crate::{Error, Result};

impl Workflow {
    /// The pending activity with this activity id.
    pub fn activity_by_id(&self, activity_id: &str) -> Option<&ActivityInfo> {
        self.state.activities.values().find(|a| {
            a.scheduled
                .as_ref()
                .is_some_and(|s| s.activity_id == activity_id)
        })
    }

    /// Validates and normalises a ScheduleActivityTask command, appends ActivityTaskScheduled
    /// and arranges dispatch (unless `eager`) and the schedule-to-start/close timers.
    pub(crate) fn schedule_activity(
        &mut self,
        mut attrs: ScheduleActivityTaskCommandAttributes,
        completed_event_id: i64,
        env: &Env,
    ) -> std::result::Result<i64, CommandError> {
        let bad = |msg: &str| {
            CommandError::new(WorkflowTaskFailedCause::BadScheduleActivityAttributes, msg)
        };
        if attrs.activity_id.is_empty() {
            return Err(bad("ActivityId is not set on ScheduleActivityTaskCommand."));
        }
        if attrs
            .activity_type
            .as_ref()
            .is_none_or(|t| t.name.is_empty())
        {
            return Err(bad(
                "ActivityType is not set on ScheduleActivityTaskCommand.",
            ));
        }
        if let Some(p) = attrs.retry_policy.as_mut() {
            retry::validate(p).map_err(|m| bad(&m))?;
        }
        // Temporal's messages (chasm/lib/activity/validator.go, validateAndNormalizeTimeouts).
        for (name, timeout) in [
            (
                "ScheduleToCloseTimeout",
                &mut attrs.schedule_to_close_timeout,
            ),
            (
                "ScheduleToStartTimeout",
                &mut attrs.schedule_to_start_timeout,
            ),
            ("StartToCloseTimeout", &mut attrs.start_to_close_timeout),
            ("HeartbeatTimeout", &mut attrs.heartbeat_timeout),
        ] {
            validate_and_cap(timeout.as_mut()).map_err(|e| bad(&format!("invalid {name}: {e}")))?;
        }
        if self.activity_by_id(&attrs.activity_id).is_some() {
            return Err(CommandError::new(
                WorkflowTaskFailedCause::ScheduleActivityDuplicateId,
                &format!("Activity ID {} already exists.", attrs.activity_id),
            ));
        }
        let run_timeout = duration_ms(self.started_attributes().workflow_run_timeout.as_ref());
        let mut s2c = duration_ms(attrs.schedule_to_close_timeout.as_ref());
        let mut s2s = duration_ms(attrs.schedule_to_start_timeout.as_ref());
        let mut st2c = duration_ms(attrs.start_to_close_timeout.as_ref());
        let mut hb = duration_ms(attrs.heartbeat_timeout.as_ref());
        if s2c > 0 {
            if s2s == 0 || s2s > s2c {
                s2s = s2c;
            }
            if st2c == 0 || st2c > s2c {
                st2c = s2c;
            }
        } else if st2c > 0 {
            s2c = run_timeout;
            if s2s == 0 {
                s2s = run_timeout;
            }
        } else {
            return Err(bad(
                "A valid StartToClose or ScheduleToCloseTimeout is not set on ScheduleActivityTaskCommand.",
            ));
        }
        if run_timeout > 0 {
            s2c = s2c.min(run_timeout);
            s2s = s2s.min(run_timeout);
            st2c = st2c.min(run_timeout);
        }
        if hb > st2c && st2c > 0 {
            hb = st2c;
        }
        let task_queue = match attrs.task_queue {
            Some(q) if !q.name.is_empty() => TaskQueue {
                name: q.name,
                kind: q.kind,
                normal_name: String::new(),
            },
            _ => TaskQueue {
                name: self.task_queue().to_string(),
                kind: 1,
                normal_name: String::new(),
            },
        };
        let scheduled = ActivityTaskScheduledEventAttributes {
            activity_id: attrs.activity_id,
            activity_type: attrs.activity_type,
            task_queue: Some(task_queue),
            header: attrs.header,
            input: attrs.input,
            // Temporal writes every timeout, zero ones as 0s.
            schedule_to_close_timeout: Some(duration(s2c)),
            schedule_to_start_timeout: Some(duration(s2s)),
            start_to_close_timeout: Some(duration(st2c)),
            heartbeat_timeout: Some(duration(hb)),
            workflow_task_completed_event_id: completed_event_id,
            retry_policy: Some(retry::with_defaults(attrs.retry_policy)),
            use_workflow_build_id: attrs.use_workflow_build_id,
            priority: attrs.priority,
        };
        let id = self.append(
            env.now_ms,
            Attributes::ActivityTaskScheduledEventAttributes(scheduled),
        );
        if !attrs.request_eager_execution {
            self.dispatch_activity(id, env);
        }
        self.arm_schedule_to_close(id, s2c, env);
        Ok(id)
    }

    /// Arms the schedule-to-close timer of a newly scheduled activity (none for `s2c` 0).
    pub(crate) fn arm_schedule_to_close(&mut self, scheduled_event_id: i64, s2c: i64, env: &Env) {
        if s2c > 0 {
            self.push_timer(
                TaskKind::ActivityTimeout,
                env.now_ms.saturating_add(s2c),
                |t| {
                    t.scheduled_event_id = scheduled_event_id;
                    t.attempt = 1;
                    t.timeout_type = TimeoutType::ScheduleToClose as i32;
                },
            );
        }
    }

    /// Pushes the current attempt to matching and arms its schedule-to-start timer.
    pub(crate) fn dispatch_activity(&mut self, scheduled_event_id: i64, env: &Env) {
        let Some(ai) = self.state.activities.get(&scheduled_event_id) else {
            return;
        };
        let attempt = ai.attempt;
        let scheduled = ai.scheduled.clone().unwrap_or_default();
        let queue = scheduled.task_queue.map(|q| q.name).unwrap_or_default();
        let s2s = duration_ms(scheduled.schedule_to_start_timeout.as_ref());
        self.push_transfer(TaskKind::DispatchActivityTask, |t| {
            t.scheduled_event_id = scheduled_event_id;
            t.attempt = attempt;
            t.task_queue = queue;
            t.schedule_to_start_ms = s2s;
        });
        if s2s > 0 {
            self.push_timer(
                TaskKind::ActivityTimeout,
                env.now_ms.saturating_add(s2s),
                |t| {
                    t.scheduled_event_id = scheduled_event_id;
                    t.attempt = attempt;
                    t.timeout_type = TimeoutType::ScheduleToStart as i32;
                },
            );
        }
    }

    fn pending_activity(&self, scheduled_event_id: i64, attempt: i32) -> Result<ActivityInfo> {
        self.ensure_open()
            .map_err(|_| Error::NotFound("workflow execution already completed".into()))?;
        match self.state.activities.get(&scheduled_event_id) {
            Some(ai) if attempt == 0 || ai.attempt == attempt => Ok(ai.clone()),
            _ => Err(Error::NotFound("Activity task not found.".into())),
        }
    }

    fn started_activity(&self, scheduled_event_id: i64, attempt: i32) -> Result<ActivityInfo> {
        let ai = self.pending_activity(scheduled_event_id, attempt)?;
        if ai.started_time_ms == 0 {
            return Err(Error::NotFound("Activity task not found.".into()));
        }
        Ok(ai)
    }

    /// Hands the activity's current attempt to a worker. Writes no event (the started event is
    /// written when the activity closes). Idempotent for the same poll request id.
    pub fn record_activity_task_started(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        request_id: &str,
        identity: &str,
        build_id: &str,
        env: &Env,
    ) -> Result<ActivityInfo> {
        let mut ai = self.pending_activity(scheduled_event_id, attempt)?;
        if ai.started_time_ms != 0 {
            if ai.request_id == request_id {
                return Ok(ai);
            }
            return Err(Error::TaskAlreadyStarted);
        }
        ai.started_time_ms = env.now_ms;
        ai.last_heartbeat_time_ms = env.now_ms;
        ai.request_id = request_id.to_string();
        ai.started_identity = identity.to_string();
        ai.started_build_id = build_id.to_string();
        let scheduled = ai.scheduled.clone().unwrap_or_default();
        let st2c = duration_ms(scheduled.start_to_close_timeout.as_ref());
        let hb = duration_ms(scheduled.heartbeat_timeout.as_ref());
        let attempt = ai.attempt;
        self.state.activities.insert(scheduled_event_id, ai.clone());
        for (timeout, kind) in [
            (st2c, TimeoutType::StartToClose),
            (hb, TimeoutType::Heartbeat),
        ] {
            if timeout > 0 {
                self.push_timer(
                    TaskKind::ActivityTimeout,
                    env.now_ms.saturating_add(timeout),
                    |t| {
                        t.scheduled_event_id = scheduled_event_id;
                        t.attempt = attempt;
                        t.timeout_type = kind as i32;
                    },
                );
            }
        }
        Ok(ai)
    }

    /// Appends the lazily written ActivityTaskStarted of a started activity; returns its id
    /// (0 when the activity never started).
    fn append_activity_started(&mut self, ai: &ActivityInfo) -> i64 {
        if ai.started_time_ms == 0 {
            return 0;
        }
        self.append(
            ai.started_time_ms,
            Attributes::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
                scheduled_event_id: ai.scheduled_event_id,
                identity: ai.started_identity.clone(),
                request_id: ai.request_id.clone(),
                attempt: ai.attempt,
                last_failure: ai.last_failure.clone(),
                worker_version: crate::events::worker_stamp(&ai.started_build_id),
                ..Default::default()
            }),
        )
    }

    fn close_activity(
        &mut self,
        ai: &ActivityInfo,
        env: &Env,
        close: impl FnOnce(i64) -> Attributes,
    ) {
        let started_id = self.append_activity_started(ai);
        self.append(env.now_ms, close(started_id));
        self.schedule_workflow_task(env);
    }

    /// The worker completed the activity.
    pub fn complete_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        result: Option<Payloads>,
        identity: String,
        env: &Env,
    ) -> Result<()> {
        let ai = self.started_activity(scheduled_event_id, attempt)?;
        self.close_activity(&ai, env, |started_event_id| {
            Attributes::ActivityTaskCompletedEventAttributes(ActivityTaskCompletedEventAttributes {
                result,
                scheduled_event_id,
                started_event_id,
                identity,
                ..Default::default()
            })
        });
        Ok(())
    }

    /// The worker failed the attempt: retried per the retry policy, or ActivityTaskFailed.
    pub fn fail_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        failure: Option<Failure>,
        last_heartbeat_details: Option<Payloads>,
        identity: String,
        env: &Env,
    ) -> Result<()> {
        let mut ai = self.started_activity(scheduled_event_id, attempt)?;
        if last_heartbeat_details.is_some() {
            ai.heartbeat_details = last_heartbeat_details;
        }
        match self.retry_decision(&ai, failure.as_ref(), env) {
            Decision::Retry(backoff) => {
                self.retry_activity(ai, failure, identity, backoff, env);
            }
            Decision::Stop(retry_state) => {
                self.close_activity(&ai, env, |started_event_id| {
                    Attributes::ActivityTaskFailedEventAttributes(
                        ActivityTaskFailedEventAttributes {
                            failure,
                            scheduled_event_id,
                            started_event_id,
                            identity,
                            retry_state: retry_state as i32,
                            ..Default::default()
                        },
                    )
                });
            }
        }
        Ok(())
    }

    fn retry_decision(&self, ai: &ActivityInfo, failure: Option<&Failure>, env: &Env) -> Decision {
        if ai.cancel_requested {
            return Decision::Stop(RetryState::CancelRequested);
        }
        let scheduled = ai.scheduled.clone().unwrap_or_default();
        let policy = retry::with_defaults(scheduled.retry_policy);
        let s2c = duration_ms(scheduled.schedule_to_close_timeout.as_ref());
        let expiration = if s2c > 0 {
            ai.first_scheduled_time_ms.saturating_add(s2c)
        } else {
            0
        };
        retry::next(&policy, ai.attempt, failure, env.now_ms, expiration)
    }

    fn retry_activity(
        &mut self,
        mut ai: ActivityInfo,
        failure: Option<Failure>,
        identity: String,
        backoff_ms: i64,
        env: &Env,
    ) {
        ai.attempt += 1;
        ai.started_time_ms = 0;
        ai.request_id.clear();
        ai.started_identity.clear();
        ai.last_failure = failure;
        ai.last_worker_identity = identity;
        ai.scheduled_time_ms = env.now_ms.saturating_add(backoff_ms);
        let (id, attempt) = (ai.scheduled_event_id, ai.attempt);
        self.state.activities.insert(id, ai);
        self.push_timer(
            TaskKind::ActivityRetry,
            env.now_ms.saturating_add(backoff_ms),
            |t| {
                t.scheduled_event_id = id;
                t.attempt = attempt;
            },
        );
    }

    /// A retry backoff ended: dispatch the new attempt.
    pub fn activity_retry_due(&mut self, timer: &TaskInfo, env: &Env) -> Result<()> {
        if !self.is_open() {
            return Ok(());
        }
        match self.state.activities.get(&timer.scheduled_event_id) {
            Some(ai) if ai.attempt == timer.attempt && ai.started_time_ms == 0 => {
                self.dispatch_activity(timer.scheduled_event_id, env);
            }
            _ => {}
        }
        Ok(())
    }

    /// The worker acknowledged cancellation.
    pub fn cancel_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        details: Option<Payloads>,
        identity: String,
        env: &Env,
    ) -> Result<()> {
        let ai = self.started_activity(scheduled_event_id, attempt)?;
        let latest = ai.cancel_requested_event_id;
        self.close_activity(&ai, env, |started_event_id| {
            Attributes::ActivityTaskCanceledEventAttributes(ActivityTaskCanceledEventAttributes {
                details,
                latest_cancel_requested_event_id: latest,
                scheduled_event_id,
                started_event_id,
                identity,
                ..Default::default()
            })
        });
        Ok(())
    }

    /// Records a heartbeat; returns whether cancellation was requested.
    pub fn heartbeat_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        details: Option<Payloads>,
        env: &Env,
    ) -> Result<bool> {
        let mut ai = self.started_activity(scheduled_event_id, attempt)?;
        ai.heartbeat_details = details;
        ai.last_heartbeat_time_ms = env.now_ms;
        let cancel = ai.cancel_requested;
        self.state.activities.insert(scheduled_event_id, ai);
        Ok(cancel)
    }

    /// RequestCancelActivityTask: a not-yet-started activity is canceled at once (and a new
    /// workflow task is needed); a started one learns of it from its next heartbeat; for one
    /// whose closing events wait in the buffer only the request is recorded. A second request
    /// for the same activity is refused.
    pub(crate) fn request_cancel_activity(
        &mut self,
        scheduled_event_id: i64,
        completed_event_id: i64,
        env: &Env,
    ) -> std::result::Result<bool, CommandError> {
        let bad = |msg: String| {
            CommandError::new(
                WorkflowTaskFailedCause::BadRequestCancelActivityAttributes,
                &msg,
            )
        };
        let pending = self.state.activities.get(&scheduled_event_id).cloned();
        match &pending {
            // Its closing events may wait in the buffer (it closed while the task ran): the
            // request is still recorded, as Temporal's HasActivityFinishEvent allows.
            None if !self.activity_close_buffered(scheduled_event_id) => {
                return Err(bad(format!(
                    "Activity with scheduled event id {scheduled_event_id} is not pending."
                )));
            }
            Some(ai) if ai.cancel_requested => {
                return Err(bad(format!(
                    "Cancellation of activity with scheduled event id {scheduled_event_id} was already requested."
                )));
            }
            _ => {}
        }
        let requested = self.append(
            env.now_ms,
            Attributes::ActivityTaskCancelRequestedEventAttributes(
                ActivityTaskCancelRequestedEventAttributes {
                    scheduled_event_id,
                    workflow_task_completed_event_id: completed_event_id,
                },
            ),
        );
        let Some(ai) = pending else {
            return Ok(false);
        };
        // The applier recorded the request on the activity (and, below, its cancellation).
        if ai.started_time_ms == 0 {
            self.append(
                env.now_ms,
                Attributes::ActivityTaskCanceledEventAttributes(
                    ActivityTaskCanceledEventAttributes {
                        latest_cancel_requested_event_id: requested,
                        scheduled_event_id,
                        started_event_id: 0,
                        ..Default::default()
                    },
                ),
            );
            return Ok(true);
        }
        Ok(false)
    }

    /// True when a closing event of this activity waits in the buffer.
    fn activity_close_buffered(&self, scheduled_event_id: i64) -> bool {
        self.state
            .buffered_events
            .iter()
            .any(|e| match &e.attributes {
                Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => {
                    a.scheduled_event_id == scheduled_event_id
                }
                Some(Attributes::ActivityTaskFailedEventAttributes(a)) => {
                    a.scheduled_event_id == scheduled_event_id
                }
                Some(Attributes::ActivityTaskTimedOutEventAttributes(a)) => {
                    a.scheduled_event_id == scheduled_event_id
                }
                Some(Attributes::ActivityTaskCanceledEventAttributes(a)) => {
                    a.scheduled_event_id == scheduled_event_id
                }
                _ => false,
            })
    }

    /// An activity timeout timer fired.
    pub fn activity_timed_out(&mut self, timer: &TaskInfo, env: &Env) -> Result<()> {
        if !self.is_open() {
            return Ok(());
        }
        let Some(ai) = self
            .state
            .activities
            .get(&timer.scheduled_event_id)
            .cloned()
        else {
            return Ok(());
        };
        let timeout_type = TimeoutType::try_from(timer.timeout_type).unwrap_or_default();
        let scheduled = ai.scheduled.clone().unwrap_or_default();
        let started = ai.started_time_ms != 0;
        let same_attempt = ai.attempt == timer.attempt;
        match timeout_type {
            TimeoutType::ScheduleToClose => {}
            TimeoutType::ScheduleToStart if same_attempt && !started => {}
            TimeoutType::StartToClose if same_attempt && started => {}
            TimeoutType::Heartbeat if same_attempt && started => {
                let hb = duration_ms(scheduled.heartbeat_timeout.as_ref());
                let deadline = ai.last_heartbeat_time_ms.saturating_add(hb);
                if deadline > env.now_ms {
                    let (id, attempt) = (ai.scheduled_event_id, ai.attempt);
                    self.push_timer(TaskKind::ActivityTimeout, deadline, |t| {
                        t.scheduled_event_id = id;
                        t.attempt = attempt;
                        t.timeout_type = TimeoutType::Heartbeat as i32;
                    });
                    return Ok(());
                }
            }
            _ => return Ok(()),
        }
        let failure = timeout_failure(timeout_type, &ai);
        let retryable = matches!(
            timeout_type,
            TimeoutType::StartToClose | TimeoutType::Heartbeat
        );
        let decision = if retryable {
            self.retry_decision(&ai, Some(&failure), env)
        } else {
            Decision::Stop(RetryState::Timeout)
        };
        match decision {
            Decision::Retry(backoff) => {
                let identity = ai.started_identity.clone();
                self.retry_activity(ai, Some(failure), identity, backoff, env);
            }
            Decision::Stop(state) => {
                let retry_state = match state {
                    RetryState::MaximumAttemptsReached | RetryState::CancelRequested => state,
                    _ => RetryState::Timeout,
                };
                let id = ai.scheduled_event_id;
                // The started event the server writes for a timed-out attempt carries no
                // worker stamp (checked against the reference).
                let mut ai = ai;
                ai.started_build_id.clear();
                self.close_activity(&ai, env, |started_event_id| {
                    Attributes::ActivityTaskTimedOutEventAttributes(
                        ActivityTaskTimedOutEventAttributes {
                            failure: Some(failure),
                            scheduled_event_id: id,
                            started_event_id,
                            retry_state: retry_state as i32,
                        },
                    )
                });
            }
        }
        Ok(())
    }
}

fn timeout_failure(timeout_type: TimeoutType, ai: &ActivityInfo) -> Failure {
    let name = match timeout_type {
        TimeoutType::StartToClose => "StartToClose",
        TimeoutType::ScheduleToStart => "ScheduleToStart",
        TimeoutType::ScheduleToClose => "ScheduleToClose",
        TimeoutType::Heartbeat => "Heartbeat",
        TimeoutType::Unspecified => "Unspecified",
    };
    Failure {
        message: format!("activity {name} timeout"),
        source: "Server".into(),
        cause: ai.last_failure.clone().map(Box::new),
        failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: timeout_type as i32,
            last_heartbeat_details: ai.heartbeat_details.clone(),
        })),
        ..Default::default()
    }
}
