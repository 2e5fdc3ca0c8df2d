//! Visibility on MySQL (MariaDB 10.11 in the tests): the table of a run's visibility record and
//! the filter translation, listing what [`VisibilityRow::matches`] lists (the tests run both
//! on a private server and compare), as `sqlite/visibility.rs` does for SQLite.
//!
//! The predefined and custom attributes are one JSON document (`indexed`), read with
//! `JSON_EXTRACT` (NULL for an attribute the run lacks: comparisons keep SQL's three-valued
//! logic). Numbers compare as `DECIMAL` (exact for integers), strings as bytes (`BINARY`, like
//! the `VARBINARY` key columns). KeywordList membership and Text tokens are `JSON_CONTAINS`,
//! never NULL. Times are integer microseconds since the epoch.

use mysql_async::Value as Sql;

use crate::visibility::columns::{self, Dialect, Positional, indexed_json};
use crate::visibility::{Attribute, Filter, Value, ValueType, VisibilityRow};

/// The visibility table (a schema migration once the shards write it).
pub(super) const TABLE: &str = "
    CREATE TABLE executions_visibility (
        namespace_id           VARBINARY(255)  NOT NULL,
        run_id                 VARBINARY(255)  NOT NULL,
        workflow_id            VARBINARY(1024) NOT NULL,
        workflow_type          VARBINARY(1024) NOT NULL,
        task_queue             VARBINARY(1024) NOT NULL,
        status                 INT             NOT NULL,
        start_time             BIGINT          NOT NULL,
        execution_time         BIGINT          NOT NULL,
        close_time             BIGINT,
        execution_duration     BIGINT,
        history_length         BIGINT          NOT NULL,
        history_size_bytes     BIGINT          NOT NULL,
        state_transition_count BIGINT          NOT NULL,
        parent_workflow_id     VARBINARY(1024),
        parent_run_id          VARBINARY(255),
        root_workflow_id       VARBINARY(1024) NOT NULL,
        root_run_id            VARBINARY(255)  NOT NULL,
        memo                   LONGBLOB        NOT NULL,
        search_attributes      LONGBLOB        NOT NULL,
        indexed                LONGTEXT        NOT NULL CHECK (JSON_VALID(indexed)),
        text_tokens            LONGTEXT        NOT NULL CHECK (JSON_VALID(text_tokens)),
        PRIMARY KEY (namespace_id, run_id)
    ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC";

/// Writes (or replaces) a run's record.
pub(super) const UPSERT: &str = "REPLACE INTO executions_visibility (
        namespace_id, run_id, workflow_id, workflow_type, task_queue, status, start_time,
        execution_time, close_time, execution_duration, history_length, history_size_bytes,
        state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id,
        memo, search_attributes, indexed, text_tokens)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The parameters of [`UPSERT`] for `row`.
pub(super) fn upsert_params(row: &VisibilityRow) -> Vec<Sql> {
    let text = |s: &str| Sql::Bytes(s.as_bytes().to_vec());
    let optional = |s: &Option<String>| s.as_deref().map_or(Sql::NULL, text);
    let integer = |n: Option<i64>| n.map_or(Sql::NULL, Sql::Int);
    let (indexed, tokens) = indexed_json(row);
    vec![
        text(&row.namespace_id),
        text(&row.run_id),
        text(&row.workflow_id),
        text(&row.workflow_type),
        text(&row.task_queue),
        Sql::Int(i64::from(row.status)),
        Sql::Int(row.start_time.unix_micros()),
        Sql::Int(row.execution_time.unix_micros()),
        integer(row.close_time.map(|t| t.unix_micros())),
        integer(row.execution_duration),
        Sql::Int(row.history_length),
        Sql::Int(row.history_size_bytes),
        Sql::Int(row.state_transition_count),
        optional(&row.parent_workflow_id),
        optional(&row.parent_run_id),
        text(&row.root_workflow_id),
        text(&row.root_run_id),
        Sql::Bytes(row.memo.clone()),
        Sql::Bytes(row.search_attributes.clone()),
        text(&indexed),
        text(&tokens),
    ]
}

/// A filter as an SQL condition over `executions_visibility`, with its parameters in order
/// (`?` placeholders).
pub(super) fn condition(filter: &Filter) -> (String, Vec<Sql>) {
    let mut dialect = Positional::default();
    let sql = columns::condition(filter, &mut dialect);
    (sql, dialect.params)
}

impl Positional<Sql> {
    fn text(&mut self, text: &str) -> String {
        self.bind(Sql::Bytes(text.as_bytes().to_vec()))
    }

    /// The JSON path of an attribute (names may hold any character), bound.
    fn path(&mut self, name: &str) -> String {
        self.text(&format!("$.{}", serde_json::Value::from(name)))
    }
}

impl Dialect for Positional<Sql> {
    fn value(&mut self, value: &Value) -> String {
        match value {
            Value::Bool(b) => self.bind(Sql::Int(i64::from(*b))),
            Value::Int(i) => self.bind(Sql::Int(*i)),
            Value::Double(d) => self.bind(Sql::Double(*d)),
            Value::Datetime(t) => self.bind(Sql::Int(t.unix_micros())),
            Value::String(s) => {
                let p = self.text(s);
                format!("CAST({p} AS BINARY)")
            }
            Value::Status(s) => self.bind(Sql::Int(i64::from(*s))),
        }
    }

    fn indexed(&mut self, attribute: &Attribute) -> String {
        let path = self.path(&attribute.name);
        // `JSON_EXTRACT`, not MariaDB's `JSON_VALUE`, which answers NULL for an empty string
        // and 1 for true.
        let json = format!("JSON_EXTRACT(indexed, {path})");
        match attribute.value_type {
            ValueType::Int | ValueType::Double | ValueType::Datetime => {
                format!("CAST({json} AS DECIMAL(65, 10))")
            }
            ValueType::Bool => format!("({json} = 'true')"),
            ValueType::Keyword => format!("CAST(JSON_UNQUOTE({json}) AS BINARY)"),
            // Lists and texts: only `IS NULL` reads them this way.
            ValueType::KeywordList | ValueType::Text => format!("JSON_EXTRACT(indexed, {path})"),
        }
    }

    fn contains(&mut self, attribute: &Attribute, items: &[String]) -> String {
        if items.is_empty() {
            return "FALSE".to_string();
        }
        let source = if attribute.value_type == ValueType::Text {
            "text_tokens"
        } else {
            "indexed"
        };
        let tests: Vec<String> = items
            .iter()
            .map(|item| {
                let item = self.text(item);
                let path = self.path(&attribute.name);
                format!("COALESCE(JSON_CONTAINS({source}, JSON_QUOTE({item}), {path}), 0) = 1")
            })
            .collect();
        format!("({})", tests.join(" OR "))
    }

    fn starts_with(&mut self, expression: &str, prefix: &str) -> String {
        // Bytes: a UTF-8 text starts with a prefix exactly when its first bytes are the
        // prefix's.
        let length = self.bind(Sql::Int(prefix.len() as i64));
        let prefix = self.text(prefix);
        format!("LEFT(CAST({expression} AS BINARY), {length}) = CAST({prefix} AS BINARY)")
    }
}

#[cfg(test)]
mod tests;
