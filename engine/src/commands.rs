//! Completing a workflow task: the WorkflowTaskCompleted event and the commands it carries,
//! with the rules of reference §2.4 (UNHANDLED_COMMAND while events are buffered; a new task
//! when buffered events or a forced task exist).

use temporalio_protos::temporal::api::{
    command::v1::{Command, command::Attributes as Cmd},
    common::v1::WorkerVersionStamp,
    enums::v1::{WorkflowExecutionStatus, WorkflowTaskFailedCause},
    failure::v1::{Failure, ServerFailureInfo, failure::FailureInfo},
    history::v1::{
        MarkerRecordedEventAttributes, UpsertWorkflowSearchAttributesEventAttributes,
        WorkflowExecutionCanceledEventAttributes, WorkflowExecutionCompletedEventAttributes,
        WorkflowExecutionFailedEventAttributes, WorkflowPropertiesModifiedEventAttributes,
        WorkflowTaskCompletedEventAttributes, history_event::Attributes,
    },
    workflow::v1::ResetPointInfo,
    workflowservice::v1::RespondWorkflowTaskCompletedRequest,
};

use crate::state::{ActivityInfo, TaskKind};
use crate::time::{timestamp, validate_and_cap};
use crate::workflow::{Env, Workflow};
use crate::workflow_task::WorkflowTaskStart;
use crate::{Error, Result};

/// Request id Temporal gives a workflow task started in the completion that scheduled it.
pub(crate) const NEXT_TASK_REQUEST_ID: &str = "request-from-RespondWorkflowTaskCompleted";

/// A command the server refuses: the workflow task fails with `cause`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// Why the workflow task failed.
    pub cause: WorkflowTaskFailedCause,
    /// What was wrong.
    pub message: String,
    /// True when the run is also terminated (a payload over the blob-size limit).
    pub terminate: bool,
}

impl CommandError {
    /// A refusal with its cause and message.
    pub fn new(cause: WorkflowTaskFailedCause, message: &str) -> Self {
        Self {
            cause,
            message: message.to_string(),
            terminate: false,
        }
    }

    /// What the worker is told, in the WorkflowTaskFailed failure and the RPC error alike:
    /// the message after the cause in Temporal's words ("BadStartTimerAttributes: …", as
    /// Temporal's `workflowTaskFailedCause.Message`).
    pub fn failure_message(&self) -> String {
        let cause = self
            .cause
            .as_str_name()
            .trim_start_matches("WORKFLOW_TASK_FAILED_CAUSE_")
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_string() + &chars.as_str().to_ascii_lowercase()
                })
            })
            .collect::<String>();
        format!("{cause}: {}", self.message)
    }

    /// A refusal that also terminates the run.
    pub fn terminating(cause: WorkflowTaskFailedCause, message: &str) -> Self {
        Self {
            terminate: true,
            ..Self::new(cause, message)
        }
    }
}

/// What a workflow-task completion led to.
#[derive(Debug, Default)]
pub struct CompletionOutcome {
    /// The next workflow task, started at once, when the worker asked for it.
    pub new_workflow_task: Option<WorkflowTaskStart>,
    /// Activities started eagerly, to hand back in the response.
    pub eager_activities: Vec<ActivityInfo>,
    /// Set when the completion was refused and the task failed instead.
    pub rejected: Option<CommandError>,
    /// Set when a speculative task was discarded: the worker rolls its history back to this
    /// event (`RespondWorkflowTaskCompletedResponse.reset_history_event_id`).
    pub reset_history_event_id: i64,
}

fn is_closing(command: &Command) -> bool {
    matches!(
        command.attributes,
        Some(
            Cmd::CompleteWorkflowExecutionCommandAttributes(_)
                | Cmd::FailWorkflowExecutionCommandAttributes(_)
                | Cmd::CancelWorkflowExecutionCommandAttributes(_)
                | Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(_)
        )
    )
}

impl Workflow {
    /// Applies RespondWorkflowTaskCompleted to the started task (`scheduled_event_id`,
    /// `attempt` come from its token).
    pub fn complete_workflow_task(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        request: RespondWorkflowTaskCompletedRequest,
        env: &Env,
    ) -> Result<CompletionOutcome> {
        let task = self.started_workflow_task(scheduled_event_id, attempt)?;
        if let Some(outcome) = self.discard_speculative_workflow_task(&task, &request, env) {
            return Ok(outcome);
        }
        let identity = request.identity.clone();
        if !self.state.buffered_events.is_empty() && request.commands.iter().any(is_closing) {
            let err = CommandError::new(
                WorkflowTaskFailedCause::UnhandledCommand,
                "new events arrived while the workflow task was running.",
            );
            self.reject(&task, err.clone(), identity, env);
            return Ok(CompletionOutcome {
                rejected: Some(err),
                ..Default::default()
            });
        }
        let snapshot = self.clone();
        match self.apply_completion(&task, request, env) {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                *self = snapshot;
                if task.attempt > 1 && err.cause != WorkflowTaskFailedCause::UnhandledCommand {
                    // A retry that keeps failing records nothing: the task times out and is
                    // tried again (as Temporal does).
                    return Err(Error::InvalidArgument(err.message));
                }
                if err.terminate {
                    // The oversized payload ends the run (Temporal's terminateWorkflow): the
                    // task fails without a successor and the run is terminated.
                    self.append_workflow_task_failed(
                        &task,
                        err.cause,
                        Some(server_failure(&err)),
                        identity,
                        env,
                    );
                    self.state.workflow_task = None;
                    self.terminate(
                        err.message.clone(),
                        None,
                        crate::workflow_task::HISTORY_SERVICE_IDENTITY.into(),
                        env,
                    )?;
                } else {
                    self.reject(&task, err.clone(), identity, env);
                }
                Ok(CompletionOutcome {
                    rejected: Some(err),
                    ..Default::default()
                })
            }
        }
    }

    fn reject(
        &mut self,
        task: &crate::state::WorkflowTaskInfo,
        err: CommandError,
        identity: String,
        env: &Env,
    ) {
        let failure = server_failure(&err);
        self.record_workflow_task_failure(task, err.cause, Some(failure), identity, env);
    }

    fn apply_completion(
        &mut self,
        task: &crate::state::WorkflowTaskInfo,
        request: RespondWorkflowTaskCompletedRequest,
        env: &Env,
    ) -> std::result::Result<CompletionOutcome, CommandError> {
        self.persist_transient(task);
        let completed_id = self.append(
            env.now_ms,
            Attributes::WorkflowTaskCompletedEventAttributes(
                WorkflowTaskCompletedEventAttributes {
                    scheduled_event_id: task.scheduled_event_id,
                    started_event_id: task.started_event_id,
                    identity: request.identity.clone(),
                    binary_checksum: request.binary_checksum.clone(),
                    worker_version: request.worker_version_stamp.clone(),
                    sdk_metadata: request.sdk_metadata.clone(),
                    metering_metadata: request.metering_metadata,
                    deployment: request.deployment.clone(),
                    versioning_behavior: request.versioning_behavior,
                    ..Default::default()
                },
            ),
        );
        self.state.workflow_task = None;
        self.state.workflow_task_attempt = 1;
        self.state.last_completed_wft_started_event_id = task.started_event_id;
        self.add_reset_point(&request, completed_id, env);
        self.record_build_id(request.worker_version_stamp.as_ref());
        self.apply_sticky_attributes(&request);
        let mut new_task_needed = request.force_create_new_workflow_task;
        let mut eager = Vec::new();
        let build_id = crate::events::build_id_of(&request);
        self.updates.receive_messages(&request.messages);
        self.applying_commands = true;
        let mut applied = Ok(());
        for command in request.commands {
            if !self.is_open() {
                break;
            }
            // The command's metadata (summaries, event groups) goes on the event it makes.
            let (user_metadata, markers) = (
                command.user_metadata.clone(),
                command.event_group_markers.clone(),
            );
            let first_new = self.events.len();
            match self.apply_command(command, completed_id, &request.identity, env, &mut eager) {
                Ok(needed) => {
                    new_task_needed |= needed;
                    if let Some(event) = self.events.get_mut(first_new) {
                        if user_metadata.is_some() {
                            event.user_metadata = user_metadata;
                        }
                        if !markers.is_empty() {
                            event.event_group_markers = markers;
                        }
                    }
                }
                Err(e) => {
                    applied = Err(e);
                    break;
                }
            }
        }
        self.applying_commands = false;
        applied?;
        self.finish_update_messages(request.force_create_new_workflow_task, env)?;
        let mut outcome = CompletionOutcome::default();
        if !self.is_open() {
            return Ok(outcome);
        }
        if new_task_needed || !self.state.buffered_events.is_empty() {
            self.schedule_workflow_task(env);
        } else {
            self.schedule_workflow_task_for_updates(request.return_new_workflow_task, env);
        }
        if request.return_new_workflow_task
            && let Some(next) = self.state.workflow_task.clone()
            && next.started_event_id == 0
        {
            self.tasks.retain(|t| {
                !(t.task_kind() == TaskKind::DispatchWorkflowTask
                    && t.scheduled_event_id == next.scheduled_event_id)
            });
            let request_id = NEXT_TASK_REQUEST_ID.to_string();
            let queue = next.task_queue.clone();
            outcome.new_workflow_task = self
                .record_workflow_task_started(
                    next.scheduled_event_id,
                    next.attempt,
                    &request_id,
                    &request.identity,
                    &build_id,
                    &queue,
                    env,
                )
                .ok();
        }
        for id in eager {
            let request_id = format!("eager-activity-{id}");
            if let Ok(ai) = self.record_activity_task_started(
                id,
                1,
                &request_id,
                &request.identity,
                &build_id,
                env,
            ) {
                outcome.eager_activities.push(ai);
            }
        }
        Ok(outcome)
    }

    /// Applies one command; returns true when it needs a new workflow task.
    /// Adds the completing worker's build to the run's `BuildIds` search attribute, as Temporal
    /// does: the `unversioned` sentinel first (for a worker that does not use versioning), then
    /// every build id that completed a task (`unversioned:<build id>`).
    fn record_build_id(&mut self, stamp: Option<&WorkerVersionStamp>) {
        if let Some(started) = self.state.started.as_mut()
            && crate::search_attributes::add_build_id(&mut started.search_attributes, stamp)
        {
            self.visibility_changed = true;
        }
    }

    /// The first workflow task a worker build (or binary checksum) completes is a point the run
    /// can be reset to (describe's `auto_reset_points`); Temporal keeps the last 20.
    fn add_reset_point(
        &mut self,
        request: &RespondWorkflowTaskCompletedRequest,
        completed_id: i64,
        env: &Env,
    ) {
        const MAX_RESET_POINTS: usize = 20;
        let mut build_id = crate::events::build_id_of(request);
        if build_id.is_empty() {
            build_id = request.binary_checksum.clone();
        }
        let points = &mut self.state.auto_reset_points;
        if points.iter().any(|p| p.build_id == build_id) {
            return;
        }
        if points.len() >= MAX_RESET_POINTS {
            points.remove(0);
        }
        points.push(ResetPointInfo {
            build_id,
            run_id: self.state.run_id.clone(),
            first_workflow_task_completed_id: completed_id,
            create_time: Some(timestamp(env.now_ms)),
            resettable: self.state.children.is_empty(),
            ..Default::default()
        });
    }

    fn apply_command(
        &mut self,
        command: Command,
        completed_id: i64,
        identity: &str,
        env: &Env,
        eager: &mut Vec<i64>,
    ) -> std::result::Result<bool, CommandError> {
        let unsupported = |cause, what: &str| {
            Err(CommandError::new(
                cause,
                &format!("{what} is not supported by this server yet."),
            ))
        };
        let Some(attributes) = command.attributes else {
            return Err(CommandError::new(
                WorkflowTaskFailedCause::UnhandledCommand,
                "Command attributes are not set.",
            ));
        };
        self.check_command_limits(&attributes, env)?;
        match attributes {
            Cmd::ScheduleActivityTaskCommandAttributes(a) => {
                let wants_eager = a.request_eager_execution
                    && a.task_queue
                        .as_ref()
                        .is_none_or(|q| q.name.is_empty() || q.name == self.task_queue());
                let mut a = a;
                a.request_eager_execution = wants_eager;
                let id = self.schedule_activity(a, completed_id, env)?;
                if wants_eager {
                    eager.push(id);
                }
                Ok(false)
            }
            Cmd::RequestCancelActivityTaskCommandAttributes(a) => {
                self.request_cancel_activity(a.scheduled_event_id, completed_id, env)
            }
            Cmd::StartTimerCommandAttributes(a) => {
                self.start_timer(a, completed_id, env)?;
                Ok(false)
            }
            Cmd::CancelTimerCommandAttributes(a) => {
                self.cancel_timer(a.timer_id, completed_id, identity, env)?;
                Ok(false)
            }
            Cmd::RecordMarkerCommandAttributes(a) => {
                if a.marker_name.is_empty() {
                    return Err(CommandError::new(
                        WorkflowTaskFailedCause::BadRecordMarkerAttributes,
                        "MarkerName is not set on RecordMarkerCommand.",
                    ));
                }
                self.append(
                    env.now_ms,
                    Attributes::MarkerRecordedEventAttributes(MarkerRecordedEventAttributes {
                        marker_name: a.marker_name,
                        details: a.details,
                        workflow_task_completed_event_id: completed_id,
                        header: a.header,
                        failure: a.failure,
                    }),
                );
                Ok(false)
            }
            Cmd::UpsertWorkflowSearchAttributesCommandAttributes(a) => {
                self.append(
                    env.now_ms,
                    Attributes::UpsertWorkflowSearchAttributesEventAttributes(
                        UpsertWorkflowSearchAttributesEventAttributes {
                            workflow_task_completed_event_id: completed_id,
                            search_attributes: a.search_attributes,
                        },
                    ),
                );
                Ok(false)
            }
            Cmd::ModifyWorkflowPropertiesCommandAttributes(a) => {
                self.append(
                    env.now_ms,
                    Attributes::WorkflowPropertiesModifiedEventAttributes(
                        WorkflowPropertiesModifiedEventAttributes {
                            workflow_task_completed_event_id: completed_id,
                            upserted_memo: a.upserted_memo,
                        },
                    ),
                );
                Ok(false)
            }
            Cmd::CompleteWorkflowExecutionCommandAttributes(a) => {
                let new_execution_run_id = self
                    .continue_cron(a.result.clone(), None, env)
                    .map_err(|e| {
                        CommandError::new(
                            WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes,
                            &e.to_string(),
                        )
                    })?;
                self.close(
                    env,
                    WorkflowExecutionStatus::Completed,
                    Attributes::WorkflowExecutionCompletedEventAttributes(
                        WorkflowExecutionCompletedEventAttributes {
                            result: a.result,
                            workflow_task_completed_event_id: completed_id,
                            new_execution_run_id,
                        },
                    ),
                );
                Ok(false)
            }
            Cmd::FailWorkflowExecutionCommandAttributes(a) => {
                let bad = |e: crate::Error| {
                    CommandError::new(
                        WorkflowTaskFailedCause::BadFailWorkflowExecutionAttributes,
                        &e.to_string(),
                    )
                };
                let (retry_state, mut new_execution_run_id) = self
                    .retry_if_allowed(a.failure.as_ref(), env)
                    .map_err(bad)?;
                if new_execution_run_id.is_empty() {
                    new_execution_run_id = self
                        .continue_cron(None, a.failure.clone(), env)
                        .map_err(bad)?;
                }
                self.close(
                    env,
                    WorkflowExecutionStatus::Failed,
                    Attributes::WorkflowExecutionFailedEventAttributes(
                        WorkflowExecutionFailedEventAttributes {
                            failure: a.failure,
                            retry_state: retry_state as i32,
                            workflow_task_completed_event_id: completed_id,
                            new_execution_run_id,
                        },
                    ),
                );
                Ok(false)
            }
            Cmd::CancelWorkflowExecutionCommandAttributes(a) => {
                self.close(
                    env,
                    WorkflowExecutionStatus::Canceled,
                    Attributes::WorkflowExecutionCanceledEventAttributes(
                        WorkflowExecutionCanceledEventAttributes {
                            workflow_task_completed_event_id: completed_id,
                            details: a.details,
                        },
                    ),
                );
                Ok(false)
            }
            Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(a) => {
                self.continue_as_new(a, completed_id, env).map_err(|e| {
                    CommandError::new(
                        WorkflowTaskFailedCause::BadContinueAsNewAttributes,
                        &e.to_string(),
                    )
                })?;
                Ok(false)
            }
            Cmd::StartChildWorkflowExecutionCommandAttributes(a) => {
                self.start_child(a, completed_id, env)?;
                Ok(false)
            }
            Cmd::SignalExternalWorkflowExecutionCommandAttributes(a) => {
                self.signal_external(a, completed_id, env)?;
                Ok(false)
            }
            Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(a) => {
                self.cancel_external(a, completed_id, env)?;
                Ok(false)
            }
            Cmd::ProtocolMessageCommandAttributes(a) => {
                self.apply_protocol_message_command(&a.message_id, env)?;
                Ok(false)
            }
            Cmd::ScheduleNexusOperationCommandAttributes(_)
            | Cmd::RequestCancelNexusOperationCommandAttributes(_) => {
                unsupported(WorkflowTaskFailedCause::FeatureDisabled, "Nexus")
            }
        }
    }
}

impl Workflow {
    /// Pending-count limits fail the workflow task; payloads over the blob-size limit also
    /// terminate the run (reference §2.4 rule 12).
    fn check_command_limits(
        &self,
        command: &Cmd,
        env: &Env,
    ) -> std::result::Result<(), CommandError> {
        let limits = &env.limits;
        let pending = |count: usize, limit: i64, cause: WorkflowTaskFailedCause, what: &str| {
            if count as i64 >= limit {
                Err(CommandError::new(
                    cause,
                    &format!("{what} limit exceeded: {count} pending, limit {limit}."),
                ))
            } else {
                Ok(())
            }
        };
        let blob = |size: usize, what: &str, cause: WorkflowTaskFailedCause| {
            if size as i64 > limits.blob_size_error {
                Err(CommandError::terminating(
                    cause,
                    &format!("{what} exceeds size limit."),
                ))
            } else {
                Ok(())
            }
        };
        use prost::Message;
        match command {
            Cmd::ScheduleActivityTaskCommandAttributes(a) => {
                pending(
                    self.state.activities.len(),
                    limits.pending_activities,
                    WorkflowTaskFailedCause::PendingActivitiesLimitExceeded,
                    "PendingActivities",
                )?;
                blob(
                    a.input.as_ref().map_or(0, Message::encoded_len),
                    "ScheduleActivityTaskCommandAttributes.Input",
                    WorkflowTaskFailedCause::BadScheduleActivityAttributes,
                )
            }
            Cmd::StartChildWorkflowExecutionCommandAttributes(a) => {
                pending(
                    self.state.children.len(),
                    limits.pending_children,
                    WorkflowTaskFailedCause::PendingChildWorkflowsLimitExceeded,
                    "PendingChildWorkflows",
                )?;
                blob(
                    a.input.as_ref().map_or(0, Message::encoded_len),
                    "StartChildWorkflowExecutionCommandAttributes.Input",
                    WorkflowTaskFailedCause::BadStartChildExecutionAttributes,
                )
            }
            Cmd::SignalExternalWorkflowExecutionCommandAttributes(a) => {
                pending(
                    self.state.pending_signals.len(),
                    limits.pending_signals,
                    WorkflowTaskFailedCause::PendingSignalsLimitExceeded,
                    "PendingSignals",
                )?;
                blob(
                    a.input.as_ref().map_or(0, Message::encoded_len),
                    "SignalExternalWorkflowExecutionCommandAttributes.Input",
                    WorkflowTaskFailedCause::BadSignalInputSize,
                )
            }
            Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(_) => pending(
                self.state.pending_cancels.len(),
                limits.pending_cancel_requests,
                WorkflowTaskFailedCause::PendingRequestCancelLimitExceeded,
                "PendingRequestCancel",
            ),
            Cmd::CompleteWorkflowExecutionCommandAttributes(a) => blob(
                a.result.as_ref().map_or(0, Message::encoded_len),
                "CompleteWorkflowExecutionCommandAttributes.Result",
                WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes,
            ),
            Cmd::FailWorkflowExecutionCommandAttributes(a) => blob(
                a.failure.as_ref().map_or(0, Message::encoded_len),
                "FailWorkflowExecutionCommandAttributes.Failure",
                WorkflowTaskFailedCause::BadFailWorkflowExecutionAttributes,
            ),
            Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(a) => blob(
                a.input.as_ref().map_or(0, Message::encoded_len),
                "ContinueAsNewWorkflowExecutionCommandAttributes.Input",
                WorkflowTaskFailedCause::BadContinueAsNewAttributes,
            ),
            Cmd::UpsertWorkflowSearchAttributesCommandAttributes(a) => {
                let bad =
                    |m: String| CommandError::new(WorkflowTaskFailedCause::BadSearchAttributes, &m);
                if let Some(custom) = env.search_attributes.as_deref() {
                    crate::search_attributes::check_names(
                        a.search_attributes.as_ref(),
                        custom,
                        &self.state.namespace_name,
                    )
                    .map_err(bad)?;
                }
                limits
                    .check_search_attributes(a.search_attributes.as_ref())
                    .map_err(bad)
            }
            Cmd::ModifyWorkflowPropertiesCommandAttributes(a) => {
                let size = a.upserted_memo.as_ref().map_or(0, Message::encoded_len);
                if size as i64 > limits.memo_size_error {
                    return Err(CommandError::terminating(
                        WorkflowTaskFailedCause::BadModifyWorkflowPropertiesAttributes,
                        "ModifyWorkflowPropertiesCommandAttributes.UpsertedMemo exceeds size limit.",
                    ));
                }
                Ok(())
            }
            Cmd::RecordMarkerCommandAttributes(a) => blob(
                a.details.values().map(Message::encoded_len).sum(),
                "RecordMarkerCommandAttributes.Details",
                WorkflowTaskFailedCause::BadRecordMarkerAttributes,
            ),
            _ => Ok(()),
        }
    }

    /// Terminates a run whose history passed the count or size error limit.
    pub fn enforce_history_limits(&mut self, env: &Env) -> Result<()> {
        if !self.is_open() {
            return Ok(());
        }
        let count = self.state.next_event_id - 1;
        let reason = if count > env.limits.history_count_error {
            "Workflow history count exceeds limit."
        } else if self.state.history_size_bytes > env.limits.history_size_error {
            "Workflow history size exceeds limit."
        } else {
            return Ok(());
        };
        self.terminate(
            reason.into(),
            None,
            crate::workflow_task::HISTORY_SERVICE_IDENTITY.into(),
            env,
        )
    }
}

/// The failure Temporal records on a workflow task the server refused: the message is
/// `"{Cause}: {message}"`, the cause as Temporal spells it (`BadSearchAttributes`).
/// Checks the durations and the workflow retry policy a command carries for a run it starts
/// (a child, the next run of a continue-as-new), capping the durations in place. The messages
/// are Temporal's (`service/history/api/command_attr_validator.go`): "Invalid {field} on
/// {command}: {why}. {context}".
pub(crate) fn check_run_durations(
    command: &str,
    context: &str,
    durations: [(&str, &mut Option<prost_wkt_types::Duration>); 3],
    retry_policy: Option<&mut temporalio_protos::temporal::api::common::v1::RetryPolicy>,
) -> std::result::Result<(), String> {
    for (field, d) in durations {
        validate_and_cap(d.as_mut())
            .map_err(|e| format!("Invalid {field} on {command}: {e}. {context}"))?;
    }
    if let Some(policy) = retry_policy {
        crate::retry::validate(policy)
            .map_err(|e| format!("invalid WorkflowRetryPolicy on {command}: {e}. {context}"))?;
    }
    Ok(())
}

fn server_failure(err: &CommandError) -> Failure {
    Failure {
        message: err.failure_message(),
        failure_info: Some(FailureInfo::ServerFailureInfo(ServerFailureInfo {
            non_retryable: false,
        })),
        ..Default::default()
    }
}
