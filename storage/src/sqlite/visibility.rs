//! Visibility on SQLite: the table a run's visibility record lives in, and the translation of a
//! [`Filter`] into a `WHERE` clause over it that lists what [`VisibilityRow::matches`] lists
//! (the tests run both over the same runs and compare).
//!
//! System attributes are columns; the run's predefined and custom attributes are one JSON
//! object (`indexed`), read with `json_extract`, which answers NULL for an attribute the run
//! lacks, so comparisons get SQL's three-valued logic as the reference server's do. KeywordList
//! membership and Text token matches are `EXISTS` over `json_each` (true or false, never
//! unknown); a Text attribute's tokens are kept, lower-cased, in `text_tokens`. Times are
//! integer microseconds since the epoch (the precision Temporal's SQL visibility keeps).

use rusqlite::types::Value as Sql;

use crate::visibility::columns::{Dialect, ListedColumns, Positional, indexed_json};
use crate::visibility::{Attribute, Timestamp, Value, ValueType, VisibilityRow};
#[cfg(test)]
use crate::visibility::{Filter, columns};

/// The visibility table (schema migration 3), with an index in listing order for all
/// runs and one each for a workflow id, type, status and task queue, all after the namespace and
/// its division (`TemporalNamespaceDivision`, NULL for every run but the server's own).
pub(super) const TABLE: &str = "
    CREATE TABLE executions_visibility (
        namespace_id           TEXT    NOT NULL,
        run_id                 TEXT    NOT NULL,
        workflow_id            TEXT    NOT NULL,
        workflow_type          TEXT    NOT NULL,
        task_queue             TEXT    NOT NULL,
        status                 INTEGER NOT NULL,
        start_time             INTEGER NOT NULL,
        execution_time         INTEGER NOT NULL,
        close_time             INTEGER,
        execution_duration     INTEGER,
        history_length         INTEGER,
        history_size_bytes     INTEGER,
        state_transition_count INTEGER,
        parent_workflow_id     TEXT,
        parent_run_id          TEXT,
        root_workflow_id       TEXT    NOT NULL,
        root_run_id            TEXT    NOT NULL,
        memo                   BLOB    NOT NULL,
        search_attributes      BLOB    NOT NULL,
        indexed                TEXT    NOT NULL,
        text_tokens            TEXT    NOT NULL,
        sort_time              INTEGER GENERATED ALWAYS AS
                                   (coalesce(close_time, 9223372036854775807)) VIRTUAL,
        namespace_division     TEXT    GENERATED ALWAYS AS
                                   (json_extract(indexed, '$.TemporalNamespaceDivision')) VIRTUAL,
        PRIMARY KEY (namespace_id, run_id)
    );
    CREATE INDEX executions_visibility_listing
        ON executions_visibility (namespace_id, namespace_division,
            sort_time DESC, start_time DESC, run_id);
    CREATE INDEX executions_visibility_by_workflow_id
        ON executions_visibility (namespace_id, namespace_division,
            workflow_id, sort_time DESC, start_time DESC, run_id);
    CREATE INDEX executions_visibility_by_workflow_type
        ON executions_visibility (namespace_id, namespace_division,
            workflow_type, sort_time DESC, start_time DESC, run_id);
    CREATE INDEX executions_visibility_by_status
        ON executions_visibility (namespace_id, namespace_division,
            status, sort_time DESC, start_time DESC, run_id);
    CREATE INDEX executions_visibility_by_task_queue
        ON executions_visibility (namespace_id, namespace_division,
            task_queue, sort_time DESC, start_time DESC, run_id);";

/// Deletes a run's record (`?1` namespace id, `?2` run id).
pub(super) const DELETE: &str =
    "DELETE FROM executions_visibility WHERE namespace_id = ?1 AND run_id = ?2";

/// Writes (or replaces) a run's record.
pub(super) const UPSERT: &str = "INSERT OR REPLACE INTO executions_visibility (
        namespace_id, run_id, workflow_id, workflow_type, task_queue, status, start_time,
        execution_time, close_time, execution_duration, history_length, history_size_bytes,
        state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id,
        memo, search_attributes, indexed, text_tokens)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
        ?20, ?21)";

/// The parameters of [`UPSERT`] for `row`.
pub(super) fn upsert_params(row: &VisibilityRow) -> Vec<Sql> {
    let text = |s: &str| Sql::Text(s.to_string());
    let optional = |s: &Option<String>| s.as_deref().map_or(Sql::Null, text);
    let (indexed, tokens) = indexed_json(row);
    vec![
        text(&row.namespace_id),
        text(&row.run_id),
        text(&row.workflow_id),
        text(&row.workflow_type),
        text(&row.task_queue),
        Sql::Integer(i64::from(row.status)),
        Sql::Integer(micros(&row.start_time)),
        Sql::Integer(micros(&row.execution_time)),
        row.close_time
            .map_or(Sql::Null, |t| Sql::Integer(micros(&t))),
        row.execution_duration.map_or(Sql::Null, Sql::Integer),
        row.history_length.map_or(Sql::Null, Sql::Integer),
        row.history_size_bytes.map_or(Sql::Null, Sql::Integer),
        row.state_transition_count.map_or(Sql::Null, Sql::Integer),
        optional(&row.parent_workflow_id),
        optional(&row.parent_run_id),
        text(&row.root_workflow_id),
        text(&row.root_run_id),
        Sql::Blob(row.memo.clone()),
        Sql::Blob(row.search_attributes.clone()),
        Sql::Text(indexed),
        Sql::Text(tokens),
    ]
}

fn micros(t: &Timestamp) -> i64 {
    t.unix_micros()
}

impl ListedColumns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn optional_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn status(&self, i: usize) -> rusqlite::Result<i32> {
        self.get(i)
    }
    fn optional_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn bytes(&self, i: usize) -> rusqlite::Result<Vec<u8>> {
        self.get(i)
    }
}

/// A filter as an SQL condition over `executions_visibility`, with its parameters in order
/// (`?` placeholders).
#[cfg(test)]
pub(super) fn condition(filter: &Filter) -> (String, Vec<Sql>) {
    let mut dialect = Positional::default();
    let sql = columns::condition(filter, &mut dialect);
    (sql, dialect.params)
}

impl Positional<Sql> {
    fn text(&mut self, text: &str) -> String {
        self.bind(Sql::Text(text.to_string()))
    }
}

impl Dialect for Positional<Sql> {
    /// With a condition of its own, a count reads its runs from the index that condition
    /// chooses and groups them after (`+` keeps SQLite from walking the whole status index
    /// in group order instead).
    fn grouped(&mut self, expression: String, filtered: bool) -> String {
        if filtered {
            format!("+{expression}")
        } else {
            expression
        }
    }

    fn value(&mut self, value: &Value) -> String {
        self.bind(match value {
            Value::Bool(b) => Sql::Integer(i64::from(*b)),
            Value::Int(i) => Sql::Integer(*i),
            Value::Double(d) => Sql::Real(*d),
            Value::Datetime(t) => Sql::Integer(micros(t)),
            Value::String(s) => Sql::Text(s.clone()),
            Value::Status(s) => Sql::Integer(i64::from(*s)),
        })
    }

    fn indexed(&mut self, attribute: &Attribute) -> String {
        match attribute_expression(&attribute.name) {
            Some(literal) => literal,
            None => {
                let path = self.text(&json_path(&attribute.name));
                format!("json_extract(indexed, {path})")
            }
        }
    }

    fn contains(&mut self, attribute: &Attribute, items: &[String]) -> String {
        if items.is_empty() {
            return "(0)".to_string();
        }
        let source = if attribute.value_type == ValueType::Text {
            "text_tokens"
        } else {
            "indexed"
        };
        let path = self.text(&json_path(&attribute.name));
        let list: Vec<_> = items.iter().map(|i| self.text(i)).collect();
        format!(
            "EXISTS (SELECT 1 FROM json_each({source}, {path}) WHERE value IN ({}))",
            list.join(", ")
        )
    }

    fn starts_with(&mut self, expression: &str, prefix: &str) -> String {
        let length = self.bind(Sql::Integer(prefix.chars().count() as i64));
        let prefix = self.text(prefix);
        format!("substr({expression}, 1, {length}) = {prefix}")
    }
}

/// An attribute's value written with its path as a literal, as its index has it (`None` for a
/// name that cannot be a literal: see [`columns::literal_name`]).
fn attribute_expression(name: &str) -> Option<String> {
    crate::visibility::columns::literal_name(name)
        .then(|| format!("json_extract(indexed, '{}')", json_path(name)))
}

/// The index that filters on a custom attribute read (`None` when it cannot have one).
pub(super) fn attribute_index(name: &str, value_type: ValueType) -> Option<String> {
    if !crate::visibility::columns::indexable(value_type) {
        return None;
    }
    let expression = attribute_expression(name)?;
    // One expression reads every type, so one index serves them all.
    let index = crate::visibility::columns::attribute_index_name(name, "json");
    Some(format!(
        "CREATE INDEX IF NOT EXISTS {index} ON executions_visibility (namespace_id, \
         namespace_division, {expression}, sort_time DESC, start_time DESC, run_id)"
    ))
}

/// The JSON path of an attribute in `indexed` (names may hold any character).
fn json_path(name: &str) -> String {
    format!("$.{}", serde_json::Value::from(name))
}

#[cfg(test)]
mod tests;
