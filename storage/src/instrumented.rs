//! [`InstrumentedStore`]: a wrapper around any [`DynStore`] that records Temporal's persistence
//! metrics for every call and, when the caller is inside a trace, one span per call.
//!
//! Metrics (names and tags as Temporal's `common/persistence/persistence_metric_clients.go`):
//! `persistence_requests`, `persistence_errors` (every error but the expected `NotFound` and
//! `AlreadyExists`), `persistence_error_with_type` (tag `error_type`) and `persistence_latency`
//! (seconds), each tagged `operation`, `namespace` and `service_name`.
//!
//! Trait methods map onto Temporal's operation names:
//!
//! | method | `operation` | `service_name` | `namespace` |
//! |---|---|---|---|
//! | `acquire_shard` | `GetOrCreateShard` | history | `system` |
//! | `commit` creating a run | `CreateWorkflowExecution` | history | the batch's, else `_unknown_` |
//! | `commit` updating runs | `UpdateWorkflowExecution` | history | the batch's, else `_unknown_` |
//! | `commit` writing no run (task acks) | `CompleteHistoryTask` | history | `system` |
//! | `get_execution` | `GetWorkflowExecution` | history | the run's |
//! | `get_current_execution` | `GetCurrentExecution` | history | the run's |
//! | `read_history` | `ReadHistoryBranch` | history | the run's |
//! | `list_transfer_tasks` | `GetTransferTasks` | history | `system` |
//! | `list_timer_tasks` | `GetTimerTasks` | history | `system` |
//! | `list_executions` | `ListConcreteExecutions` | history | `system` |
//! | `create_namespace` | `CreateNamespace` | frontend | `system` |
//! | `update_namespace` | `UpdateNamespace` | frontend | `system` |
//! | `get_namespace_by_name` / `_by_id` | `GetNamespace` | frontend | the namespace's |
//! | `list_namespaces` | `ListNamespaces` | frontend | `system` |
//! | `lease_task_queue` | `UpdateTaskQueue` | matching | the queue's |
//! | `create_tasks` | `CreateTasks` | matching | the queue's |
//! | `get_tasks` | `GetTasks` | matching | the queue's |
//! | `delete_tasks` | `CompleteTask` | matching | the queue's |
//!
//! Namespace names are learnt from the namespace rows that pass through the wrapper (the
//! frontend resolves every request's namespace through it); an id not seen yet is tagged
//! `_unknown_`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

use crate::visibility::{Attribute, Filter, VisibilityCount, VisibilityCursor, VisibilityRow};
use crate::*;

/// Latency buckets in seconds, as Temporal's default timer histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
    200.0, 500.0, 1000.0,
];

const SYSTEM: &str = "system";
const UNKNOWN: &str = "_unknown_";

/// Namespace id → name, learnt from the namespace rows a wrapper sees; shareable with other
/// code that tags metrics by namespace name.
pub type NamespaceNames = Arc<RwLock<HashMap<String, String>>>;

struct Instruments {
    requests: Counter<u64>,
    errors: Counter<u64>,
    error_with_type: Counter<u64>,
    latency: Histogram<f64>,
}

/// A store that measures the store it wraps. Cheap to call: one clock read and a few counter
/// updates per call; spans only inside an active trace.
pub struct InstrumentedStore {
    inner: DynStore,
    instruments: Instruments,
    tracer: Option<Arc<BoxedTracer>>,
    names: NamespaceNames,
    /// The roles the process runs; empty for all of them.
    roles: Vec<&'static str>,
}

/// The `error_type` tag of a storage error, named like Temporal's persistence errors.
pub fn error_type(e: &Error) -> &'static str {
    match e {
        Error::ShardOwnershipLost { .. } => "persistence_ShardOwnershipLostError",
        Error::TaskQueueLeaseLost { .. } | Error::ConditionFailed(_) => {
            "persistence_ConditionFailedError"
        }
        Error::AlreadyExists(_) => "serviceerror_AlreadyExists",
        Error::NotFound(_) => "serviceerror_NotFound",
        Error::Backend(_) | Error::Unavailable(_) => "serviceerror_Unavailable",
    }
}

impl InstrumentedStore {
    /// Wraps `inner`; metrics go to `meter`, spans (when the caller is traced) to `tracer`, and
    /// the namespace names seen are recorded in `names`.
    pub fn new(
        inner: DynStore,
        meter: &Meter,
        tracer: Option<Arc<BoxedTracer>>,
        names: NamespaceNames,
    ) -> Self {
        Self {
            inner,
            instruments: Instruments {
                requests: meter.u64_counter("persistence_requests").build(),
                errors: meter.u64_counter("persistence_errors").build(),
                error_with_type: meter.u64_counter("persistence_error_with_type").build(),
                latency: meter
                    .f64_histogram("persistence_latency")
                    .with_boundaries(LATENCY_BUCKETS.to_vec())
                    .build(),
            },
            tracer,
            names,
            roles: Vec::new(),
        }
    }

    /// Tags every call with one of `roles`, the roles the process runs: a call made for a role
    /// the process runs is tagged with that role, any other (a history process reading the
    /// namespaces the frontend writes, a matching process keeping its membership row fresh) with
    /// the first of `roles`, so `service_name` always names a role that emitted it. Empty (the
    /// default) stands for a process running every role.
    pub fn for_roles(mut self, roles: Vec<&'static str>) -> Self {
        self.roles = roles;
        self
    }

    /// The `service_name` of a call made for `role`.
    fn service(&self, role: &'static str) -> &'static str {
        match self.roles.first() {
            Some(first) if !self.roles.contains(&role) => first,
            _ => role,
        }
    }

    fn learn(&self, row: &NamespaceRow) {
        let known = self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.id)
            .is_some_and(|n| *n == row.name);
        if !known {
            self.names
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(row.id.clone(), row.name.clone());
        }
    }

    fn name_of(&self, namespace_id: &str) -> String {
        self.names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace_id)
            .cloned()
            .unwrap_or_else(|| UNKNOWN.to_string())
    }

    async fn observe<T>(
        &self,
        operation: &'static str,
        service: &'static str,
        namespace: String,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let parent = Context::current();
        let span = match &self.tracer {
            Some(tracer) if parent.has_active_span() => Some(
                tracer
                    .span_builder(format!("persistence {operation}"))
                    .with_kind(SpanKind::Internal)
                    .with_attributes([KeyValue::new("operation", operation)])
                    .start_with_context(tracer.as_ref(), &parent),
            ),
            _ => None,
        };
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed().as_secs_f64();
        let tags = [
            KeyValue::new("operation", operation),
            KeyValue::new("namespace", namespace),
            KeyValue::new("service_name", self.service(service)),
        ];
        let i = &self.instruments;
        i.requests.add(1, &tags);
        i.latency.record(elapsed, &tags);
        if let Err(e) = &result {
            if !matches!(e, Error::NotFound(_) | Error::AlreadyExists(_)) {
                i.errors.add(1, &tags);
            }
            let mut typed = tags.to_vec();
            typed.push(KeyValue::new("error_type", error_type(e)));
            i.error_with_type.add(1, &typed);
        }
        if let Some(mut span) = span {
            if let Err(e) = &result {
                span.set_status(Status::error(e.to_string()));
            }
            span.end();
        }
        result
    }

    fn batch_namespace(&self, batch: &ShardBatch) -> String {
        let mut ids = batch
            .executions
            .iter()
            .map(|w| w.row.key.namespace_id.as_str());
        match ids.next() {
            None => SYSTEM.to_string(),
            Some(first) if ids.all(|id| id == first) => self.name_of(first),
            Some(_) => UNKNOWN.to_string(),
        }
    }
}

#[async_trait]
impl ShardStore for InstrumentedStore {
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo> {
        let call = self.inner.acquire_shard(shard_id, owner);
        self.observe("GetOrCreateShard", "history", SYSTEM.into(), call)
            .await
    }

    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64> {
        let call = self.inner.renew_shard(shard_id, expected_range_id, owner);
        self.observe("UpdateShard", "history", SYSTEM.into(), call)
            .await
    }

    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>> {
        let call = self.inner.get_shard(shard_id);
        self.observe("GetShard", "history", SYSTEM.into(), call)
            .await
    }

    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()> {
        let operation = if batch
            .executions
            .iter()
            .any(|w| w.expected_db_version.is_none())
        {
            "CreateWorkflowExecution"
        } else if !batch.executions.is_empty() {
            "UpdateWorkflowExecution"
        } else {
            "CompleteHistoryTask"
        };
        let namespace = self.batch_namespace(&batch);
        let call = self.inner.commit(shard_id, expected_range_id, batch);
        self.observe(operation, "history", namespace, call).await
    }
}

#[async_trait]
impl ExecutionReader for InstrumentedStore {
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>> {
        let ns = self.name_of(&key.namespace_id);
        let call = self.inner.get_execution(shard_id, key);
        self.observe("GetWorkflowExecution", "history", ns, call)
            .await
    }

    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>> {
        let ns = self.name_of(namespace_id);
        let call = self
            .inner
            .get_current_execution(shard_id, namespace_id, workflow_id);
        self.observe("GetCurrentExecution", "history", ns, call)
            .await
    }

    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        let ns = self.name_of(&key.namespace_id);
        let call = self
            .inner
            .read_history(shard_id, key, min_event_id, max_event_id);
        self.observe("ReadHistoryBranch", "history", ns, call).await
    }

    async fn read_history_covering(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from_event_id: i64,
        to_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        let ns = self.name_of(&key.namespace_id);
        let call = self
            .inner
            .read_history_covering(shard_id, key, from_event_id, to_event_id);
        self.observe("ReadHistoryBranch", "history", ns, call).await
    }

    async fn list_transfer_tasks(
        &self,
        shard_id: i32,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<TransferTaskRow>> {
        let call = self
            .inner
            .list_transfer_tasks(shard_id, after_task_id, limit);
        self.observe("GetTransferTasks", "history", SYSTEM.into(), call)
            .await
    }

    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>> {
        let call = self.inner.list_timer_tasks(shard_id, until_ms, limit);
        self.observe("GetTimerTasks", "history", SYSTEM.into(), call)
            .await
    }

    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>> {
        let call = self.inner.list_executions(shard_id, limit);
        self.observe("ListConcreteExecutions", "history", SYSTEM.into(), call)
            .await
    }
}

#[async_trait]
impl ClusterMetadataStore for InstrumentedStore {
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow> {
        let call = self.inner.cluster_metadata(proposed);
        // Temporal's persistence operation that reads and first writes this row.
        self.observe("InitializeClusterMetadata", "frontend", SYSTEM.into(), call)
            .await
    }

    fn persistence_store(&self) -> &'static str {
        self.inner.persistence_store()
    }
}

// Temporal's persistence operations for the membership table.
#[async_trait]
impl MembershipStore for InstrumentedStore {
    async fn upsert_member(&self, member: MemberRow) -> Result<()> {
        let call = self.inner.upsert_member(member);
        self.observe("UpsertClusterMembership", "frontend", SYSTEM.into(), call)
            .await
    }

    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>> {
        let call = self.inner.list_members(role, alive_since_ms);
        self.observe("GetClusterMembers", "frontend", SYSTEM.into(), call)
            .await
    }

    async fn prune_members(&self, now_ms: i64) -> Result<()> {
        let call = self.inner.prune_members(now_ms);
        self.observe("PruneClusterMembership", "frontend", SYSTEM.into(), call)
            .await
    }
}

#[async_trait]
impl NamespaceStore for InstrumentedStore {
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()> {
        self.learn(&record);
        let call = self.inner.create_namespace(record);
        self.observe("CreateNamespace", "frontend", SYSTEM.into(), call)
            .await
    }

    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()> {
        let call = self
            .inner
            .update_namespace(record.clone(), expected_version);
        let result = self
            .observe("UpdateNamespace", "frontend", SYSTEM.into(), call)
            .await;
        if result.is_ok() {
            self.learn(&record);
        }
        result
    }

    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>> {
        let call = self.inner.get_namespace_by_name(name);
        let row = self
            .observe("GetNamespace", "frontend", name.to_string(), call)
            .await?;
        if let Some(row) = &row {
            self.learn(row);
        }
        Ok(row)
    }

    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>> {
        let ns = self.name_of(id);
        let call = self.inner.get_namespace_by_id(id);
        let row = self.observe("GetNamespace", "frontend", ns, call).await?;
        if let Some(row) = &row {
            self.learn(row);
        }
        Ok(row)
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>> {
        let call = self.inner.list_namespaces();
        let rows = self
            .observe("ListNamespaces", "frontend", SYSTEM.into(), call)
            .await?;
        rows.iter().for_each(|r| self.learn(r));
        Ok(rows)
    }
}

#[async_trait]
impl VisibilityStore for InstrumentedStore {
    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRow>> {
        let ns = self.name_of(namespace_id);
        let call = self
            .inner
            .list_visibility(namespace_id, filter, after, limit);
        self.observe("ListWorkflowExecutions", "frontend", ns, call)
            .await
    }

    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        group_by: Option<&Attribute>,
    ) -> Result<VisibilityCount> {
        let ns = self.name_of(namespace_id);
        let call = self.inner.count_visibility(namespace_id, filter, group_by);
        self.observe("CountWorkflowExecutions", "frontend", ns, call)
            .await
    }

    async fn index_attribute(
        &self,
        name: &str,
        value_type: crate::visibility::ValueType,
    ) -> Result<()> {
        let call = self.inner.index_attribute(name, value_type);
        self.observe("AddSearchAttributes", "frontend", String::new(), call)
            .await
    }
}

#[async_trait]
impl TaskQueueStore for InstrumentedStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64> {
        let ns = self.name_of(&key.namespace_id);
        let call = self.inner.lease_task_queue(key);
        self.observe("UpdateTaskQueue", "matching", ns, call).await
    }

    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()> {
        let ns = self.name_of(&key.namespace_id);
        let call = self.inner.create_tasks(key, range_id, tasks);
        self.observe("CreateTasks", "matching", ns, call).await
    }

    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>> {
        let ns = self.name_of(&key.namespace_id);
        let call = self.inner.get_tasks(key, after_task_id, limit);
        self.observe("GetTasks", "matching", ns, call).await
    }

    async fn delete_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        task_ids: &[i64],
    ) -> Result<()> {
        let ns = self.name_of(&key.namespace_id);
        let call = self.inner.delete_tasks(key, range_id, task_ids);
        self.observe("CompleteTask", "matching", ns, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn wraps_calls_without_changing_results() {
        // The global provider is a no-op unless one is installed.
        let meter = opentelemetry::global::meter("test");
        let store = InstrumentedStore::new(
            Arc::new(MemoryStore::new()),
            &meter,
            None,
            Default::default(),
        );
        assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 1);
        assert_eq!(store.get_namespace_by_name("nope").await.unwrap(), None);
        store
            .create_namespace(NamespaceRow {
                id: "id-1".into(),
                name: "default".into(),
                notification_version: 1,
                data: Vec::new(),
            })
            .await
            .unwrap();
        assert_eq!(store.name_of("id-1"), "default");
        assert_eq!(store.name_of("id-2"), UNKNOWN);
        assert!(store.commit(1, 99, ShardBatch::default()).await.is_err());
    }

    #[test]
    fn service_name_is_a_role_the_process_runs() {
        let meter = opentelemetry::global::meter("test");
        let store = || {
            InstrumentedStore::new(
                Arc::new(MemoryStore::new()),
                &meter,
                None,
                Default::default(),
            )
        };
        let every_role = store();
        assert_eq!(every_role.service("frontend"), "frontend");
        assert_eq!(every_role.service("matching"), "matching");
        let matching = store().for_roles(vec!["matching"]);
        assert_eq!(matching.service("matching"), "matching");
        assert_eq!(matching.service("frontend"), "matching");
        let two = store().for_roles(vec!["history", "worker"]);
        assert_eq!(two.service("worker"), "worker");
        assert_eq!(two.service("frontend"), "history");
    }
}
