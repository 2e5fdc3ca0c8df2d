//! The logic of a history shard as a plain state machine, testable without actix: a cache of
//! runs, the application of [`Request`]s through the engine, and the assembly of one
//! [`ShardBatch`] per commit with the [`Effects`] to carry out once it is durable.
//!
//! Nothing here sends or spawns. Requests come in with the [`Ticket`] of their reply; replies
//! go out as values, released only after the batch that holds their changes commits (or with
//! the commit's error), so nothing is acknowledged before it is durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;
use sundial_engine::api::{
    enums::v1::{WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy},
    history::v1::{History, HistoryEvent},
};
use sundial_engine::search_attributes::SearchAttributeTypes;
use sundial_engine::{CurrentRunInfo, Env, MutableState, TaskInfo, TaskKind, Workflow};
use sundial_storage::{
    CurrentExecutionRow, CurrentExecutionWrite, ExecutionKey, ExecutionRow, ExecutionWrite,
    HistoryAppend, HistoryBatch, ShardBatch, TimerTaskRow, TransferTaskRow,
};

use crate::ops::{
    ActivityReport, ActivityTarget, Request, ResetWorkflow, Response, RunRef, StartOutcome,
    StartWorkflow, Ticket,
};
use crate::visibility::visibility_row;
use crate::{Error, Result};

/// A reply: its ticket and what it says.
pub type Answer = (Ticket, Result<Response>);

/// A namespace's custom search attributes, by namespace id (`None` when unknown).
pub type SearchAttributeLookup<'a> = dyn Fn(&str) -> Option<Arc<SearchAttributeTypes>> + 'a;

/// True for the events after which a run lists differently: its start, a change of its search
/// attributes or memo, and its close. (Temporal's visibility records change at these only, so
/// a listing's history length of an open run is the one of its last such event, as there.)
fn changes_visibility(event: &HistoryEvent) -> bool {
    use sundial_engine::api::enums::v1::EventType as E;
    matches!(
        E::try_from(event.event_type),
        Ok(E::WorkflowExecutionStarted
            | E::UpsertWorkflowSearchAttributes
            | E::WorkflowPropertiesModified
            | E::WorkflowPropertiesModifiedExternally
            | E::WorkflowExecutionCompleted
            | E::WorkflowExecutionFailed
            | E::WorkflowExecutionTimedOut
            | E::WorkflowExecutionCanceled
            | E::WorkflowExecutionTerminated
            | E::WorkflowExecutionContinuedAsNew)
    )
}

struct CachedRun {
    wf: Workflow,
    /// `db_version` in the store; `None` for a run not yet stored.
    stored_version: Option<i64>,
    /// When the run was last loaded or written (the cache's recency order).
    last_used: u64,
    /// Size of its encoded mutable state when last loaded or written.
    bytes: usize,
}

#[derive(Clone)]
struct CurrentEntry {
    run_id: String,
    info: CurrentRunInfo,
    /// Run id in the store; `None` when no row exists.
    stored_run_id: Option<String>,
}

/// A task to act on after the commit.
#[derive(Debug, Clone)]
pub struct ReadyTask {
    /// Shard-unique id.
    pub task_id: i64,
    /// What to do.
    pub task: TaskInfo,
}

impl ReadyTask {
    /// Where a workflow task goes when its sticky worker is gone: the same task on the run's
    /// normal queue. `None` for anything but a sticky workflow-task dispatch.
    pub fn sticky_fallback(&self) -> Option<TaskInfo> {
        let t = &self.task;
        if t.task_kind() != TaskKind::DispatchWorkflowTask || !t.sticky {
            return None;
        }
        Some(TaskInfo {
            sticky: false,
            task_queue: t.normal_task_queue.clone(),
            ..t.clone()
        })
    }
}

/// What to do once a batch has committed.
#[derive(Default)]
pub struct Effects {
    /// Transfer tasks to carry out.
    pub transfer: Vec<ReadyTask>,
    /// Timer tasks to arm.
    pub timers: Vec<ReadyTask>,
    /// Replies to send (or, if the commit fails, to answer with its error instead).
    pub replies: Vec<Answer>,
}

/// A history shard's state and logic.
pub struct ShardCore {
    /// 1-based shard id.
    pub shard_id: i32,
    /// Fence of every write.
    pub range_id: i64,
    next_task_id: i64,
    runs: HashMap<ExecutionKey, CachedRun>,
    current: HashMap<(String, String), CurrentEntry>,
    watchers: HashMap<ExecutionKey, Vec<(i64, Ticket)>>,
    // Accumulated by the batch being built.
    touched: BTreeMap<ExecutionKey, Vec<HistoryEvent>>,
    touched_current: Vec<(String, String)>,
    tasks: Vec<TaskInfo>,
    /// Replies owed once the batch being built commits.
    replies: Vec<Answer>,
    timer_deletes: Vec<(i64, i64)>,
    /// Runs to delete once nothing else in a batch writes them.
    deletes: Vec<ExecutionKey>,
    /// Runs deleted by the batch being committed.
    deleting: Vec<ExecutionKey>,
    /// Current-run pointers written by the batch being committed.
    committing_current: Vec<(String, String)>,
    /// Transfer tasks whose effect is done, deleted by the next batch.
    pub transfer_acks: Vec<i64>,
    /// The run cache's bounds; past either, the least recently used runs are evicted.
    pub cache_limits: CacheLimits,
    /// Cached runs by `last_used`, oldest first.
    recency: BTreeMap<u64, ExecutionKey>,
    /// The next `last_used` stamp.
    use_clock: u64,
    /// Sum of the cached runs' `bytes`.
    cache_bytes: usize,
    /// Callers waiting for workflow updates (`updates.rs`).
    pub(crate) update_waiters: crate::updates::UpdateWaiters,
    /// Queries waiting for a workflow task (`query_buffer.rs`).
    pub(crate) query_buffers: crate::query_buffer::QueryBuffers,
}

/// Bounds of a shard's run cache (Temporal's `history.cacheMaxSize` counts runs per shard too).
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Most runs cached.
    pub runs: usize,
    /// Most bytes of encoded mutable state cached.
    pub bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            runs: 4_096,
            bytes: 16 << 20,
        }
    }
}

fn key_of(wf: &Workflow) -> ExecutionKey {
    ExecutionKey {
        namespace_id: wf.state.namespace_id.clone(),
        workflow_id: wf.state.workflow_id.clone(),
        run_id: wf.state.run_id.clone(),
    }
}

fn task_range(range_id: i64) -> (i64, i64) {
    (range_id << 20, (range_id + 1) << 20)
}

impl ShardCore {
    /// A shard owned under `range_id`.
    pub fn new(shard_id: i32, range_id: i64) -> Self {
        Self {
            shard_id,
            range_id,
            next_task_id: task_range(range_id).0,
            runs: HashMap::new(),
            current: HashMap::new(),
            watchers: HashMap::new(),
            touched: BTreeMap::new(),
            touched_current: Vec::new(),
            tasks: Vec::new(),
            replies: Vec::new(),
            timer_deletes: Vec::new(),
            deletes: Vec::new(),
            deleting: Vec::new(),
            committing_current: Vec::new(),
            transfer_acks: Vec::new(),
            cache_limits: CacheLimits::default(),
            recency: BTreeMap::new(),
            use_clock: 0,
            cache_bytes: 0,
            update_waiters: Default::default(),
            query_buffers: Default::default(),
        }
    }

    /// Task ids left in the current range.
    pub fn task_ids_left(&self) -> i64 {
        task_range(self.range_id).1 - self.next_task_id
    }

    /// Moves to a new range after re-acquiring the shard.
    pub fn renew_range(&mut self, range_id: i64) {
        self.range_id = range_id;
        self.next_task_id = task_range(range_id).0;
    }

    /// True when the current-run pointer of this workflow is cached.
    pub fn has_current(&self, namespace_id: &str, workflow_id: &str) -> bool {
        self.current
            .contains_key(&(namespace_id.to_string(), workflow_id.to_string()))
    }

    /// The cached current run id, if any.
    pub fn current_run_id(&self, namespace_id: &str, workflow_id: &str) -> Option<String> {
        self.current
            .get(&(namespace_id.to_string(), workflow_id.to_string()))
            .map(|c| c.run_id.clone())
    }

    /// True when the run is cached.
    pub fn has_run(&self, key: &ExecutionKey) -> bool {
        self.runs.contains_key(key)
    }

    /// What must be read from the store before `requests` can be applied: the current-run
    /// pointers and the runs that are not cached (sorted, once each). A run named by its id
    /// needs its workflow's pointer too, since closing the run updates the pointer's status.
    pub fn reads_for<'a>(
        &self,
        requests: impl Iterator<Item = &'a Request>,
    ) -> (Vec<(String, String)>, Vec<ExecutionKey>) {
        let mut currents = Vec::new();
        let mut runs = Vec::new();
        for run in requests.filter_map(Request::run) {
            let pointer = (run.namespace_id.clone(), run.workflow_id.clone());
            let run_id = match (run.run_id.is_empty(), self.current.get(&pointer)) {
                (true, Some(current)) => current.run_id.clone(),
                // The pointer's read brings its run along.
                (true, None) => {
                    currents.push(pointer);
                    continue;
                }
                (false, cached) => {
                    if cached.is_none() {
                        currents.push(pointer);
                    }
                    run.run_id
                }
            };
            let key = ExecutionKey {
                namespace_id: run.namespace_id,
                workflow_id: run.workflow_id,
                run_id,
            };
            if !self.runs.contains_key(&key) {
                runs.push(key);
            }
        }
        currents.sort();
        currents.dedup();
        runs.sort();
        runs.dedup();
        (currents, runs)
    }

    /// Adds a loaded current-run row (or its absence) unless one is cached.
    pub fn insert_current(
        &mut self,
        namespace_id: &str,
        workflow_id: &str,
        row: Option<CurrentExecutionRow>,
    ) {
        let key = (namespace_id.to_string(), workflow_id.to_string());
        if self.current.contains_key(&key) {
            return;
        }
        if let Some(row) = row {
            let info = CurrentRunInfo::decode(row.data.as_slice()).unwrap_or_default();
            self.current.insert(
                key,
                CurrentEntry {
                    run_id: row.run_id.clone(),
                    info,
                    stored_run_id: Some(row.run_id),
                },
            );
        }
    }

    /// Adds a loaded run unless one is cached.
    pub fn insert_run(&mut self, row: ExecutionRow) -> Result<()> {
        if self.runs.contains_key(&row.key) {
            return Ok(());
        }
        let state = MutableState::decode(row.state.as_slice())
            .map_err(|e| Error::Unavailable(format!("corrupt mutable state: {e}")))?;
        let bytes = row.state.len();
        self.cache_run(
            row.key,
            Workflow::from_state(state),
            Some(row.db_version),
            bytes,
        );
        Ok(())
    }

    /// Puts a run in the cache as the most recently used one.
    fn cache_run(
        &mut self,
        key: ExecutionKey,
        wf: Workflow,
        stored_version: Option<i64>,
        bytes: usize,
    ) {
        let last_used = self.next_use();
        self.cache_bytes += bytes;
        self.recency.insert(last_used, key.clone());
        let old = self.runs.insert(
            key,
            CachedRun {
                wf,
                stored_version,
                last_used,
                bytes,
            },
        );
        if let Some(old) = old {
            self.recency.remove(&old.last_used);
            self.cache_bytes -= old.bytes;
        }
    }

    fn next_use(&mut self) -> u64 {
        self.use_clock += 1;
        self.use_clock
    }

    /// Marks a cached run as just used, `bytes` its encoded size now.
    fn used(&mut self, key: &ExecutionKey, bytes: usize) {
        let last_used = self.next_use();
        if let Some(cached) = self.runs.get_mut(key) {
            self.recency.remove(&cached.last_used);
            self.recency.insert(last_used, key.clone());
            cached.last_used = last_used;
            self.cache_bytes = self.cache_bytes - cached.bytes + bytes;
            cached.bytes = bytes;
        }
    }

    /// Removes a run from the cache.
    fn uncache_run(&mut self, key: &ExecutionKey) -> Option<Workflow> {
        let cached = self.runs.remove(key)?;
        self.recency.remove(&cached.last_used);
        self.cache_bytes -= cached.bytes;
        Some(cached.wf)
    }

    pub(crate) fn resolve(&self, run: &RunRef) -> Result<ExecutionKey> {
        let run_id = if run.run_id.is_empty() {
            self.current_run_id(&run.namespace_id, &run.workflow_id)
                .ok_or_else(|| not_found(run))?
        } else {
            run.run_id.clone()
        };
        let key = ExecutionKey {
            namespace_id: run.namespace_id.clone(),
            workflow_id: run.workflow_id.clone(),
            run_id,
        };
        if !self.runs.contains_key(&key) {
            return Err(not_found(run));
        }
        Ok(key)
    }

    /// Applies one request; its reply (on `ticket`) waits for the commit.
    pub fn apply(&mut self, ticket: Ticket, request: Request, env: &Env) {
        match request {
            Request::Start(start) => {
                let result = self.start(start, None, env);
                self.answer(ticket, result.map(Response::Started));
            }
            Request::SignalWithStart(start, signal) => {
                let result = self.signal_with_start(start, signal, env);
                self.answer(ticket, result.map(Response::Started));
            }
            Request::RecordWorkflowTaskStarted {
                run,
                scheduled_event_id,
                attempt,
                request_id,
                identity,
                build_id,
                polled_queue,
            } => {
                let result = self.resolve(&run).and_then(|key| {
                    let queries = self.buffered_queries(&key);
                    self.with_run(&key, env, |wf| {
                        let start = wf.record_workflow_task_started(
                            scheduled_event_id,
                            attempt,
                            &request_id,
                            &identity,
                            &build_id,
                            &polled_queue,
                            env,
                        )?;
                        Ok(crate::ops::WorkflowTaskStarted {
                            run_id: wf.state.run_id.clone(),
                            start,
                            state: wf.state.clone(),
                            queries,
                        })
                    })
                });
                let result = result.map(|s| Response::WorkflowTaskStarted(Box::new(s)));
                self.answer(ticket, result);
            }
            Request::CompleteWorkflowTask {
                run,
                scheduled_event_id,
                attempt,
                started,
                mut request,
            } => {
                let query_results = std::mem::take(&mut request.query_results);
                let result = self.resolve(&run).and_then(|key| {
                    let mut completed = self.with_run(&key, env, |wf| {
                        wf.check_workflow_task_start(started.0, started.1)?;
                        let outcome =
                            wf.complete_workflow_task(scheduled_event_id, attempt, *request, env)?;
                        Ok(crate::ops::CompletedWorkflowTask {
                            outcome,
                            state: wf.state.clone(),
                            queries: Default::default(),
                        })
                    })?;
                    if completed.outcome.rejected.is_none() {
                        self.answer_queries(&key, query_results);
                        if completed.outcome.new_workflow_task.is_some() {
                            completed.queries = self.buffered_queries(&key);
                        }
                    }
                    Ok(completed)
                });
                let result = result.map(|c| Response::WorkflowTaskCompleted(Box::new(c)));
                self.answer(ticket, result);
            }
            Request::FailWorkflowTask {
                run,
                scheduled_event_id,
                attempt,
                started,
                cause,
                failure,
                identity,
            } => {
                let result = self.on_run(&run, env, |wf| {
                    wf.check_workflow_task_start(started.0, started.1)?;
                    wf.fail_workflow_task(
                        scheduled_event_id,
                        attempt,
                        cause,
                        failure,
                        identity,
                        env,
                    )
                    .map_err(Error::from)
                });
                self.answer(ticket, result.map(|()| Response::Done));
            }
            Request::RecordActivityTaskStarted {
                run,
                scheduled_event_id,
                attempt,
                request_id,
                identity,
                build_id,
            } => {
                let result = self.on_run(&run, env, |wf| {
                    let activity = wf.record_activity_task_started(
                        scheduled_event_id,
                        attempt,
                        &request_id,
                        &identity,
                        &build_id,
                        env,
                    )?;
                    Ok(crate::ops::ActivityStarted {
                        activity,
                        state: wf.state.clone(),
                    })
                });
                let result = result.map(|a| Response::ActivityStarted(Box::new(a)));
                self.answer(ticket, result);
            }
            Request::ReportActivity {
                run,
                target,
                report,
                identity,
            } => {
                let result = self.on_run(&run, env, |wf| {
                    report_activity(wf, target, report, identity, env)
                });
                self.answer(ticket, result.map(Response::CancelRequested));
            }
            Request::Signal(run, signal) => {
                let result =
                    self.on_run(&run, env, |wf| wf.signal(signal, env).map_err(Error::from));
                self.answer(ticket, result.map(|()| Response::Done));
            }
            Request::RequestCancel {
                run,
                cause,
                identity,
            } => {
                let result = self.on_run(&run, env, |wf| {
                    wf.request_cancel(cause, identity, env).map_err(Error::from)
                });
                self.answer(ticket, result.map(|()| Response::Done));
            }
            Request::Terminate {
                run,
                reason,
                details,
                identity,
            } => {
                let result = self.on_run(&run, env, |wf| {
                    wf.terminate(reason, details, identity, env)
                        .map_err(Error::from)
                });
                self.answer(ticket, result.map(|()| Response::Done));
            }
            Request::Describe(run) => {
                let result = self
                    .resolve(&run)
                    .map(|key| Response::State(Box::new(self.runs[&key].wf.state.clone())));
                self.answer(ticket, result);
            }
            Request::Watch { run, next_event_id } => match self.resolve(&run) {
                Ok(key) => {
                    let state = &self.runs[&key].wf.state;
                    if state.next_event_id > next_event_id || state.close_time_ms != 0 {
                        let state = Response::State(Box::new(state.clone()));
                        self.answer(ticket, Ok(state));
                    } else {
                        self.watchers
                            .entry(key)
                            .or_default()
                            .push((next_event_id, ticket));
                    }
                }
                Err(e) => self.answer(ticket, Err(e)),
            },
            Request::Update(update) => crate::updates::apply(self, ticket, update, env),
            Request::Query {
                run,
                query,
                reject_condition,
            } => {
                let routed = self
                    .resolve(&run)
                    .and_then(|key| self.route_query(&key, ticket, query, reject_condition, env));
                match routed {
                    // Buffered: answered when a workflow task carries it (or it is unblocked).
                    Ok(None) => {}
                    Ok(Some(route)) => self.answer(ticket, Ok(Response::Query(route))),
                    Err(e) => self.answer(ticket, Err(e)),
                }
            }
            Request::Reset(reset) => {
                let result = self.reset(*reset, env);
                self.answer(ticket, result.map(Response::Reset));
            }
            Request::Delete(run) => {
                let result = self.resolve(&run).and_then(|key| {
                    let open = self.runs.get(&key).is_some_and(|r| r.wf.is_open());
                    if open {
                        self.with_run(&key, env, |wf| {
                            wf.terminate(
                                "Delete workflow execution".into(),
                                None,
                                String::new(),
                                env,
                            )
                            .map_err(Error::from)
                        })?;
                    }
                    self.deletes.push(key);
                    Ok(Response::Done)
                });
                self.answer(ticket, result);
            }
            Request::Apply { run, change } => {
                let result = self.on_run(&run, env, |wf| {
                    change.apply_to(wf, env).map_err(Error::from)
                });
                self.answer(ticket, result.map(|()| Response::Done));
            }
            Request::Timer(fire_ms, task_id, task) => self.fire(fire_ms, task_id, task, env),
        }
    }

    /// Queues a reply to release once the batch being built commits.
    pub(crate) fn answer(&mut self, ticket: Ticket, result: Result<Response>) {
        self.replies.push((ticket, result));
    }

    /// Runs `f` on the run `run` names (see [`ShardCore::with_run`]).
    fn on_run<T>(
        &mut self,
        run: &RunRef,
        env: &Env,
        f: impl FnOnce(&mut Workflow) -> Result<T>,
    ) -> Result<T> {
        let key = self.resolve(run)?;
        self.with_run(&key, env, f)
    }

    /// Signal-with-start: signals the running run, or starts one (allowing a duplicate id
    /// unless the caller said otherwise) with the signal in its first events.
    fn signal_with_start(
        &mut self,
        mut start: StartWorkflow,
        signal: sundial_engine::Signal,
        env: &Env,
    ) -> Result<StartOutcome> {
        let run = RunRef {
            namespace_id: start.params.namespace_id.clone(),
            workflow_id: start.params.workflow_id.clone(),
            run_id: String::new(),
        };
        let running = self
            .resolve(&run)
            .ok()
            .filter(|k| self.runs.get(k).is_some_and(|r| r.wf.is_open()));
        match running {
            Some(key) => {
                self.with_run(&key, env, |wf| wf.signal(signal, env).map_err(Error::from))?;
                Ok(StartOutcome {
                    run_id: key.run_id.clone(),
                    started: false,
                    eager: None,
                })
            }
            None => {
                if start.reuse_policy == 0 {
                    start.reuse_policy = WorkflowIdReusePolicy::AllowDuplicate as i32;
                }
                self.start(start, Some(signal), env)
            }
        }
    }

    /// A timer task is due: its event (or deletion, for retention) goes into the batch.
    fn fire(&mut self, fire_ms: i64, task_id: i64, task: TaskInfo, env: &Env) {
        if !task.speculative {
            self.timer_deletes.push((fire_ms, task_id));
        }
        let key = ExecutionKey {
            namespace_id: task.namespace_id.clone(),
            workflow_id: task.workflow_id.clone(),
            run_id: task.run_id.clone(),
        };
        if task.task_kind() == TaskKind::DeleteExecution {
            // Retention passed: the run goes with its history (a run reset or reopened since
            // is open again and stays).
            if self.runs.get(&key).is_some_and(|r| !r.wf.is_open()) {
                self.deletes.push(key);
            }
        } else if self.runs.contains_key(&key) {
            // A timer that no longer applies (its activity finished, its run closed) changes
            // nothing; the engine refuses it and the run is left as it was.
            let _ = self.with_run(&key, env, |wf| {
                match task.task_kind() {
                    TaskKind::UserTimer => wf.fire_timer(&task, env),
                    TaskKind::ActivityTimeout => wf.activity_timed_out(&task, env),
                    TaskKind::ActivityRetry => wf.activity_retry_due(&task, env),
                    TaskKind::WorkflowTaskTimeout => wf.workflow_task_timed_out(&task, env),
                    TaskKind::WorkflowRunTimeout | TaskKind::WorkflowExecutionTimeout => {
                        if wf.is_open() {
                            wf.time_out(env)
                        } else {
                            Ok(())
                        }
                    }
                    TaskKind::WorkflowBackoff => wf.backoff_elapsed(env),
                    _ => Ok(()),
                }
                .map_err(Error::from)
            });
        }
    }

    /// Runs `f` on a cached run and records what it changed for the batch. On error the run's
    /// state is restored.
    pub(crate) fn with_run<T>(
        &mut self,
        key: &ExecutionKey,
        env: &Env,
        f: impl FnOnce(&mut Workflow) -> Result<T>,
    ) -> Result<T> {
        let cached = self
            .runs
            .get_mut(key)
            .ok_or_else(|| Error::NotFound("workflow not found".into()))?;
        let before = cached.wf.clone();
        let was_open = cached.wf.is_open();
        match f(&mut cached.wf) {
            Ok(v) => {
                // A history past its error limits ends the run in the same commit.
                cached.wf.enforce_history_limits(env)?;
                let changes = cached.wf.take_changes();
                let closed_now = was_open && !cached.wf.is_open();
                let status = cached.wf.state.status;
                // What lives in memory only (a speculative workflow task, admitted updates)
                // writes nothing.
                let in_memory_only = changes.events.is_empty()
                    && changes.new_run.is_none()
                    && !closed_now
                    && changes.tasks.iter().all(|t| t.speculative)
                    && cached.wf.state.stores_same_as(&before.state);
                if !in_memory_only {
                    let touched = self.touched.entry(key.clone()).or_default();
                    touched.extend(changes.events);
                }
                self.tasks.extend(changes.tasks);
                if closed_now {
                    self.schedule_deletion(key, env);
                }
                if let Some(new_run) = changes.new_run {
                    self.add_new_run(*new_run, key);
                } else if closed_now {
                    self.update_current_status(key, status);
                }
                Ok(v)
            }
            Err(e) => {
                cached.wf = before;
                Err(e)
            }
        }
    }

    /// A run just closed: a durable timer deletes it and its history once the namespace's
    /// retention has passed. Without a known retention nothing is scheduled (a run is never
    /// deleted early).
    fn schedule_deletion(&mut self, key: &ExecutionKey, env: &Env) {
        let Some(retention_ms) = env.retention_ms else {
            return;
        };
        self.tasks.push(TaskInfo {
            kind: TaskKind::DeleteExecution as i32,
            namespace_id: key.namespace_id.clone(),
            workflow_id: key.workflow_id.clone(),
            run_id: key.run_id.clone(),
            fire_time_ms: env.now_ms.saturating_add(retention_ms).max(1),
            ..Default::default()
        });
    }

    /// ResetWorkflowExecution: terminates the current run if it is open and makes the run
    /// rebuilt from the base run's history current, with the signals received after the reset
    /// point re-applied.
    fn reset(&mut self, reset: ResetWorkflow, env: &Env) -> Result<String> {
        // No dedupe by request id: Temporal (1.32) resets again when a request is repeated.
        let current = self.resolve(&reset.current)?;
        let current_state = &self.runs[&current].wf.state;
        // The histories were read before this op: if the current run moved on since, a signal
        // could be missed. The caller reads again.
        let read_next = if current.run_id == reset.base.run_id {
            Some(reset.base.next_event_id)
        } else {
            reset
                .later_runs
                .iter()
                .find(|(run_id, _, _)| *run_id == current.run_id)
                .map(|(_, next, _)| *next)
        };
        if read_next.is_some_and(|n| n != current_state.next_event_id) {
            return Err(Error::Unavailable(
                "the workflow changed during the reset; try again".into(),
            ));
        }
        let mut wf = Workflow::reset_from(&reset.base, &reset.base_events, &reset.params, env)?;
        let mut reapply: Vec<HistoryEvent> = reset
            .base_events
            .iter()
            .filter(|e| e.event_id >= reset.params.workflow_task_finish_event_id)
            .cloned()
            .collect();
        for (_, _, events) in &reset.later_runs {
            reapply.extend(events.iter().cloned());
        }
        if self.runs[&current].wf.is_open() {
            // Terminating flushes the buffer: signals waiting there are re-applied too.
            let flushed = self.with_run(&current, env, |old| {
                old.terminate(
                    reset.params.reason.clone(),
                    None,
                    sundial_engine::RESETTER_IDENTITY.into(),
                    env,
                )?;
                Ok(old.pending_events().to_vec())
            })?;
            if read_next.is_some() {
                reapply.extend(flushed);
            }
        }
        let base_key = ExecutionKey {
            run_id: reset.base.run_id.clone(),
            ..current.clone()
        };
        if self.runs.contains_key(&base_key) {
            let new_run_id = wf.state.run_id.clone();
            self.with_run(&base_key, env, |base| {
                base.state.reset_run_id = new_run_id;
                Ok(())
            })?;
        }
        wf.reapply_after_reset(&reapply, reset.reapply, env);
        wf.finish_reset(env);
        let run_id = wf.state.run_id.clone();
        self.add_new_run(wf, &current);
        Ok(run_id)
    }

    fn update_current_status(&mut self, key: &ExecutionKey, status: i32) {
        let ck = (key.namespace_id.clone(), key.workflow_id.clone());
        if let Some(cur) = self.current.get_mut(&ck)
            && cur.run_id == key.run_id
        {
            cur.info.status = status;
            if !self.touched_current.contains(&ck) {
                self.touched_current.push(ck);
            }
        }
    }

    fn add_new_run(&mut self, mut wf: Workflow, previous: &ExecutionKey) {
        let key = key_of(&wf);
        let changes = wf.take_changes();
        self.touched
            .entry(key.clone())
            .or_default()
            .extend(changes.events);
        self.tasks.extend(changes.tasks);
        let ck = (key.namespace_id.clone(), key.workflow_id.clone());
        let stored = self.current.get(&ck).and_then(|c| c.stored_run_id.clone());
        debug_assert!(
            self.current
                .get(&ck)
                .is_none_or(|c| c.run_id == previous.run_id)
        );
        self.current.insert(
            ck.clone(),
            CurrentEntry {
                run_id: key.run_id.clone(),
                info: CurrentRunInfo {
                    status: wf.state.status,
                    start_request_id: wf.state.start_request_id.clone(),
                    start_time_ms: wf.state.start_time_ms,
                },
                stored_run_id: stored,
            },
        );
        if !self.touched_current.contains(&ck) {
            self.touched_current.push(ck);
        }
        self.cache_run(key, wf, None, 0);
    }

    pub(crate) fn start(
        &mut self,
        start: StartWorkflow,
        signal: Option<sundial_engine::Signal>,
        env: &Env,
    ) -> Result<StartOutcome> {
        let ns = start.params.namespace_id.clone();
        let wf_id = start.params.workflow_id.clone();
        let request_id = start.params.request_id.clone();
        if let Some(cur) = self.current.get(&(ns.clone(), wf_id.clone())).cloned() {
            if !request_id.is_empty() && cur.info.start_request_id == request_id {
                return Ok(StartOutcome {
                    run_id: cur.run_id,
                    started: true,
                    eager: None,
                });
            }
            let running = cur.info.status == WorkflowExecutionStatus::Running as i32;
            if running {
                let conflict = WorkflowIdConflictPolicy::try_from(start.conflict_policy)
                    .unwrap_or(WorkflowIdConflictPolicy::Fail);
                #[allow(deprecated)]
                let reuse_terminates =
                    start.reuse_policy == WorkflowIdReusePolicy::TerminateIfRunning as i32;
                match conflict {
                    WorkflowIdConflictPolicy::UseExisting => {
                        return Ok(StartOutcome {
                            run_id: cur.run_id,
                            started: false,
                            eager: None,
                        });
                    }
                    WorkflowIdConflictPolicy::TerminateExisting => {}
                    _ if reuse_terminates => {}
                    _ => {
                        return Err(Error::WorkflowAlreadyStarted {
                            workflow_id: wf_id,
                            run_id: cur.run_id,
                            start_request_id: cur.info.start_request_id,
                        });
                    }
                }
                let key = ExecutionKey {
                    namespace_id: ns.clone(),
                    workflow_id: wf_id.clone(),
                    run_id: cur.run_id.clone(),
                };
                if self.runs.contains_key(&key) {
                    self.with_run(&key, env, |wf| {
                        wf.terminate(
                            "terminated by a start with a conflict policy".into(),
                            None,
                            start.params.attributes.identity.clone(),
                            env,
                        )
                        .map_err(Error::from)
                    })?;
                }
            } else {
                let reuse = WorkflowIdReusePolicy::try_from(start.reuse_policy)
                    .unwrap_or(WorkflowIdReusePolicy::AllowDuplicate);
                let failed_before = [
                    WorkflowExecutionStatus::Failed,
                    WorkflowExecutionStatus::Canceled,
                    WorkflowExecutionStatus::Terminated,
                    WorkflowExecutionStatus::TimedOut,
                ]
                .iter()
                .any(|s| *s as i32 == cur.info.status);
                let refused = match reuse {
                    WorkflowIdReusePolicy::RejectDuplicate => true,
                    WorkflowIdReusePolicy::AllowDuplicateFailedOnly => !failed_before,
                    _ => false,
                };
                if refused {
                    return Err(Error::WorkflowAlreadyStarted {
                        workflow_id: wf_id,
                        run_id: cur.run_id,
                        start_request_id: cur.info.start_request_id,
                    });
                }
            }
        }
        let mut params = start.params;
        params.signal = signal;
        let run_id = params.run_id.clone();
        let request_id = params.request_id.clone();
        let mut wf = Workflow::start(params, env)?;
        let eager = start.eager_identity.as_deref().and_then(|identity| {
            let start = wf.start_first_workflow_task_eagerly(&request_id, identity, env)?;
            Some(Box::new(crate::ops::WorkflowTaskStarted {
                run_id: wf.state.run_id.clone(),
                start,
                state: wf.state.clone(),
                queries: Default::default(),
            }))
        });
        // The run this one follows as current (none for a first start).
        let previous = ExecutionKey {
            run_id: self.current_run_id(&ns, &wf_id).unwrap_or_default(),
            namespace_id: ns,
            workflow_id: wf_id,
        };
        self.add_new_run(wf, &previous);
        Ok(StartOutcome {
            run_id,
            started: true,
            eager,
        })
    }

    /// True when the batch being built writes anything.
    pub fn has_work(&self) -> bool {
        !self.touched.is_empty()
            || !self.touched_current.is_empty()
            || !self.tasks.is_empty()
            || !self.timer_deletes.is_empty()
            || !self.transfer_acks.is_empty()
            || !self.deletes.is_empty()
            || !self.replies.is_empty()
    }

    /// Builds the batch of everything applied since the last one, plus the effects to carry
    /// out once it commits. `types` answers a namespace's custom search attributes (by id),
    /// for the visibility records of runs started, closed or changed in what they list.
    pub fn build_batch(
        &mut self,
        types: &SearchAttributeLookup<'_>,
    ) -> (ShardBatch, Effects, Vec<ExecutionKey>) {
        self.settle_queries();
        let mut batch = ShardBatch::default();
        let mut effects = Effects::default();
        let touched = std::mem::take(&mut self.touched);
        let mut touched_keys = Vec::new();
        for (key, events) in touched {
            let Some(cached) = self.runs.get(&key) else {
                continue;
            };
            let listed_change = events.iter().any(changes_visibility);
            if !events.is_empty() {
                let first_event_id = events[0].event_id;
                batch.history.push(HistoryAppend {
                    key: key.clone(),
                    batch: HistoryBatch {
                        first_event_id,
                        txn_id: self.next_task_id,
                        events: History { events }.encode_to_vec(),
                    },
                });
            }
            let stored_version = cached.stored_version;
            let version = stored_version.map_or(1, |v| v + 1);
            let Some(cached) = self.runs.get_mut(&key) else {
                continue;
            };
            let listed_change = cached.wf.take_visibility_change() || listed_change;
            // The cached state is what this commit stores (a failed commit drops it).
            cached.wf.state.db_version = version;
            let state = &cached.wf.state;
            let encoded = if state.has_speculative_task() {
                state.clone().without_speculative_task().encode_to_vec()
            } else {
                state.encode_to_vec()
            };
            let next_event_id = state.next_event_id;
            if listed_change {
                let custom = types(&key.namespace_id).unwrap_or_default();
                batch.visibility.push(visibility_row(state, &custom));
            }
            self.used(&key, encoded.len());
            batch.executions.push(ExecutionWrite {
                row: ExecutionRow {
                    key: key.clone(),
                    next_event_id,
                    state: encoded,
                    db_version: version,
                },
                expected_db_version: stored_version,
            });
            touched_keys.push(key);
        }
        self.committing_current = std::mem::take(&mut self.touched_current);
        for ck in &self.committing_current {
            if let Some(cur) = self.current.get(ck) {
                batch.current_executions.push(CurrentExecutionWrite {
                    row: CurrentExecutionRow {
                        namespace_id: ck.0.clone(),
                        workflow_id: ck.1.clone(),
                        run_id: cur.run_id.clone(),
                        data: cur.info.encode_to_vec(),
                    },
                    expected_run_id: cur.stored_run_id.clone(),
                });
            }
        }
        for task in std::mem::take(&mut self.tasks) {
            let task_id = self.next_task_id;
            self.next_task_id += 1;
            if task.speculative {
                // Memory only: acted on, never stored.
                let ready = ReadyTask { task_id, task };
                if ready.task.fire_time_ms == 0 {
                    effects.transfer.push(ready);
                } else {
                    effects.timers.push(ready);
                }
                continue;
            }
            let data = task.encode_to_vec();
            if task.fire_time_ms == 0 {
                batch.transfer_tasks.push(TransferTaskRow { task_id, data });
                effects.transfer.push(ReadyTask { task_id, task });
            } else {
                batch.timer_tasks.push(TimerTaskRow {
                    fire_time_ms: task.fire_time_ms,
                    task_id,
                    data,
                });
                effects.timers.push(ReadyTask { task_id, task });
            }
        }
        batch.delete_timer_tasks = std::mem::take(&mut self.timer_deletes);
        batch.delete_transfer_tasks = std::mem::take(&mut self.transfer_acks);
        // A run written by this batch (terminated for deletion) is deleted by the next one.
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deletes)
            .into_iter()
            .partition(|k| !touched_keys.contains(k));
        self.deletes = later;
        batch.delete_executions = now.clone();
        self.deleting = now;
        effects.replies = std::mem::take(&mut self.replies);
        (batch, effects, touched_keys)
    }

    /// The batch committed: stored versions move on and watchers of changed runs wake.
    pub fn committed(&mut self, touched: &[ExecutionKey]) -> Vec<Answer> {
        let mut wake = Vec::new();
        for key in std::mem::take(&mut self.deleting) {
            self.uncache_run(&key);
            let ck = (key.namespace_id.clone(), key.workflow_id.clone());
            if self
                .current
                .get(&ck)
                .is_some_and(|c| c.run_id == key.run_id)
            {
                self.current.remove(&ck);
            }
        }
        for key in touched {
            if let Some(cached) = self.runs.get_mut(key) {
                cached.stored_version = Some(cached.stored_version.map_or(1, |v| v + 1));
                let ck = (key.namespace_id.clone(), key.workflow_id.clone());
                if let Some(cur) = self.current.get_mut(&ck)
                    && cur.run_id == key.run_id
                {
                    cur.stored_run_id = Some(key.run_id.clone());
                }
            }
            if let Some(list) = self.watchers.remove(key) {
                let state = self.runs.get(key).map(|r| r.wf.state.clone());
                let mut keep = Vec::new();
                for (next, ticket) in list {
                    match &state {
                        Some(s) if s.next_event_id > next || s.close_time_ms != 0 => {
                            wake.push((ticket, Ok(Response::State(Box::new(s.clone())))));
                        }
                        _ => keep.push((next, ticket)),
                    }
                }
                if !keep.is_empty() {
                    self.watchers.insert(key.clone(), keep);
                }
            }
        }
        // The pointers this batch wrote are now stored as cached.
        for ck in std::mem::take(&mut self.committing_current) {
            if let Some(cur) = self.current.get_mut(&ck) {
                cur.stored_run_id = Some(cur.run_id.clone());
            }
        }
        wake.extend(crate::updates::wake(self));
        self.evict();
        wake
    }

    /// The batch failed: cached state of the touched runs is dropped so it reloads from the
    /// store.
    pub fn rolled_back(&mut self, touched: &[ExecutionKey]) {
        let deleting = std::mem::take(&mut self.deleting);
        self.deletes.extend(deleting);
        for key in touched {
            self.uncache_run(key);
            self.current
                .remove(&(key.namespace_id.clone(), key.workflow_id.clone()));
        }
        for ck in std::mem::take(&mut self.committing_current) {
            self.current.remove(&ck);
        }
    }

    /// Evicts the least recently used runs while the cache is past its limits. Runs holding
    /// what lives in memory only (watchers, update callers, buffered queries, a speculative
    /// task, admitted updates) stay; everything else reloads from the store when next needed.
    fn evict(&mut self) {
        let limits = self.cache_limits;
        let mut skipped = 0;
        while (self.runs.len() > limits.runs || self.cache_bytes > limits.bytes)
            && skipped < self.runs.len()
        {
            let Some((_, key)) = self.recency.pop_first() else {
                break;
            };
            if self.pinned(&key) {
                let last_used = self.next_use();
                if let Some(cached) = self.runs.get_mut(&key) {
                    cached.last_used = last_used;
                }
                self.recency.insert(last_used, key);
                skipped += 1;
                continue;
            }
            let Some(cached) = self.runs.remove(&key) else {
                continue;
            };
            self.cache_bytes -= cached.bytes;
            let ck = (key.namespace_id.clone(), key.workflow_id.clone());
            if self
                .current
                .get(&ck)
                .is_some_and(|c| c.run_id == key.run_id && c.stored_run_id.is_some())
            {
                self.current.remove(&ck);
            }
        }
    }

    /// True when a run holds state that is not in the store, so it must stay cached.
    fn pinned(&self, key: &ExecutionKey) -> bool {
        self.watchers.contains_key(key)
            || self.query_buffers.contains_key(key)
            || self.update_waiters.holds(key)
            || self
                .runs
                .get(key)
                .is_some_and(|r| r.wf.has_updates_in_memory() || r.wf.state.has_speculative_task())
    }

    /// How many runs and current-run pointers are cached.
    pub fn cached(&self) -> (usize, usize) {
        (self.runs.len(), self.current.len())
    }

    /// Forgets the waiting callers (watchers, update callers, buffered queries) that `gone`
    /// says went away.
    pub fn forget(&mut self, gone: impl Fn(Ticket) -> bool) {
        self.watchers.retain(|_, list| {
            list.retain(|(_, t)| !gone(*t));
            !list.is_empty()
        });
        self.update_waiters.forget(&gone);
        self.forget_queries(&gone);
    }

    /// A cached run, for changes that live in memory only.
    pub(crate) fn workflow_mut(&mut self, key: &ExecutionKey) -> Option<&mut Workflow> {
        self.runs.get_mut(key).map(|r| &mut r.wf)
    }
}

fn report_activity(
    wf: &mut Workflow,
    target: ActivityTarget,
    report: ActivityReport,
    identity: String,
    env: &Env,
) -> Result<bool> {
    let (scheduled_event_id, attempt) = match target {
        ActivityTarget::Scheduled {
            scheduled_event_id,
            attempt,
        } => (scheduled_event_id, attempt),
        ActivityTarget::Id(id) => {
            let ai = wf
                .activity_by_id(&id)
                .ok_or_else(|| Error::NotFound("Activity task not found.".into()))?;
            (ai.scheduled_event_id, ai.attempt)
        }
    };
    match report {
        ActivityReport::Completed(result) => wf
            .complete_activity(scheduled_event_id, attempt, result, identity, env)
            .map(|_| false),
        ActivityReport::Failed(failure, details) => wf
            .fail_activity(scheduled_event_id, attempt, failure, details, identity, env)
            .map(|_| false),
        ActivityReport::Canceled(details) => wf
            .cancel_activity(scheduled_event_id, attempt, details, identity, env)
            .map(|_| false),
        ActivityReport::Heartbeat(details) => {
            wf.heartbeat_activity(scheduled_event_id, attempt, details, env)
        }
    }
    .map_err(Error::from)
}

fn not_found(run: &RunRef) -> Error {
    if run.run_id.is_empty() {
        Error::NotFound(format!("workflow not found for ID: {}", run.workflow_id))
    } else {
        Error::NotFound(format!(
            "workflow not found for ID: {} and run ID: {}",
            run.workflow_id, run.run_id
        ))
    }
}

#[cfg(test)]
#[path = "shard_core_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "shard_machine_tests.rs"]
mod machine_tests;
