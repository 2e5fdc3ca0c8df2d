//! Platform limits with Temporal's defaults (reference §3.5). The server fills them from
//! dynamic config (keys named as Temporal names them); the engine only reads them.

/// Limits that decide how a run may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `limit.historyCount.error`: beyond it the run is terminated.
    pub history_count_error: i64,
    /// `limit.historyCount.warn`.
    pub history_count_warn: i64,
    /// `limit.historyCount.suggestContinueAsNew`: workflow tasks then suggest continue-as-new.
    pub history_count_suggest_continue_as_new: i64,
    /// `limit.historySize.error` (bytes).
    pub history_size_error: i64,
    /// `limit.historySize.warn` (bytes).
    pub history_size_warn: i64,
    /// `limit.historySize.suggestContinueAsNew` (bytes).
    pub history_size_suggest_continue_as_new: i64,
    /// `limit.blobSize.error` (bytes): a larger payload is refused.
    pub blob_size_error: i64,
    /// `limit.blobSize.warn` (bytes).
    pub blob_size_warn: i64,
    /// `limit.memoSize.error` (bytes).
    pub memo_size_error: i64,
    /// `limit.numPendingActivities.error`.
    pub pending_activities: i64,
    /// `limit.numPendingChildExecutions.error`.
    pub pending_children: i64,
    /// `limit.numPendingSignals.error`.
    pub pending_signals: i64,
    /// `limit.numPendingCancelRequests.error`.
    pub pending_cancel_requests: i64,
    /// `history.maximumSignalsPerExecution`.
    pub signals_per_execution: i64,
    /// `limit.maxIDLength`.
    pub max_id_length: i64,
    /// `frontend.searchAttributesNumberOfKeysLimit`.
    pub search_attributes_number_of_keys: i64,
    /// `frontend.searchAttributesSizeOfValueLimit` (bytes).
    pub search_attributes_size_of_value: i64,
    /// `frontend.searchAttributesTotalSizeLimit` (bytes).
    pub search_attributes_total_size: i64,
    /// `history.maxInFlightUpdates`: updates admitted or accepted and not completed, per run
    /// (0: no limit).
    pub max_in_flight_updates: i64,
    /// `history.maxTotalUpdates`: updates a run may receive, rejections excluded (0: no limit).
    pub max_total_updates: i64,
}

impl Default for Limits {
    fn default() -> Self {
        const MIB: i64 = 1024 * 1024;
        Self {
            history_count_error: 51_200,
            history_count_warn: 10_240,
            history_count_suggest_continue_as_new: 4_096,
            history_size_error: 50 * MIB,
            history_size_warn: 10 * MIB,
            history_size_suggest_continue_as_new: 4 * MIB,
            blob_size_error: 2 * MIB,
            blob_size_warn: 512 * 1024,
            memo_size_error: 2 * MIB,
            pending_activities: 2_000,
            pending_children: 2_000,
            pending_signals: 2_000,
            pending_cancel_requests: 2_000,
            signals_per_execution: 10_000,
            max_id_length: 1_000,
            search_attributes_number_of_keys: 100,
            search_attributes_size_of_value: 2 * 1024,
            search_attributes_total_size: 40 * 1024,
            max_in_flight_updates: 10,
            max_total_updates: 2_000,
        }
    }
}

impl Limits {
    /// Checks search attributes against the key-count and size limits; the message says which
    /// limit was exceeded.
    pub fn check_search_attributes(
        &self,
        attributes: Option<&temporalio_protos::temporal::api::common::v1::SearchAttributes>,
    ) -> Result<(), String> {
        let Some(attributes) = attributes else {
            return Ok(());
        };
        let count = attributes.indexed_fields.len() as i64;
        if count > self.search_attributes_number_of_keys {
            return Err(format!(
                "number of search attributes {count} exceeds limit {}",
                self.search_attributes_number_of_keys
            ));
        }
        let mut total = 0i64;
        let mut keys: Vec<&String> = attributes.indexed_fields.keys().collect();
        keys.sort();
        for key in keys {
            let size = prost::Message::encoded_len(&attributes.indexed_fields[key]) as i64;
            if size > self.search_attributes_size_of_value {
                return Err(format!(
                    "search attribute {key} value size {size} exceeds size limit {}",
                    self.search_attributes_size_of_value
                ));
            }
            total += size + key.len() as i64;
        }
        if total > self.search_attributes_total_size {
            return Err(format!(
                "total size of search attributes {total} exceeds size limit {}",
                self.search_attributes_total_size
            ));
        }
        Ok(())
    }

    /// Sets the limit a dynamic-config key names; false for a key that is not a limit.
    pub fn set(&mut self, key: &str, value: i64) -> bool {
        let field = match key {
            "limit.historyCount.error" => &mut self.history_count_error,
            "limit.historyCount.warn" => &mut self.history_count_warn,
            "limit.historyCount.suggestContinueAsNew" => {
                &mut self.history_count_suggest_continue_as_new
            }
            "limit.historySize.error" => &mut self.history_size_error,
            "limit.historySize.warn" => &mut self.history_size_warn,
            "limit.historySize.suggestContinueAsNew" => {
                &mut self.history_size_suggest_continue_as_new
            }
            "limit.blobSize.error" => &mut self.blob_size_error,
            "limit.blobSize.warn" => &mut self.blob_size_warn,
            "limit.memoSize.error" => &mut self.memo_size_error,
            "limit.numPendingActivities.error" => &mut self.pending_activities,
            "limit.numPendingChildExecutions.error" => &mut self.pending_children,
            "limit.numPendingSignals.error" => &mut self.pending_signals,
            "limit.numPendingCancelRequests.error" => &mut self.pending_cancel_requests,
            "history.maximumSignalsPerExecution" => &mut self.signals_per_execution,
            "limit.maxIDLength" => &mut self.max_id_length,
            "frontend.searchAttributesNumberOfKeysLimit" => {
                &mut self.search_attributes_number_of_keys
            }
            "frontend.searchAttributesSizeOfValueLimit" => {
                &mut self.search_attributes_size_of_value
            }
            "frontend.searchAttributesTotalSizeLimit" => &mut self.search_attributes_total_size,
            "history.maxInFlightUpdates" => &mut self.max_in_flight_updates,
            "history.maxTotalUpdates" => &mut self.max_total_updates,
            _ => return false,
        };
        *field = value;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_set_their_limit() {
        let mut limits = Limits::default();
        assert!(limits.set("limit.historyCount.suggestContinueAsNew", 50));
        assert_eq!(limits.history_count_suggest_continue_as_new, 50);
        assert!(!limits.set("frontend.rps", 1));
        assert_eq!(Limits::default().pending_activities, 2_000);
    }
}
