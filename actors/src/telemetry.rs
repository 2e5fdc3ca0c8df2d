//! A node's telemetry handle: the OpenTelemetry instruments the actors record into, the tracer
//! for shard spans, and the namespace-name cache that metrics are tagged with.
//!
//! Metric names and tags follow Temporal's (`common/metrics/metric_defs.go`) where the concept
//! is Temporal's; Sundial's own are prefixed by the actor they describe:
//!
//! | metric | kind | tags |
//! |---|---|---|
//! | `workflow_success` `_failed` `_timeout` `_terminate` `_cancel` `_continued_as_new` | counter | namespace, namespace_state, operation=CompletionStats, service_name=history, taskqueue, workflowType |
//! | `workflow_schedule_to_close_latency` | histogram, s | as above |
//! | `task_schedule_to_start_latency` | histogram, s | namespace, operation=RecordWorkflowTaskStarted/RecordActivityTaskStarted, partition=`__normal__`/`__sticky__`, service_name=history, task_type=Workflow/Activity, taskqueue |
//! | `approximate_backlog_count`, `approximate_backlog_age_seconds` | gauge | namespace, namespace_state, operation=TaskQueuePartitionManager, partition, service_name=matching, task_type, taskqueue, worker_* (count also task_priority) |
//! | `shard_commit_batch_size` | histogram, ops per group commit | shard_id |
//! | `shard_commit_latency` | histogram, s | shard_id |
//! | `mailbox_depth` | gauge | actor=history_shard/task_queue_partition |
//! | `mutable_state_cache_hits`, `mutable_state_cache_misses` | counter | — |
//!
//! A disabled handle (the default) records nothing and costs a branch per call.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use prost::Message as _;
use slog::{Logger, debug};
use sundial_engine::MutableState;
use sundial_engine::api::enums::v1::WorkflowExecutionStatus;
use sundial_storage::instrumented::{InstrumentedStore, LATENCY_BUCKETS, NamespaceNames};
use sundial_storage::{DynStore, ExecutionKey, ShardBatch};

/// Buckets of `shard_commit_batch_size` (ops per group commit).
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Which actor a mailbox belongs to (the `actor` tag of `mailbox_depth`).
#[derive(Debug, Clone, Copy)]
pub enum ActorKind {
    /// A `HistoryShard`.
    HistoryShard,
    /// A `TaskQueuePartition`.
    TaskQueuePartition,
}

impl ActorKind {
    fn tag(self) -> &'static str {
        match self {
            ActorKind::HistoryShard => "history_shard",
            ActorKind::TaskQueuePartition => "task_queue_partition",
        }
    }
}

/// The instruments the actors record into.
struct Metrics {
    meter: Meter,
    outcomes: [(WorkflowExecutionStatus, Counter<u64>); 6],
    schedule_to_close: Histogram<f64>,
    schedule_to_start: Histogram<f64>,
    backlog_count: Gauge<i64>,
    backlog_age: Gauge<f64>,
    commit_batch_size: Histogram<u64>,
    commit_latency: Histogram<f64>,
    mailbox_depth: UpDownCounter<i64>,
    cache_hits: Counter<u64>,
    cache_misses: Counter<u64>,
}

impl Metrics {
    fn new(meter: Meter) -> Self {
        use WorkflowExecutionStatus as S;
        let counter = |name: &'static str| meter.u64_counter(name).build();
        let seconds = |name: &'static str| {
            meter
                .f64_histogram(name)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        };
        Self {
            outcomes: [
                (S::Completed, counter("workflow_success")),
                (S::Failed, counter("workflow_failed")),
                (S::TimedOut, counter("workflow_timeout")),
                (S::Terminated, counter("workflow_terminate")),
                (S::Canceled, counter("workflow_cancel")),
                (S::ContinuedAsNew, counter("workflow_continued_as_new")),
            ],
            schedule_to_close: seconds("workflow_schedule_to_close_latency"),
            schedule_to_start: seconds("task_schedule_to_start_latency"),
            backlog_count: meter.i64_gauge("approximate_backlog_count").build(),
            backlog_age: meter.f64_gauge("approximate_backlog_age_seconds").build(),
            commit_batch_size: meter
                .u64_histogram("shard_commit_batch_size")
                .with_boundaries(BATCH_SIZE_BUCKETS.to_vec())
                .build(),
            commit_latency: seconds("shard_commit_latency"),
            mailbox_depth: meter.i64_up_down_counter("mailbox_depth").build(),
            cache_hits: counter("mutable_state_cache_hits"),
            cache_misses: counter("mutable_state_cache_misses"),
            meter,
        }
    }
}

/// A node's telemetry; cheap to clone. [`Telemetry::default`] records nothing.
#[derive(Clone, Default)]
pub struct Telemetry {
    metrics: Option<Arc<Metrics>>,
    tracer: Option<Arc<BoxedTracer>>,
    names: NamespaceNames,
}

/// A task-queue partition as its metrics name it.
pub struct QueueTags<'a> {
    /// Namespace id (resolved to its name).
    pub namespace_id: &'a str,
    /// Task queue name.
    pub task_queue: &'a str,
    /// `TaskQueueType` wire value (1 workflow, 2 activity).
    pub task_type: i32,
    /// True for a sticky queue.
    pub sticky: bool,
}

fn task_type_tag(task_type: i32) -> &'static str {
    match task_type {
        1 => "Workflow",
        2 => "Activity",
        3 => "Nexus",
        _ => "Unspecified",
    }
}

impl Telemetry {
    /// Records metrics into `meter` (when given) and shard spans into `tracer` (when given).
    pub fn new(meter: Option<Meter>, tracer: Option<BoxedTracer>) -> Self {
        Self {
            metrics: meter.map(|m| Arc::new(Metrics::new(m))),
            tracer: tracer.map(Arc::new),
            names: NamespaceNames::default(),
        }
    }

    /// True when anything is recorded.
    pub fn is_enabled(&self) -> bool {
        self.metrics.is_some() || self.tracer.is_some()
    }

    /// The meter, when metrics are on (other layers build their instruments on it).
    pub fn meter(&self) -> Option<&Meter> {
        self.metrics.as_ref().map(|m| &m.meter)
    }

    /// The tracer, when traces are on.
    pub fn tracer(&self) -> Option<&Arc<BoxedTracer>> {
        self.tracer.as_ref()
    }

    /// `store` wrapped so that its calls are measured and traced, or `store` itself when
    /// telemetry is off. `roles` are the roles the process runs (empty for all): every call's
    /// `service_name` is one of them.
    pub fn instrument_store(&self, store: DynStore, roles: Vec<&'static str>) -> DynStore {
        if !self.is_enabled() {
            return store;
        }
        let meter = match self.meter() {
            Some(m) => m.clone(),
            // Traces only: metrics go nowhere (the global provider is a no-op unless set).
            None => opentelemetry::global::meter("sundial-disabled"),
        };
        Arc::new(
            InstrumentedStore::new(store, &meter, self.tracer.clone(), self.names.clone())
                .for_roles(roles),
        )
    }

    /// The name of a namespace id, when seen.
    pub fn namespace_name(&self, namespace_id: &str) -> Option<String> {
        self.names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace_id)
            .cloned()
    }

    fn namespace_tag(&self, namespace_id: &str) -> String {
        self.namespace_name(namespace_id)
            .unwrap_or_else(|| "_unknown_".to_string())
    }

    /// The trace context to hand to an actor with a message: the caller's, when it is traced.
    pub fn caller_context(&self) -> Option<Context> {
        self.tracer.as_ref()?;
        let cx = Context::current();
        cx.has_active_span().then_some(cx)
    }

    /// A message was sent to (`+1`) or taken out of (`-n`) an actor's mailbox.
    pub fn mailbox(&self, actor: ActorKind, delta: i64) {
        if let Some(m) = &self.metrics {
            m.mailbox_depth
                .add(delta, &[KeyValue::new("actor", actor.tag())]);
        }
    }

    /// Runs `call` (a send to an actor) counted in the actor kind's mailbox depth.
    pub async fn in_mailbox<T>(&self, actor: ActorKind, call: impl Future<Output = T>) -> T {
        self.mailbox(actor, 1);
        let out = call.await;
        self.mailbox(actor, -1);
        out
    }

    /// A workflow or activity task was started `started_ms - scheduled_ms` after it was
    /// scheduled (`task_schedule_to_start_latency`).
    pub fn schedule_to_start(&self, queue: QueueTags<'_>, scheduled_ms: i64, started_ms: i64) {
        let Some(m) = &self.metrics else { return };
        if scheduled_ms <= 0 || started_ms < scheduled_ms {
            return;
        }
        let operation = if queue.task_type == 2 {
            "RecordActivityTaskStarted"
        } else {
            "RecordWorkflowTaskStarted"
        };
        let partition = if queue.sticky {
            "__sticky__"
        } else {
            "__normal__"
        };
        m.schedule_to_start.record(
            (started_ms - scheduled_ms) as f64 / 1000.0,
            &[
                KeyValue::new("namespace", self.namespace_tag(queue.namespace_id)),
                KeyValue::new("operation", operation),
                KeyValue::new("partition", partition),
                KeyValue::new("service_name", "history"),
                KeyValue::new("task_type", task_type_tag(queue.task_type)),
                KeyValue::new("taskqueue", queue.task_queue.to_string()),
            ],
        );
    }

    /// The exact backlog of a partition: its length and the age of its oldest task.
    pub fn backlog(&self, queue: QueueTags<'_>, partition: i32, count: usize, age_seconds: f64) {
        let Some(m) = &self.metrics else { return };
        let partition = if queue.sticky {
            "__sticky__".to_string()
        } else {
            partition.to_string()
        };
        let mut tags = vec![
            KeyValue::new("namespace", self.namespace_tag(queue.namespace_id)),
            KeyValue::new("namespace_state", "active"),
            KeyValue::new("operation", "TaskQueuePartitionManager"),
            KeyValue::new("partition", partition),
            KeyValue::new("service_name", "matching"),
            KeyValue::new("task_type", task_type_tag(queue.task_type)),
            KeyValue::new("taskqueue", queue.task_queue.to_string()),
            KeyValue::new("worker_build_id", ""),
            KeyValue::new("worker_deployment_name", ""),
            KeyValue::new("worker_version", "__unversioned__"),
        ];
        m.backlog_age.record(age_seconds, &tags);
        tags.push(KeyValue::new("task_priority", "3"));
        m.backlog_count.record(count as i64, &tags);
    }
}

/// A shard's telemetry: which queued ops were traced, and the batch metrics.
#[derive(Default)]
pub struct ShardTelemetry {
    telemetry: Telemetry,
    shard_tag: Vec<KeyValue>,
    /// (index in the shard's queue, caller context) of traced ops waiting in the queue.
    traced: Vec<(usize, Context)>,
    /// Ops in the queue that were counted into `mailbox_depth` when sent.
    counted: i64,
}

impl ShardTelemetry {
    /// Telemetry of shard `shard_id`.
    pub fn new(telemetry: Telemetry, shard_id: i32) -> Self {
        Self {
            telemetry,
            shard_tag: vec![KeyValue::new("shard_id", shard_id.to_string())],
            ..Self::default()
        }
    }

    /// The node's telemetry, for metrics not of the shard's own.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// An op sent by a caller lands at `queue_index` of the shard's queue.
    pub fn queued(&mut self, queue_index: usize, caller: Option<Context>) {
        self.counted += 1;
        if let Some(cx) = caller {
            self.traced.push((queue_index, cx));
        }
    }

    /// The queue was taken for a batch: its ops leave the mailbox.
    pub fn take_batch(&mut self) -> BatchTrace {
        self.telemetry
            .mailbox(ActorKind::HistoryShard, -std::mem::take(&mut self.counted));
        BatchTrace {
            tracer: self.telemetry.tracer.clone(),
            traced: std::mem::take(&mut self.traced),
            applied: Vec::new(),
        }
    }

    /// Runs and current-run pointers the batch needed: `lookups` in all, `misses` loaded.
    pub fn cache(&self, lookups: usize, misses: usize) {
        if let Some(m) = &self.telemetry.metrics {
            m.cache_misses.add(misses as u64, &[]);
            m.cache_hits.add(lookups.saturating_sub(misses) as u64, &[]);
        }
    }

    /// Prepares the observation of a commit of `batch` (`ops` ops applied): its span, its
    /// latency and size, and the runs it closes.
    pub fn commit(
        &self,
        batch: &ShardBatch,
        trace: &BatchTrace,
        ops: usize,
        log: &Logger,
    ) -> CommitObserver {
        let span_cx = match (&self.telemetry.tracer, trace.applied.first()) {
            (Some(tracer), Some(first)) => {
                let links = trace
                    .applied
                    .iter()
                    .skip(1)
                    .map(|cx| Link::with_context(cx.span().span_context().clone()))
                    .collect();
                let mut attrs = self.shard_tag.clone();
                attrs.push(KeyValue::new("ops", ops as i64));
                let span = tracer
                    .span_builder("shard commit")
                    .with_kind(SpanKind::Internal)
                    .with_attributes(attrs)
                    .with_links(links)
                    .start_with_context(tracer.as_ref(), first);
                Some(first.with_span(span))
            }
            _ => None,
        };
        let closed = match &self.telemetry.metrics {
            Some(_) => closed_runs(batch),
            None => Vec::new(),
        };
        CommitObserver {
            telemetry: self.telemetry.clone(),
            shard_tag: self.shard_tag.clone(),
            ops,
            span_cx,
            closed,
            log: log.clone(),
        }
    }
}

/// The traced ops of one batch and their apply spans.
pub struct BatchTrace {
    tracer: Option<Arc<BoxedTracer>>,
    traced: Vec<(usize, Context)>,
    applied: Vec<Context>,
}

impl BatchTrace {
    /// The context the batch's reads run in: the first traced caller's, if any.
    pub fn parent(&self) -> Context {
        self.traced
            .first()
            .map_or_else(Context::new, |(_, cx)| cx.clone())
    }

    /// Runs `apply` (the application of op number `index` of the batch) inside a
    /// `shard apply` span when that op was traced
    /// (`op` names it, see [`crate::ops::Request::name`]).
    pub fn apply<T>(&mut self, index: usize, op: &'static str, apply: impl FnOnce() -> T) -> T {
        let parent = match (
            &self.tracer,
            self.traced.iter().position(|(i, _)| *i == index),
        ) {
            (Some(_), Some(pos)) => self.traced.swap_remove(pos).1,
            _ => return apply(),
        };
        let tracer = self.tracer.as_ref().expect("checked");
        let span = tracer
            .span_builder("shard apply")
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("op", op)])
            .start_with_context(tracer.as_ref(), &parent);
        let cx = parent.with_span(span);
        let out = apply();
        cx.span().end();
        self.applied.push(cx);
        out
    }
}

/// Observes one commit; see [`ShardTelemetry::commit`].
pub struct CommitObserver {
    telemetry: Telemetry,
    shard_tag: Vec<KeyValue>,
    ops: usize,
    span_cx: Option<Context>,
    closed: Vec<ClosedRun>,
    log: Logger,
}

impl CommitObserver {
    /// Awaits `commit`, recording its latency and size, then (once durable) the outcomes of
    /// the runs it closed. `store` resolves namespace names not cached yet.
    pub async fn run(
        self,
        store: DynStore,
        commit: impl Future<Output = sundial_storage::Result<()>>,
    ) -> sundial_storage::Result<()> {
        let started = Instant::now();
        let result = match &self.span_cx {
            Some(cx) => commit.with_context(cx.clone()).await,
            None => commit.await,
        };
        if let Some(m) = &self.telemetry.metrics {
            m.commit_latency
                .record(started.elapsed().as_secs_f64(), &self.shard_tag);
            m.commit_batch_size.record(self.ops as u64, &self.shard_tag);
        }
        if let Some(cx) = &self.span_cx {
            if let Err(e) = &result {
                cx.span().set_status(Status::error(e.to_string()));
            }
            cx.span().end();
        }
        if result.is_ok() {
            self.closed_runs(store).await;
        }
        result
    }

    async fn closed_runs(&self, store: DynStore) {
        let Some(m) = &self.telemetry.metrics else {
            return;
        };
        for run in &self.closed {
            let namespace = match self.telemetry.namespace_name(&run.key.namespace_id) {
                Some(name) => name,
                None => match store.get_namespace_by_id(&run.key.namespace_id).await {
                    Ok(Some(row)) => row.name,
                    _ => "_unknown_".to_string(),
                },
            };
            debug!(self.log, "workflow closed";
                "namespace" => &namespace, "workflow_id" => &run.key.workflow_id,
                "run_id" => &run.key.run_id, "status" => run.status.as_str_name(),
                "workflow_type" => &run.workflow_type);
            let tags = [
                KeyValue::new("namespace", namespace),
                KeyValue::new("namespace_state", "active"),
                KeyValue::new("operation", "CompletionStats"),
                KeyValue::new("service_name", "history"),
                KeyValue::new("taskqueue", run.task_queue.clone()),
                KeyValue::new("workflowType", run.workflow_type.clone()),
            ];
            if let Some((_, counter)) = m.outcomes.iter().find(|(s, _)| *s == run.status) {
                counter.add(1, &tags);
            }
            m.schedule_to_close.record(run.duration_seconds, &tags);
        }
    }
}

/// A run the batch closes.
struct ClosedRun {
    key: ExecutionKey,
    status: WorkflowExecutionStatus,
    workflow_type: String,
    task_queue: String,
    duration_seconds: f64,
}

/// The two fields of an encoded `MutableState` that say whether (and where) it closed; prost
/// skips the rest without decoding it.
#[derive(Clone, PartialEq, prost::Message)]
struct CloseProbe {
    #[prost(int32, tag = "5")]
    status: i32,
    #[prost(int64, tag = "18")]
    close_event_id: i64,
}

/// Runs whose close event is among the history the batch appends.
fn closed_runs(batch: &ShardBatch) -> Vec<ClosedRun> {
    let mut out = Vec::new();
    for write in &batch.executions {
        let Ok(probe) = CloseProbe::decode(write.row.state.as_slice()) else {
            continue;
        };
        if probe.close_event_id <= 0 {
            continue;
        }
        let closes_here = batch
            .history
            .iter()
            .any(|h| h.key == write.row.key && h.batch.first_event_id <= probe.close_event_id);
        if !closes_here {
            continue;
        }
        let Ok(state) = MutableState::decode(write.row.state.as_slice()) else {
            continue;
        };
        let started = state.started.unwrap_or_default();
        out.push(ClosedRun {
            key: write.row.key.clone(),
            status: WorkflowExecutionStatus::try_from(probe.status)
                .unwrap_or(WorkflowExecutionStatus::Unspecified),
            workflow_type: started.workflow_type.map(|t| t.name).unwrap_or_default(),
            task_queue: started.task_queue.map(|q| q.name).unwrap_or_default(),
            duration_seconds: (state.close_time_ms - state.start_time_ms).max(0) as f64 / 1000.0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_engine::api::common::v1::WorkflowType;
    use sundial_engine::api::history::v1::WorkflowExecutionStartedEventAttributes;
    use sundial_engine::api::taskqueue::v1::TaskQueue;
    use sundial_storage::{ExecutionRow, ExecutionWrite, HistoryAppend, HistoryBatch};

    fn write(run: &str, status: WorkflowExecutionStatus, close_event_id: i64) -> ExecutionWrite {
        let state = MutableState {
            namespace_id: "ns".into(),
            workflow_id: "wf".into(),
            run_id: run.into(),
            status: status as i32,
            close_event_id,
            start_time_ms: 1_000,
            close_time_ms: 3_500,
            started: Some(WorkflowExecutionStartedEventAttributes {
                workflow_type: Some(WorkflowType {
                    name: "Hello".into(),
                }),
                task_queue: Some(TaskQueue {
                    name: "q".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        ExecutionWrite {
            row: ExecutionRow {
                key: key(run),
                state: state.encode_to_vec(),
                db_version: 2,
                next_event_id: close_event_id + 1,
            },
            expected_db_version: Some(1),
        }
    }

    fn key(run: &str) -> ExecutionKey {
        ExecutionKey {
            namespace_id: "ns".into(),
            workflow_id: "wf".into(),
            run_id: run.into(),
        }
    }

    fn append(run: &str, first_event_id: i64) -> HistoryAppend {
        HistoryAppend {
            key: key(run),
            batch: HistoryBatch {
                first_event_id,
                txn_id: 1,
                events: Vec::new(),
            },
        }
    }

    #[test]
    fn a_run_counts_as_closed_only_in_the_batch_that_writes_its_close_event() {
        use WorkflowExecutionStatus as S;
        let batch = ShardBatch {
            executions: vec![
                write("closes-now", S::Completed, 11),
                write("closed-before", S::Failed, 5),
                write("running", S::Running, 0),
            ],
            history: vec![
                append("closes-now", 9),
                append("closed-before", 6),
                append("running", 3),
            ],
            ..Default::default()
        };
        let closed = closed_runs(&batch);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].key.run_id, "closes-now");
        assert_eq!(closed[0].status, S::Completed);
        assert_eq!(closed[0].workflow_type, "Hello");
        assert_eq!(closed[0].task_queue, "q");
        assert_eq!(closed[0].duration_seconds, 2.5);
    }

    #[test]
    fn disabled_telemetry_is_inert() {
        let t = Telemetry::default();
        assert!(!t.is_enabled());
        assert!(t.caller_context().is_none());
        let mut shard = ShardTelemetry::new(t, 1);
        shard.queued(0, None);
        let mut trace = shard.take_batch();
        assert_eq!(trace.apply(0, "Timer", || 7), 7);
    }
}
