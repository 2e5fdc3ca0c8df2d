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

/// The last `count` history batches of a run that end before event `end` (a batch boundary),
/// each batch's events in order, oldest batch first. Reads a window before `end` and widens it
/// until it holds `count` batches or reaches event 1, so a page costs about what it returns.
pub async fn read_batches_before(
    history: &History,
    key: &ExecutionKey,
    end: i64,
    count: usize,
) -> Result<Vec<Vec<HistoryEvent>>> {
    if end <= 1 || count == 0 {
        return Ok(Vec::new());
    }
    let shard = history.shard_id(&key.namespace_id, &key.workflow_id);
    let mut window = count as i64;
    loop {
        let from = (end - window).max(1);
        let stored = history
            .store
            .read_history_covering(shard, key, from, end)
            .await?;
        if stored.len() >= count || from == 1 {
            let skip = stored.len().saturating_sub(count);
            return stored[skip..]
                .iter()
                .map(|batch| {
                    let decoded = HistoryMessage::decode(batch.events.as_slice())
                        .map_err(|e| Error::Unavailable(format!("corrupt history batch: {e}")))?;
                    Ok(decoded
                        .events
                        .into_iter()
                        .filter(|e| e.event_id < end)
                        .collect())
                })
                .collect();
        }
        window = window.saturating_mul(2);
    }
}
