//! The order visibility lists runs in, where a page ends, and what a count groups by: shared by
//! every store so pages and counts mean the same on each.
//!
//! Runs are listed as Temporal's SQL visibility lists them: open runs first, then by close time,
//! newest first; then by start time, newest first; then by run id. A page ends at a
//! [`VisibilityCursor`] (the sort key of its last run) and the next page starts after it, so a
//! run that closes between two pages moves but is never listed twice in one position.

use std::cmp::Ordering;

use super::{Attribute, IndexedValue, VisibilityRow};

/// The sort time of an open run: after every close time.
pub const OPEN_SORT_TIME: i64 = i64::MAX;

/// The sort key of a run in a listing; a page ends at its last run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityCursor {
    /// Close time in microseconds, or [`OPEN_SORT_TIME`] while open.
    pub sort_time: i64,
    /// Start time in microseconds.
    pub start_time: i64,
    pub run_id: String,
}

impl VisibilityCursor {
    /// The order of two runs in a listing (`Less` comes first).
    pub fn listing_order(&self, other: &VisibilityCursor) -> Ordering {
        other
            .sort_time
            .cmp(&self.sort_time)
            .then(other.start_time.cmp(&self.start_time))
            .then(self.run_id.as_bytes().cmp(other.run_id.as_bytes()))
    }
}

impl VisibilityRow {
    /// This run's sort key.
    pub fn cursor(&self) -> VisibilityCursor {
        VisibilityCursor {
            sort_time: self.close_time.map_or(OPEN_SORT_TIME, |t| t.unix_micros()),
            start_time: self.start_time.unix_micros(),
            run_id: self.run_id.clone(),
        }
    }
}

/// The value a count groups runs by (`GROUP BY ExecutionStatus`, or a Keyword attribute).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupValue {
    /// A `WorkflowExecutionStatus` number.
    Status(i32),
    Keyword(String),
    /// The run has no value for the attribute.
    Null,
}

impl GroupValue {
    /// The group `row` falls in for `attribute`.
    pub fn of(row: &VisibilityRow, attribute: &Attribute) -> GroupValue {
        if attribute.name == "ExecutionStatus" {
            return GroupValue::Status(row.status);
        }
        match row.indexed.get(&attribute.name) {
            Some(IndexedValue::Keyword(k)) => GroupValue::Keyword(k.clone()),
            _ => GroupValue::Null,
        }
    }
}

/// A count, whole or by group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VisibilityCount {
    pub total: i64,
    /// By group value, ordered by it; empty without `GROUP BY`.
    pub groups: Vec<(GroupValue, i64)>,
}
