//! The in-memory backend: every table is a map behind one mutex, so a commit is trivially
//! atomic. Used by tests and by `server start-dev` without `--db-filename`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::visibility::{
    Attribute, Filter, GroupValue, VisibilityCount, VisibilityCursor, VisibilityRow,
};
use crate::{
    ClusterMetadataRow, ClusterMetadataStore, CurrentExecutionRow, Error, ExecutionKey,
    ExecutionReader, ExecutionRow, HistoryBatch, MemberRow, MembershipStore, NamespaceRow,
    NamespaceStore, QueueTask, Result, ShardBatch, ShardInfo, ShardStore, TaskQueueKey,
    TaskQueueStore, TimerTaskRow, TransferTaskRow, VisibilityStore,
};

type CurrentKey = (i32, String, String);

#[derive(Default)]
struct Tables {
    shards: BTreeMap<i32, ShardInfo>,
    executions: BTreeMap<(i32, ExecutionKey), ExecutionRow>,
    current: BTreeMap<CurrentKey, CurrentExecutionRow>,
    history: BTreeMap<(i32, ExecutionKey, i64), HistoryBatch>,
    transfer: BTreeMap<(i32, i64), TransferTaskRow>,
    timers: BTreeMap<(i32, i64, i64), TimerTaskRow>,
    namespaces: BTreeMap<String, NamespaceRow>,
    cluster_metadata: BTreeMap<String, ClusterMetadataRow>,
    task_queues: BTreeMap<TaskQueueKey, i64>,
    tasks: BTreeMap<(TaskQueueKey, i64), QueueTask>,
    /// Visibility records by namespace id and run id.
    visibility: BTreeMap<(String, String), VisibilityRow>,
    /// Membership rows by host id and role.
    members: BTreeMap<(String, String), MemberRow>,
}

/// A store that lives in this process only.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Checks every condition of `batch` against `t` without changing anything.
fn check_conditions(t: &Tables, shard_id: i32, batch: &ShardBatch) -> Result<()> {
    for w in &batch.current_executions {
        let key = (
            shard_id,
            w.row.namespace_id.clone(),
            w.row.workflow_id.clone(),
        );
        let stored = t.current.get(&key).map(|r| r.run_id.as_str());
        if stored != w.expected_run_id.as_deref() {
            return Err(Error::ConditionFailed(format!(
                "current run of {}: expected {:?}, found {:?}",
                w.row.workflow_id, w.expected_run_id, stored
            )));
        }
    }
    for w in &batch.executions {
        let stored = t
            .executions
            .get(&(shard_id, w.row.key.clone()))
            .map(|r| r.db_version);
        if stored != w.expected_db_version {
            return Err(Error::ConditionFailed(format!(
                "execution {}/{}: expected db_version {:?}, found {:?}",
                w.row.key.workflow_id, w.row.key.run_id, w.expected_db_version, stored
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl ShardStore for MemoryStore {
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo> {
        let mut t = self.lock();
        let shard = t.shards.entry(shard_id).or_insert(ShardInfo {
            shard_id,
            range_id: 0,
            owner: String::new(),
            data: Vec::new(),
        });
        shard.range_id += 1;
        shard.owner = owner.to_string();
        Ok(shard.clone())
    }

    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64> {
        let mut t = self.lock();
        match t.shards.get_mut(&shard_id) {
            Some(shard) if shard.range_id == expected_range_id => {
                shard.range_id += 1;
                shard.owner = owner.to_string();
                Ok(shard.range_id)
            }
            found => Err(Error::ShardOwnershipLost {
                shard_id,
                expected: expected_range_id,
                actual: found.map_or(0, |s| s.range_id),
            }),
        }
    }

    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>> {
        Ok(self.lock().shards.get(&shard_id).cloned())
    }

    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()> {
        let mut t = self.lock();
        let actual = t.shards.get(&shard_id).map_or(0, |s| s.range_id);
        if actual != expected_range_id {
            return Err(Error::ShardOwnershipLost {
                shard_id,
                expected: expected_range_id,
                actual,
            });
        }
        check_conditions(&t, shard_id, &batch)?;
        for w in batch.current_executions {
            let key = (
                shard_id,
                w.row.namespace_id.clone(),
                w.row.workflow_id.clone(),
            );
            t.current.insert(key, w.row);
        }
        for w in batch.executions {
            t.executions.insert((shard_id, w.row.key.clone()), w.row);
        }
        for h in batch.history {
            // Same first event id: the write with the higher (or equal) txn_id wins.
            let slot = t.history.entry((shard_id, h.key, h.batch.first_event_id));
            match slot {
                Entry::Occupied(mut e) if e.get().txn_id <= h.batch.txn_id => {
                    e.insert(h.batch);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert(h.batch);
                }
            }
        }
        for task in batch.transfer_tasks {
            t.transfer.insert((shard_id, task.task_id), task);
        }
        for task in batch.timer_tasks {
            t.timers
                .insert((shard_id, task.fire_time_ms, task.task_id), task);
        }
        for id in batch.delete_transfer_tasks {
            t.transfer.remove(&(shard_id, id));
        }
        for (fire, id) in batch.delete_timer_tasks {
            t.timers.remove(&(shard_id, fire, id));
        }
        if let Some(data) = batch.shard_data
            && let Some(shard) = t.shards.get_mut(&shard_id)
        {
            shard.data = data;
        }
        for row in batch.visibility {
            t.visibility
                .insert((row.namespace_id.clone(), row.run_id.clone()), row);
        }
        for key in batch.delete_executions {
            t.visibility
                .remove(&(key.namespace_id.clone(), key.run_id.clone()));
            t.executions.remove(&(shard_id, key.clone()));
            t.history
                .retain(|(s, k, _), _| !(*s == shard_id && *k == key));
            let current = (shard_id, key.namespace_id.clone(), key.workflow_id.clone());
            if t.current
                .get(&current)
                .is_some_and(|c| c.run_id == key.run_id)
            {
                t.current.remove(&current);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ExecutionReader for MemoryStore {
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>> {
        Ok(self
            .lock()
            .executions
            .get(&(shard_id, key.clone()))
            .cloned())
    }

    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>> {
        let key = (shard_id, namespace_id.to_string(), workflow_id.to_string());
        Ok(self.lock().current.get(&key).cloned())
    }

    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        if min_event_id >= max_event_id {
            return Ok(Vec::new());
        }
        let t = self.lock();
        let from = (shard_id, key.clone(), min_event_id);
        let to = (shard_id, key.clone(), max_event_id);
        Ok(t.history.range(from..to).map(|(_, b)| b.clone()).collect())
    }

    async fn read_history_covering(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from_event_id: i64,
        to_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        if from_event_id >= to_event_id {
            return Ok(Vec::new());
        }
        let t = self.lock();
        let run_start = (shard_id, key.clone(), i64::MIN);
        let from = (shard_id, key.clone(), from_event_id);
        let to = (shard_id, key.clone(), to_event_id);
        let holding = t
            .history
            .range(run_start..=from.clone())
            .next_back()
            .map(|(k, _)| k.clone())
            .unwrap_or(from);
        Ok(t.history
            .range(holding..to)
            .map(|(_, b)| b.clone())
            .collect())
    }

    async fn list_transfer_tasks(
        &self,
        shard_id: i32,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<TransferTaskRow>> {
        let t = self.lock();
        Ok(t.transfer
            .range((shard_id, after_task_id.saturating_add(1))..(shard_id + 1, i64::MIN))
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>> {
        let t = self.lock();
        Ok(t.timers
            .range((shard_id, i64::MIN, i64::MIN)..(shard_id + 1, i64::MIN, i64::MIN))
            .filter(|(_, v)| v.fire_time_ms <= until_ms)
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>> {
        let t = self.lock();
        Ok(t.executions
            .iter()
            .filter(|((s, _), _)| *s == shard_id)
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect())
    }
}

#[async_trait]
impl ClusterMetadataStore for MemoryStore {
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow> {
        let mut t = self.lock();
        let row = t
            .cluster_metadata
            .entry(proposed.cluster_name.clone())
            .or_insert(proposed);
        Ok(row.clone())
    }

    fn persistence_store(&self) -> &'static str {
        "memory"
    }
}

#[async_trait]
impl MembershipStore for MemoryStore {
    async fn upsert_member(&self, member: MemberRow) -> Result<()> {
        let key = (member.host_id.clone(), member.role.clone());
        self.lock().members.insert(key, member);
        Ok(())
    }

    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>> {
        let mut members: Vec<MemberRow> = self
            .lock()
            .members
            .values()
            .filter(|m| m.role == role && m.last_heartbeat_ms >= alive_since_ms)
            .cloned()
            .collect();
        members.sort_by(|a, b| {
            (b.session_start_ms, &b.host_id).cmp(&(a.session_start_ms, &a.host_id))
        });
        Ok(members)
    }

    async fn prune_members(&self, now_ms: i64) -> Result<()> {
        self.lock()
            .members
            .retain(|_, m| m.record_expiry_ms >= now_ms);
        Ok(())
    }
}

#[async_trait]
impl NamespaceStore for MemoryStore {
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()> {
        let mut t = self.lock();
        if t.namespaces.contains_key(&record.id)
            || t.namespaces.values().any(|n| n.name == record.name)
        {
            return Err(Error::AlreadyExists(format!("namespace {}", record.name)));
        }
        t.namespaces.insert(record.id.clone(), record);
        Ok(())
    }

    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()> {
        let mut t = self.lock();
        let Some(stored) = t.namespaces.get(&record.id) else {
            return Err(Error::NotFound(format!("namespace {}", record.id)));
        };
        if stored.notification_version != expected_version {
            return Err(Error::ConditionFailed(format!(
                "namespace {}: expected version {expected_version}, found {}",
                record.name, stored.notification_version
            )));
        }
        if t.namespaces
            .values()
            .any(|n| n.name == record.name && n.id != record.id)
        {
            return Err(Error::AlreadyExists(format!("namespace {}", record.name)));
        }
        t.namespaces.insert(record.id.clone(), record);
        Ok(())
    }

    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>> {
        Ok(self
            .lock()
            .namespaces
            .values()
            .find(|n| n.name == name)
            .cloned())
    }

    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>> {
        Ok(self.lock().namespaces.get(id).cloned())
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>> {
        let mut all: Vec<_> = self.lock().namespaces.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
}

fn check_lease(t: &Tables, key: &TaskQueueKey, range_id: i64) -> Result<()> {
    let actual = t.task_queues.get(key).copied().unwrap_or(0);
    if actual != range_id {
        return Err(Error::TaskQueueLeaseLost {
            expected: range_id,
            actual,
        });
    }
    Ok(())
}

#[async_trait]
impl TaskQueueStore for MemoryStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64> {
        let mut t = self.lock();
        let range = t.task_queues.entry(key.clone()).or_insert(0);
        *range += 1;
        Ok(*range)
    }

    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()> {
        let mut t = self.lock();
        check_lease(&t, key, range_id)?;
        for task in tasks {
            t.tasks.insert((key.clone(), task.task_id), task);
        }
        Ok(())
    }

    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>> {
        let t = self.lock();
        Ok(t.tasks
            .range((key.clone(), after_task_id.saturating_add(1))..=(key.clone(), i64::MAX))
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn delete_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        task_ids: &[i64],
    ) -> Result<()> {
        let mut t = self.lock();
        check_lease(&t, key, range_id)?;
        for id in task_ids {
            t.tasks.remove(&(key.clone(), *id));
        }
        Ok(())
    }
}

impl Tables {
    /// The records of `namespace_id` that `filter` lists.
    fn listed<'a>(
        &'a self,
        namespace_id: &'a str,
        filter: Option<&'a Filter>,
    ) -> impl Iterator<Item = &'a VisibilityRow> {
        let from = (namespace_id.to_string(), String::new());
        self.visibility
            .range(from..)
            .take_while(move |((ns, _), _)| ns == namespace_id)
            .map(|(_, row)| row)
            .filter(move |row| filter.is_none_or(|f| row.matches(f)))
    }
}

#[async_trait]
impl VisibilityStore for MemoryStore {
    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRow>> {
        let t = self.lock();
        let mut rows: Vec<(VisibilityCursor, &VisibilityRow)> = t
            .listed(namespace_id, filter)
            .map(|row| (row.cursor(), row))
            .filter(|(cursor, _)| after.is_none_or(|a| a.listing_order(cursor).is_lt()))
            .collect();
        rows.sort_by(|a, b| a.0.listing_order(&b.0));
        Ok(rows
            .into_iter()
            .take(limit)
            .map(|(_, row)| VisibilityRow {
                indexed: Default::default(),
                ..row.clone()
            })
            .collect())
    }

    async fn index_attribute(&self, _: &str, _: crate::visibility::ValueType) -> Result<()> {
        // Filters read every record of the namespace: there is nothing to index.
        Ok(())
    }

    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        group_by: Option<&Attribute>,
    ) -> Result<VisibilityCount> {
        let t = self.lock();
        let mut count = VisibilityCount::default();
        let mut groups: BTreeMap<GroupValue, i64> = BTreeMap::new();
        for row in t.listed(namespace_id, filter) {
            count.total += 1;
            if let Some(attribute) = group_by {
                *groups.entry(GroupValue::of(row, attribute)).or_default() += 1;
            }
        }
        count.groups = groups.into_iter().collect();
        Ok(count)
    }
}
