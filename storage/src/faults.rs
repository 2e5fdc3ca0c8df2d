//! `FaultInjectingStore`: wraps any store and fails a share of its calls, in the spirit of
//! Temporal's `faultInjection` datastore setting, so that tests can check what matters under
//! storage errors: nothing acknowledged is lost and nothing happens twice.
//!
//! A failed write is injected either before the call (nothing is written) or after it (the
//! write is applied but the caller sees an error: the ambiguous outcome a lost connection
//! gives). Both come back as [`Error::Backend`]. Which calls fail is decided by a seeded
//! generator, so a failing run can be repeated.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::visibility::{Attribute, Filter, VisibilityCount, VisibilityCursor, VisibilityRow};
use crate::{
    ClusterMetadataRow, ClusterMetadataStore, CurrentExecutionRow, DynStore, Error, ExecutionKey,
    ExecutionReader, ExecutionRow, HistoryBatch, MemberRow, MembershipStore, NamespaceRow,
    NamespaceStore, QueueTask, Result, ShardBatch, ShardInfo, ShardStore, TaskQueueKey,
    TaskQueueStore, TimerTaskRow, TransferTaskRow, VisibilityStore,
};

/// Where an injected failure lands relative to the real call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The call is not made.
    Before,
    /// The call is made; its result is replaced by an error.
    After,
}

/// A store that fails a configurable share of calls (see the module doc).
pub struct FaultInjectingStore {
    inner: DynStore,
    /// Failure probability in millionths, per call.
    rate_ppm: AtomicU64,
    /// State of the generator (splitmix64).
    state: AtomicU64,
    injected: AtomicU64,
    /// The operations faults are injected into (`None`: every operation).
    targets: std::sync::RwLock<Option<Vec<&'static str>>>,
}

impl FaultInjectingStore {
    /// Wraps `inner`, failing each call with probability `rate` (0.0 to 1.0), decided by a
    /// generator seeded with `seed`.
    pub fn new(inner: DynStore, rate: f64, seed: u64) -> Arc<Self> {
        let store = Arc::new(Self {
            inner,
            rate_ppm: AtomicU64::new(0),
            state: AtomicU64::new(seed),
            injected: AtomicU64::new(0),
            targets: std::sync::RwLock::new(None),
        });
        store.set_rate(rate);
        store
    }

    /// Changes the failure probability (0.0 turns injection off, 1.0 fails every call).
    pub fn set_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        self.rate_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Injects faults only into the named operations (the trait methods' names, e.g.
    /// `acquire_shard`, `commit`); an empty list means every operation again.
    pub fn set_targets(&self, operations: &[&'static str]) {
        let targets = (!operations.is_empty()).then(|| operations.to_vec());
        *self.targets.write().unwrap_or_else(|p| p.into_inner()) = targets;
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Whether this call fails, and where.
    fn draw(&self, operation: &str) -> Option<Fault> {
        let rate = self.rate_ppm.load(Ordering::Relaxed);
        if rate == 0 {
            return None;
        }
        let targeted = self
            .targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|t| t.contains(&operation));
        if !targeted {
            return None;
        }
        let roll = self.next();
        if roll % 1_000_000 >= rate {
            return None;
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(if (roll >> 32) & 1 == 0 {
            Fault::Before
        } else {
            Fault::After
        })
    }

    /// A read: an injected failure replaces the call.
    async fn read<T>(&self, operation: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        match self.draw(operation) {
            Some(_) => Err(injected(operation)),
            None => call.await,
        }
    }

    /// A write: an injected failure comes before the call or after it.
    async fn write<T>(&self, operation: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        match self.draw(operation) {
            Some(Fault::Before) => Err(injected(operation)),
            Some(Fault::After) => {
                call.await?;
                Err(injected(operation))
            }
            None => call.await,
        }
    }
}

fn injected(operation: &str) -> Error {
    Error::Backend(format!("injected fault in {operation}"))
}

#[async_trait]
impl ShardStore for FaultInjectingStore {
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo> {
        self.write("acquire_shard", self.inner.acquire_shard(shard_id, owner))
            .await
    }

    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64> {
        let call = self.inner.renew_shard(shard_id, expected_range_id, owner);
        self.write("renew_shard", call).await
    }

    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>> {
        self.read("get_shard", self.inner.get_shard(shard_id)).await
    }

    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()> {
        let call = self.inner.commit(shard_id, expected_range_id, batch);
        self.write("commit", call).await
    }
}

#[async_trait]
impl ExecutionReader for FaultInjectingStore {
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>> {
        let call = self.inner.get_execution(shard_id, key);
        self.read("get_execution", call).await
    }

    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>> {
        let call = self
            .inner
            .get_current_execution(shard_id, namespace_id, workflow_id);
        self.read("get_current_execution", call).await
    }

    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        let call = self
            .inner
            .read_history(shard_id, key, min_event_id, max_event_id);
        self.read("read_history", call).await
    }

    async fn read_history_covering(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from_event_id: i64,
        to_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        let call = self
            .inner
            .read_history_covering(shard_id, key, from_event_id, to_event_id);
        self.read("read_history_covering", call).await
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
        self.read("list_transfer_tasks", call).await
    }

    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>> {
        let call = self.inner.list_timer_tasks(shard_id, until_ms, limit);
        self.read("list_timer_tasks", call).await
    }

    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>> {
        let call = self.inner.list_executions(shard_id, limit);
        self.read("list_executions", call).await
    }
}

#[async_trait]
impl ClusterMetadataStore for FaultInjectingStore {
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow> {
        let call = self.inner.cluster_metadata(proposed);
        self.write("cluster_metadata", call).await
    }

    fn persistence_store(&self) -> &'static str {
        self.inner.persistence_store()
    }
}

#[async_trait]
impl MembershipStore for FaultInjectingStore {
    async fn upsert_member(&self, member: MemberRow) -> Result<()> {
        let call = self.inner.upsert_member(member);
        self.write("upsert_member", call).await
    }

    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>> {
        let call = self.inner.list_members(role, alive_since_ms);
        self.read("list_members", call).await
    }

    async fn prune_members(&self, now_ms: i64) -> Result<()> {
        let call = self.inner.prune_members(now_ms);
        self.write("prune_members", call).await
    }
}

#[async_trait]
impl NamespaceStore for FaultInjectingStore {
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()> {
        let call = self.inner.create_namespace(record);
        self.write("create_namespace", call).await
    }

    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()> {
        let call = self.inner.update_namespace(record, expected_version);
        self.write("update_namespace", call).await
    }

    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>> {
        let call = self.inner.get_namespace_by_name(name);
        self.read("get_namespace_by_name", call).await
    }

    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>> {
        let call = self.inner.get_namespace_by_id(id);
        self.read("get_namespace_by_id", call).await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>> {
        self.read("list_namespaces", self.inner.list_namespaces())
            .await
    }
}

#[async_trait]
impl VisibilityStore for FaultInjectingStore {
    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRow>> {
        let call = self
            .inner
            .list_visibility(namespace_id, filter, after, limit);
        self.read("list_visibility", call).await
    }

    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        group_by: Option<&Attribute>,
    ) -> Result<VisibilityCount> {
        let call = self.inner.count_visibility(namespace_id, filter, group_by);
        self.read("count_visibility", call).await
    }

    async fn index_attribute(
        &self,
        name: &str,
        value_type: crate::visibility::ValueType,
    ) -> Result<()> {
        self.inner.index_attribute(name, value_type).await
    }
}

#[async_trait]
impl TaskQueueStore for FaultInjectingStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64> {
        self.write("lease_task_queue", self.inner.lease_task_queue(key))
            .await
    }

    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()> {
        let call = self.inner.create_tasks(key, range_id, tasks);
        self.write("create_tasks", call).await
    }

    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>> {
        let call = self.inner.get_tasks(key, after_task_id, limit);
        self.read("get_tasks", call).await
    }

    async fn delete_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        task_ids: &[i64],
    ) -> Result<()> {
        let call = self.inner.delete_tasks(key, range_id, task_ids);
        self.write("delete_tasks", call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    fn key() -> TaskQueueKey {
        TaskQueueKey {
            namespace_id: "ns".into(),
            name: "q".into(),
            task_type: 1,
            partition: 0,
        }
    }

    #[tokio::test]
    async fn fails_about_the_configured_share_of_calls() {
        let store = FaultInjectingStore::new(Arc::new(MemoryStore::new()), 0.05, 7);
        let failed = {
            let mut failed = 0;
            for _ in 0..10_000 {
                if store.list_namespaces().await.is_err() {
                    failed += 1;
                }
            }
            failed
        };
        assert!((350..650).contains(&failed), "{failed} of 10000 failed");
        assert_eq!(store.injected(), failed);
    }

    #[tokio::test]
    async fn a_fault_after_a_write_applies_it_and_reports_an_error() {
        let inner: DynStore = Arc::new(MemoryStore::new());
        let store = FaultInjectingStore::new(inner.clone(), 1.0, 1);
        let range_id = inner.lease_task_queue(&key()).await.unwrap();
        let (mut before, mut after) = (0, 0);
        for task_id in 1..=200 {
            let task = QueueTask {
                task_id,
                data: vec![],
            };
            assert!(
                store
                    .create_tasks(&key(), range_id, vec![task])
                    .await
                    .is_err()
            );
            let stored = inner.get_tasks(&key(), task_id - 1, 1).await.unwrap();
            match stored.first() {
                Some(t) if t.task_id == task_id => after += 1,
                _ => before += 1,
            }
        }
        assert!(before > 50 && after > 50, "before {before}, after {after}");
    }

    #[tokio::test]
    async fn only_targeted_operations_fail() {
        let store = FaultInjectingStore::new(Arc::new(MemoryStore::new()), 1.0, 5);
        store.set_targets(&["acquire_shard"]);
        assert!(store.acquire_shard(1, "owner-a").await.is_err());
        store.list_namespaces().await.unwrap();
        store.set_targets(&[]);
        assert!(store.list_namespaces().await.is_err());
    }

    #[tokio::test]
    async fn rate_zero_passes_everything_through() {
        let store = FaultInjectingStore::new(Arc::new(MemoryStore::new()), 0.0, 3);
        for _ in 0..1_000 {
            store.list_namespaces().await.unwrap();
        }
        assert_eq!(store.injected(), 0);
    }
}
