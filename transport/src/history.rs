//! Reading committed history events of a run from the store.

use prost::Message;
use sundial_actors::{Error, History, Result};
use sundial_engine::api::history::v1::{History as HistoryMessage, HistoryEvent};
use sundial_storage::ExecutionKey;

/// Events of a run with ids in `[from, to)`, in order.
pub async fn read_events(
    history: &History,
    key: &ExecutionKey,
    from: i64,
    to: i64,
) -> Result<Vec<HistoryEvent>> {
    if from >= to {
        return Ok(Vec::new());
    }
    let shard = history.shard_id(&key.namespace_id, &key.workflow_id);
    // The batch holding `from` may start before it: its events before `from` are dropped.
    let batches = history
        .store
        .read_history_covering(shard, key, from, to)
        .await?;
    let mut events = Vec::new();
    for batch in batches {
        let decoded = HistoryMessage::decode(batch.events.as_slice())
            .map_err(|e| Error::Unavailable(format!("corrupt history batch: {e}")))?;
        events.extend(
            decoded
                .events
                .into_iter()
                .filter(|e| e.event_id >= from && e.event_id < to),
        );
    }
    Ok(events)
}
