//! Child workflows and commands aimed at other workflows: StartChildWorkflowExecution,
//! SignalExternalWorkflowExecution and RequestCancelExternalWorkflowExecution, each initiated
//! by a command and resolved by a later event when the other workflow's shard has answered
//! (reference §2.3 "Child workflows" and "Signals"). Parent-close policies apply when a parent
//! closes.

use prost::Message;
use temporalio_protos::temporal::api::{
    command::v1::{
        RequestCancelExternalWorkflowExecutionCommandAttributes,
        SignalExternalWorkflowExecutionCommandAttributes,
        StartChildWorkflowExecutionCommandAttributes,
    },
    common::v1::{WorkflowExecution, WorkflowType},
    enums::v1::{
        CancelExternalWorkflowExecutionFailedCause, ParentClosePolicy,
        SignalExternalWorkflowExecutionFailedCause, StartChildWorkflowExecutionFailedCause,
        WorkflowTaskFailedCause,
    },
    history::v1::{
        ChildWorkflowExecutionCanceledEventAttributes,
        ChildWorkflowExecutionCompletedEventAttributes,
        ChildWorkflowExecutionFailedEventAttributes, ChildWorkflowExecutionStartedEventAttributes,
        ChildWorkflowExecutionTerminatedEventAttributes,
        ChildWorkflowExecutionTimedOutEventAttributes,
        ExternalWorkflowExecutionCancelRequestedEventAttributes,
        ExternalWorkflowExecutionSignaledEventAttributes, HistoryEvent,
        RequestCancelExternalWorkflowExecutionFailedEventAttributes,
        RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
        SignalExternalWorkflowExecutionFailedEventAttributes,
        SignalExternalWorkflowExecutionInitiatedEventAttributes,
        StartChildWorkflowExecutionFailedEventAttributes,
        StartChildWorkflowExecutionInitiatedEventAttributes, history_event::Attributes,
    },
    taskqueue::v1::TaskQueue,
};

use crate::Result;
use crate::commands::CommandError;
use crate::state::{ChildInfo, ExternalInfo, TaskKind};
use crate::time::{duration, duration_ms};
use crate::workflow::{Env, Workflow};

impl Workflow {
    /// The namespace a command names: its own when empty. Other namespaces are refused.
    fn command_namespace(
        &self,
        requested: &str,
        cause: WorkflowTaskFailedCause,
    ) -> std::result::Result<String, CommandError> {
        if requested.is_empty() || requested == self.state.namespace_name {
            Ok(self.state.namespace_name.clone())
        } else {
            Err(CommandError::new(
                cause,
                &format!(
                    "Namespace {requested}: commands aimed at another namespace are not supported."
                ),
            ))
        }
    }

    /// StartChildWorkflowExecution: StartChildWorkflowExecutionInitiated and a task that starts
    /// the child on its shard.
    pub(crate) fn start_child(
        &mut self,
        mut attrs: StartChildWorkflowExecutionCommandAttributes,
        completed_event_id: i64,
        env: &Env,
    ) -> std::result::Result<(), CommandError> {
        let bad = |m: &str| {
            CommandError::new(WorkflowTaskFailedCause::BadStartChildExecutionAttributes, m)
        };
        let namespace = self.command_namespace(
            &attrs.namespace,
            WorkflowTaskFailedCause::BadStartChildExecutionAttributes,
        )?;
        if attrs.workflow_id.is_empty() {
            return Err(bad(
                "WorkflowId is not set on StartChildWorkflowExecutionCommand.",
            ));
        }
        if attrs
            .workflow_type
            .as_ref()
            .is_none_or(|t| t.name.is_empty())
        {
            return Err(bad(
                "WorkflowType is not set on StartChildWorkflowExecutionCommand.",
            ));
        }
        let context = format!(
            "WorkflowId={} WorkflowType={} Namespace={}",
            attrs.workflow_id,
            attrs.workflow_type.as_ref().map_or("", |t| t.name.as_str()),
            attrs.namespace,
        );
        crate::commands::check_run_durations(
            "StartChildWorkflowExecutionCommand",
            &context,
            [
                (
                    "WorkflowExecutionTimeout",
                    &mut attrs.workflow_execution_timeout,
                ),
                ("WorkflowRunTimeout", &mut attrs.workflow_run_timeout),
                ("WorkflowTaskTimeout", &mut attrs.workflow_task_timeout),
            ],
            attrs.retry_policy.as_mut(),
        )
        .map_err(|m| bad(&m))?;
        let task_queue = match attrs.task_queue {
            Some(q) if !q.name.is_empty() => q,
            _ => TaskQueue {
                name: self.task_queue().to_string(),
                kind: 1,
                normal_name: String::new(),
            },
        };
        let parent_close_policy = match attrs.parent_close_policy {
            0 => ParentClosePolicy::Terminate as i32,
            p => p,
        };
        let initiated = StartChildWorkflowExecutionInitiatedEventAttributes {
            namespace: namespace.clone(),
            namespace_id: self.state.namespace_id.clone(),
            workflow_id: attrs.workflow_id.clone(),
            workflow_type: attrs.workflow_type.clone(),
            task_queue: Some(task_queue),
            input: attrs.input,
            workflow_execution_timeout: attrs.workflow_execution_timeout,
            // As Temporal: an unset run timeout is written as 0s and the task timeout defaults.
            workflow_run_timeout: attrs.workflow_run_timeout.or(Some(duration(0))),
            workflow_task_timeout: attrs
                .workflow_task_timeout
                .filter(|t| duration_ms(Some(t)) > 0)
                .or(Some(duration(
                    crate::workflow::DEFAULT_WORKFLOW_TASK_TIMEOUT_MS,
                ))),
            parent_close_policy,
            control: attrs.control,
            workflow_task_completed_event_id: completed_event_id,
            workflow_id_reuse_policy: attrs.workflow_id_reuse_policy,
            retry_policy: attrs.retry_policy,
            cron_schedule: attrs.cron_schedule,
            header: attrs.header,
            // An empty memo is no memo.
            memo: attrs.memo.filter(|m| !m.fields.is_empty()),
            search_attributes: attrs.search_attributes,
            inherit_build_id: attrs.inherit_build_id,
            priority: attrs.priority,
            ..Default::default()
        };
        let payload = initiated.encode_to_vec();
        let id = self.append(
            env.now_ms,
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(initiated),
        );
        let namespace_id = self.state.namespace_id.clone();
        let root = self.root_execution();
        self.push_transfer(TaskKind::StartChild, |t| {
            t.scheduled_event_id = id;
            t.payload = payload;
            t.target_namespace_id = namespace_id;
            t.target_workflow_id = attrs.workflow_id;
            t.root_execution = Some(root);
        });
        Ok(())
    }

    /// The root of this run's tree of workflows: its root's, or itself for a top-level run.
    pub(crate) fn root_execution(&self) -> WorkflowExecution {
        self.started_attributes()
            .root_workflow_execution
            .clone()
            .unwrap_or_else(|| WorkflowExecution {
                workflow_id: self.state.workflow_id.clone(),
                run_id: self.state.run_id.clone(),
            })
    }

    fn child_execution(child: &ChildInfo) -> (WorkflowExecution, WorkflowType) {
        (
            WorkflowExecution {
                workflow_id: child.workflow_id.clone(),
                run_id: child.run_id.clone(),
            },
            WorkflowType {
                name: child.workflow_type.clone(),
            },
        )
    }

    /// The child's shard created it: ChildWorkflowExecutionStarted. Idempotent.
    pub fn child_started(
        &mut self,
        initiated_event_id: i64,
        child_run_id: &str,
        env: &Env,
    ) -> Result<()> {
        self.ensure_open()?;
        let Some(child) = self.state.children.get_mut(&initiated_event_id) else {
            return Ok(());
        };
        if !child.run_id.is_empty() {
            return Ok(());
        }
        child.run_id = child_run_id.to_string();
        let child = child.clone();
        let (execution, workflow_type) = Self::child_execution(&child);
        let id = self.append(
            env.now_ms,
            Attributes::ChildWorkflowExecutionStartedEventAttributes(
                ChildWorkflowExecutionStartedEventAttributes {
                    namespace: child.namespace.clone(),
                    namespace_id: child.namespace_id.clone(),
                    initiated_event_id,
                    workflow_execution: Some(execution),
                    workflow_type: Some(workflow_type),
                    header: Some(Default::default()),
                },
            ),
        );
        if let Some(c) = self.state.children.get_mut(&initiated_event_id) {
            c.started_event_id = id;
        }
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// The child could not start (its id is taken): StartChildWorkflowExecutionFailed.
    pub fn child_start_failed(&mut self, initiated_event_id: i64, env: &Env) -> Result<()> {
        self.ensure_open()?;
        let Some(child) = self.state.children.remove(&initiated_event_id) else {
            return Ok(());
        };
        self.append(
            env.now_ms,
            Attributes::StartChildWorkflowExecutionFailedEventAttributes(
                StartChildWorkflowExecutionFailedEventAttributes {
                    namespace: child.namespace,
                    namespace_id: child.namespace_id,
                    workflow_id: child.workflow_id,
                    workflow_type: Some(WorkflowType {
                        name: child.workflow_type,
                    }),
                    cause: StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists as i32,
                    control: child.control,
                    initiated_event_id,
                    // Temporal leaves the command's task id off the failure event.
                    workflow_task_completed_event_id: 0,
                },
            ),
        );
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// A child run closed (`close` is its close event): the matching ChildWorkflowExecution*
    /// event. Ignored when the child is no longer pending.
    pub fn child_closed(
        &mut self,
        initiated_event_id: i64,
        child_run_id: &str,
        close: &HistoryEvent,
        env: &Env,
    ) -> Result<()> {
        self.ensure_open()?;
        let Some(mut child) = self.state.children.remove(&initiated_event_id) else {
            return Ok(());
        };
        if child.run_id.is_empty() {
            child.run_id = child_run_id.to_string();
        }
        let (mut execution, workflow_type) = Self::child_execution(&child);
        execution.run_id = child_run_id.to_string();
        let (namespace, namespace_id, started_event_id) = (
            child.namespace.clone(),
            child.namespace_id.clone(),
            child.started_event_id,
        );
        let attributes = match &close.attributes {
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
                Attributes::ChildWorkflowExecutionCompletedEventAttributes(
                    ChildWorkflowExecutionCompletedEventAttributes {
                        result: a.result.clone(),
                        namespace,
                        namespace_id,
                        workflow_execution: Some(execution),
                        workflow_type: Some(workflow_type),
                        initiated_event_id,
                        started_event_id,
                    },
                )
            }
            Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                Attributes::ChildWorkflowExecutionFailedEventAttributes(
                    ChildWorkflowExecutionFailedEventAttributes {
                        failure: a.failure.clone(),
                        namespace,
                        namespace_id,
                        workflow_execution: Some(execution),
                        workflow_type: Some(workflow_type),
                        initiated_event_id,
                        started_event_id,
                        retry_state: a.retry_state,
                    },
                )
            }
            Some(Attributes::WorkflowExecutionCanceledEventAttributes(a)) => {
                Attributes::ChildWorkflowExecutionCanceledEventAttributes(
                    ChildWorkflowExecutionCanceledEventAttributes {
                        details: a.details.clone(),
                        namespace,
                        namespace_id,
                        workflow_execution: Some(execution),
                        workflow_type: Some(workflow_type),
                        initiated_event_id,
                        started_event_id,
                    },
                )
            }
            Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => {
                Attributes::ChildWorkflowExecutionTimedOutEventAttributes(
                    ChildWorkflowExecutionTimedOutEventAttributes {
                        namespace,
                        namespace_id,
                        workflow_execution: Some(execution),
                        workflow_type: Some(workflow_type),
                        initiated_event_id,
                        started_event_id,
                        retry_state: a.retry_state,
                    },
                )
            }
            _ => Attributes::ChildWorkflowExecutionTerminatedEventAttributes(
                ChildWorkflowExecutionTerminatedEventAttributes {
                    namespace,
                    namespace_id,
                    workflow_execution: Some(execution),
                    workflow_type: Some(workflow_type),
                    initiated_event_id,
                    started_event_id,
                },
            ),
        };
        self.append(env.now_ms, attributes);
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// SignalExternalWorkflowExecution: the initiated event and a task that signals the target.
    pub(crate) fn signal_external(
        &mut self,
        attrs: SignalExternalWorkflowExecutionCommandAttributes,
        completed_event_id: i64,
        env: &Env,
    ) -> std::result::Result<(), CommandError> {
        let cause = WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes;
        let namespace = self.command_namespace(&attrs.namespace, cause)?;
        let execution = attrs.execution.clone().unwrap_or_default();
        if execution.workflow_id.is_empty() {
            return Err(CommandError::new(
                cause,
                "WorkflowId is not set on SignalExternalWorkflowExecutionCommand.",
            ));
        }
        if attrs.signal_name.is_empty() {
            return Err(CommandError::new(
                cause,
                "SignalName is not set on SignalExternalWorkflowExecutionCommand.",
            ));
        }
        let initiated = SignalExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: completed_event_id,
            namespace: namespace.clone(),
            namespace_id: self.state.namespace_id.clone(),
            workflow_execution: Some(execution.clone()),
            signal_name: attrs.signal_name,
            input: attrs.input,
            control: attrs.control.clone(),
            child_workflow_only: attrs.child_workflow_only,
            header: attrs.header,
        };
        let payload = initiated.encode_to_vec();
        let id = self.append(
            env.now_ms,
            Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(initiated),
        );
        let namespace_id = self.state.namespace_id.clone();
        self.push_transfer(TaskKind::SignalExternal, |t| {
            t.scheduled_event_id = id;
            t.payload = payload;
            t.target_namespace_id = namespace_id;
            t.target_workflow_id = execution.workflow_id;
            t.target_run_id = execution.run_id;
            t.child_workflow_only = attrs.child_workflow_only;
        });
        Ok(())
    }

    /// The target's shard answered a signal: ExternalWorkflowExecutionSignaled, or
    /// SignalExternalWorkflowExecutionFailed when the target was not found.
    pub fn signal_external_done(
        &mut self,
        initiated_event_id: i64,
        delivered: bool,
        env: &Env,
    ) -> Result<()> {
        self.resolve_external(initiated_event_id, false, env, |info, execution| {
            if delivered {
                Attributes::ExternalWorkflowExecutionSignaledEventAttributes(
                    ExternalWorkflowExecutionSignaledEventAttributes {
                        initiated_event_id,
                        namespace: info.namespace,
                        namespace_id: info.namespace_id,
                        workflow_execution: execution,
                        control: info.control,
                    },
                )
            } else {
                Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(
                    SignalExternalWorkflowExecutionFailedEventAttributes {
                        cause: SignalExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound
                            as i32,
                        // Temporal leaves the command's task id off the failure event.
                        workflow_task_completed_event_id: 0,
                        namespace: info.namespace,
                        namespace_id: info.namespace_id,
                        workflow_execution: execution,
                        initiated_event_id,
                        control: info.control,
                    },
                )
            }
        })
    }

    /// Resolves a pending signal (`cancel` false) or cancel request to another workflow: the
    /// event `build` makes from it, then a workflow task. Unknown ids are ignored (a repeated
    /// transfer task).
    fn resolve_external(
        &mut self,
        initiated_event_id: i64,
        cancel: bool,
        env: &Env,
        build: impl FnOnce(ExternalInfo, Option<WorkflowExecution>) -> Attributes,
    ) -> Result<()> {
        self.ensure_open()?;
        let pending = if cancel {
            &mut self.state.pending_cancels
        } else {
            &mut self.state.pending_signals
        };
        let Some(info) = pending.remove(&initiated_event_id) else {
            return Ok(());
        };
        let execution = Some(WorkflowExecution {
            workflow_id: info.workflow_id.clone(),
            run_id: info.run_id.clone(),
        });
        self.append(env.now_ms, build(info, execution));
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// RequestCancelExternalWorkflowExecution: the initiated event and a task that asks the
    /// target to cancel.
    pub(crate) fn cancel_external(
        &mut self,
        attrs: RequestCancelExternalWorkflowExecutionCommandAttributes,
        completed_event_id: i64,
        env: &Env,
    ) -> std::result::Result<(), CommandError> {
        let cause = WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes;
        let namespace = self.command_namespace(&attrs.namespace, cause)?;
        if attrs.workflow_id.is_empty() {
            return Err(CommandError::new(
                cause,
                "WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand.",
            ));
        }
        let execution = WorkflowExecution {
            workflow_id: attrs.workflow_id.clone(),
            run_id: attrs.run_id.clone(),
        };
        let id = self.append(
            env.now_ms,
            Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
                RequestCancelExternalWorkflowExecutionInitiatedEventAttributes {
                    workflow_task_completed_event_id: completed_event_id,
                    namespace: namespace.clone(),
                    namespace_id: self.state.namespace_id.clone(),
                    workflow_execution: Some(execution),
                    control: attrs.control.clone(),
                    child_workflow_only: attrs.child_workflow_only,
                    reason: attrs.reason.clone(),
                },
            ),
        );
        let namespace_id = self.state.namespace_id.clone();
        self.push_transfer(TaskKind::CancelExternal, |t| {
            t.scheduled_event_id = id;
            t.payload = attrs.reason.into_bytes();
            t.target_namespace_id = namespace_id;
            t.target_workflow_id = attrs.workflow_id;
            t.target_run_id = attrs.run_id;
            t.child_workflow_only = attrs.child_workflow_only;
        });
        Ok(())
    }

    /// The target's shard answered a cancel request.
    pub fn cancel_external_done(
        &mut self,
        initiated_event_id: i64,
        delivered: bool,
        env: &Env,
    ) -> Result<()> {
        self.resolve_external(initiated_event_id, true, env, |info, execution| {
            if delivered {
                Attributes::ExternalWorkflowExecutionCancelRequestedEventAttributes(
                    ExternalWorkflowExecutionCancelRequestedEventAttributes {
                        initiated_event_id,
                        namespace: info.namespace,
                        namespace_id: info.namespace_id,
                        workflow_execution: execution,
                    },
                )
            } else {
                Attributes::RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                    RequestCancelExternalWorkflowExecutionFailedEventAttributes {
                        cause: CancelExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound
                            as i32,
                        // Temporal leaves the command's task id off the failure event.
                        workflow_task_completed_event_id: 0,
                        namespace: info.namespace,
                        namespace_id: info.namespace_id,
                        workflow_execution: execution,
                        initiated_event_id,
                        control: info.control,
                    },
                )
            }
        })
    }

    /// At close: the parent learns of it (unless the run continues in a new one), and
    /// children get their parent-close policy.
    pub(crate) fn on_close(
        &mut self,
        close_event_id: i64,
        continues: bool,
        children: Vec<ChildInfo>,
    ) {
        let started = self.started_attributes().clone();
        if !continues && let Some(parent) = started.parent_workflow_execution.clone() {
            let close = self
                .events
                .iter()
                .find(|e| e.event_id == close_event_id)
                .map(Message::encode_to_vec)
                .unwrap_or_default();
            let initiated = started.parent_initiated_event_id;
            self.push_transfer(TaskKind::RecordChildClose, |t| {
                t.scheduled_event_id = initiated;
                t.payload = close;
                t.target_namespace_id = started.parent_workflow_namespace_id.clone();
                t.target_workflow_id = parent.workflow_id;
                t.target_run_id = parent.run_id;
            });
        }
        for child in children {
            if child.parent_close_policy == ParentClosePolicy::Abandon as i32 {
                continue;
            }
            self.push_transfer(TaskKind::ParentClosePolicy, |t| {
                t.scheduled_event_id = child.initiated_event_id;
                t.timeout_type = child.parent_close_policy;
                t.target_namespace_id = child.namespace_id;
                t.target_workflow_id = child.workflow_id;
                t.target_run_id = child.run_id;
            });
        }
    }
}
