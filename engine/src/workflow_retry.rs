//! Workflow retries: a run that fails or times out under a retry policy closes with retry state
//! IN_PROGRESS and chains to a new run (initiator RETRY, attempt + 1, the first workflow task
//! delayed by the backoff). SDK clients follow `new_execution_run_id` from the close event.

use temporalio_protos::temporal::api::{
    enums::v1::{ContinueAsNewInitiator, RetryState},
    failure::v1::Failure,
    history::v1::WorkflowExecutionStartedEventAttributes,
    workflow::v1::ResetPoints,
};

use crate::Result;
use crate::cron::Cron;
use crate::retry::{self, Decision};
use crate::time::{duration, timestamp, timestamp_ms};
use crate::workflow::{Env, StartParams, Workflow};

/// Least time between a run's start and the first task of the run that continues it
/// (`history.workflowIdReuseMinimalInterval`, 1 s in Temporal).
pub const MIN_RUN_INTERVAL_MS: i64 = 1_000;
/// How long a rolled-over reset point stays usable: the retention of `server start-dev`'s
/// namespace (one day), which the engine does not know per namespace.
const RESET_POINT_RETENTION_MS: i64 = 24 * 3_600_000;

/// How the next run of a chain starts.
pub(crate) struct NextRun {
    /// Why it exists.
    pub initiator: ContinueAsNewInitiator,
    /// Its attempt.
    pub attempt: i32,
    /// Delay of its first workflow task, millis.
    pub backoff_ms: i64,
    /// The failure that ended the previous run.
    pub continued_failure: Option<Failure>,
    /// The result of the previous run (cron).
    pub last_completion_result: Option<temporalio_protos::temporal::api::common::v1::Payloads>,
}

/// Millis from `now_ms` to the schedule's next fire, rounded up to whole seconds (as the
/// reference server records the backoff).
pub(crate) fn cron_backoff_ms(spec: &str, now_ms: i64) -> Result<i64> {
    let cron = Cron::parse(spec)
        .map_err(|e| crate::Error::InvalidArgument(format!("Invalid CronSchedule: {e}.")))?;
    let next = cron
        .next(now_ms)
        .ok_or_else(|| crate::Error::InvalidArgument("CronSchedule never fires.".into()))?;
    Ok(((next - now_ms).max(0) + 999) / 1_000 * 1_000)
}

impl Workflow {
    /// A cron workflow's run ended (not by terminate or cancel): the next run starts at the
    /// schedule's next fire, carrying the result or failure. Returns its id, or "" without
    /// a schedule.
    pub(crate) fn continue_cron(
        &mut self,
        result: Option<temporalio_protos::temporal::api::common::v1::Payloads>,
        failure: Option<Failure>,
        env: &Env,
    ) -> Result<String> {
        let spec = self.started_attributes().cron_schedule.clone();
        if spec.is_empty() || self.new_run.is_some() {
            return Ok(String::new());
        }
        let backoff_ms = cron_backoff_ms(&spec, env.now_ms)?;
        self.chain_next_run(
            NextRun {
                initiator: ContinueAsNewInitiator::CronSchedule,
                attempt: 1,
                backoff_ms,
                continued_failure: failure,
                last_completion_result: result,
            },
            env,
        )
    }

    /// Decides whether the ending run retries. When it does, the next run is created (in
    /// `new_run`) and its id returned with IN_PROGRESS; otherwise the retry state to record.
    pub(crate) fn retry_if_allowed(
        &mut self,
        failure: Option<&Failure>,
        env: &Env,
    ) -> Result<(RetryState, String)> {
        let attrs = self.started_attributes().clone();
        let Some(policy) = attrs.retry_policy.clone() else {
            return Ok((RetryState::RetryPolicyNotSet, String::new()));
        };
        let policy = retry::with_defaults(Some(policy));
        let expiration = attrs
            .workflow_execution_expiration_time
            .as_ref()
            .map_or(0, timestamp_ms);
        match retry::next(
            &policy,
            attrs.attempt.max(1),
            failure,
            env.now_ms,
            expiration,
        ) {
            Decision::Retry(backoff_ms) => {
                let run_id = self.chain_next_run(
                    NextRun {
                        initiator: ContinueAsNewInitiator::Retry,
                        attempt: attrs.attempt.max(1) + 1,
                        backoff_ms,
                        continued_failure: failure.cloned(),
                        last_completion_result: None,
                    },
                    env,
                )?;
                Ok((RetryState::InProgress, run_id))
            }
            Decision::Stop(state) => Ok((state, String::new())),
        }
    }

    /// The first-task backoff of the run that continues this one: at least
    /// [`MIN_RUN_INTERVAL_MS`] between this run's start and the next run's first task, so a
    /// workflow that continues as new at once does not spin (Temporal's
    /// `ContinueAsNewMinBackoff`).
    pub(crate) fn continue_as_new_backoff(&self, backoff_ms: i64, env: &Env) -> i64 {
        let lifetime = env.now_ms - self.state.execution_time_ms.max(self.state.start_time_ms);
        if lifetime.saturating_add(backoff_ms) < MIN_RUN_INTERVAL_MS {
            MIN_RUN_INTERVAL_MS - lifetime
        } else {
            backoff_ms
        }
    }

    /// This run's reset points as the next run's `prev_auto_reset_points`, expiring with the
    /// history they point into ([`RESET_POINT_RETENTION_MS`] after now).
    pub(crate) fn rolled_over_reset_points(&self, env: &Env) -> Option<ResetPoints> {
        if self.state.auto_reset_points.is_empty() {
            return None;
        }
        let points = self
            .state
            .auto_reset_points
            .iter()
            .cloned()
            .map(|mut p| {
                if p.run_id == self.state.run_id {
                    p.expire_time = Some(timestamp(env.now_ms + RESET_POINT_RETENTION_MS));
                }
                p
            })
            .collect();
        Some(ResetPoints { points })
    }

    /// Creates the next run of this workflow id from the current run's start attributes.
    pub(crate) fn chain_next_run(&mut self, next: NextRun, env: &Env) -> Result<String> {
        let current = self.started_attributes().clone();
        let run_id = env.new_run_id.clone();
        let params = StartParams {
            namespace_id: self.state.namespace_id.clone(),
            workflow_id: self.state.workflow_id.clone(),
            run_id: run_id.clone(),
            request_id: String::new(),
            attributes: WorkflowExecutionStartedEventAttributes {
                workflow_type: current.workflow_type,
                task_queue: current.task_queue,
                input: current.input,
                workflow_execution_timeout: current.workflow_execution_timeout,
                workflow_run_timeout: current.workflow_run_timeout,
                workflow_task_timeout: current.workflow_task_timeout,
                continued_execution_run_id: self.state.run_id.clone(),
                initiator: next.initiator as i32,
                continued_failure: next.continued_failure,
                last_completion_result: next.last_completion_result,
                first_execution_run_id: current.first_execution_run_id,
                retry_policy: current.retry_policy,
                attempt: next.attempt,
                workflow_execution_expiration_time: current.workflow_execution_expiration_time,
                cron_schedule: current.cron_schedule,
                first_workflow_task_backoff: Some(duration(
                    self.continue_as_new_backoff(next.backoff_ms, env),
                )),
                prev_auto_reset_points: self.rolled_over_reset_points(env),
                memo: current.memo,
                search_attributes: crate::search_attributes::without_build_ids(
                    current.search_attributes,
                ),
                header: current.header,
                priority: current.priority,
                parent_workflow_namespace: current.parent_workflow_namespace,
                parent_workflow_namespace_id: current.parent_workflow_namespace_id,
                parent_workflow_execution: current.parent_workflow_execution,
                parent_initiated_event_id: current.parent_initiated_event_id,
                root_workflow_execution: current.root_workflow_execution,
                ..Default::default()
            },
            signal: None,
            namespace_name: self.state.namespace_name.clone(),
            defer_first_workflow_task: false,
        };
        let start_env = Env {
            new_run_id: String::new(),
            ..env.clone()
        };
        let new_run = Workflow::start(params, &start_env)?;
        self.state.new_execution_run_id = run_id.clone();
        self.new_run = Some(Box::new(new_run));
        Ok(run_id)
    }
}
