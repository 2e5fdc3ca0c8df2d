//! Legacy queries waiting for a worker's RespondQueryTaskCompleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sundial_engine::api::workflowservice::v1::RespondQueryTaskCompletedRequest;
use tokio::sync::oneshot;

/// Pending queries by id.
#[derive(Clone, Default)]
pub struct Queries {
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<RespondQueryTaskCompletedRequest>>>>,
}

impl Queries {
    /// Registers a query; the receiver gets the worker's answer.
    pub fn register(&self, query_id: &str) -> oneshot::Receiver<RespondQueryTaskCompletedRequest> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(query_id.to_string(), tx);
        rx
    }

    /// Delivers an answer; false when nobody waits for it.
    pub fn answer(&self, query_id: &str, answer: RespondQueryTaskCompletedRequest) -> bool {
        let tx = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(query_id);
        tx.is_some_and(|tx| tx.send(answer).is_ok())
    }

    /// Forgets a query whose caller gave up.
    pub fn forget(&self, query_id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(query_id);
    }
}
