//! Visibility on MySQL (MariaDB 10.11 in the tests): the table of a run's visibility record and
//! the filter translation, listing what [`VisibilityRow::matches`] lists (the tests run both
//! on a private server and compare), as `sqlite/visibility.rs` does for SQLite.
//!
//! The predefined and custom attributes are one JSON document (`indexed`), read with
//! `JSON_EXTRACT` (NULL for an attribute the run lacks: comparisons keep SQL's three-valued
//! logic). Numbers compare as `DECIMAL` (exact for integers), strings as bytes (`BINARY`, like
//! the `VARBINARY` key columns). KeywordList membership and Text tokens are `JSON_CONTAINS`,
//! never NULL. Times are integer microseconds since the epoch.

use mysql_async::prelude::FromValue;
use mysql_async::{Row, Value as Sql};

use super::MysqlStore;
use crate::visibility::columns::{self, Dialect, ListedColumns, Positional, indexed_json};
use crate::visibility::{
    Attribute, Filter, Value, ValueType, VisibilityCount, VisibilityCursor, VisibilityRow,
};
use crate::{Error, Result, VisibilityStore};

/// The visibility table (schema migration 3), with an index in listing order for all
/// runs and one each for a workflow id, type, status and task queue, all after the namespace and
/// its division (`TemporalNamespaceDivision`, NULL for every run but the server's own).
pub(super) const TABLE: &str = "
    CREATE TABLE IF NOT EXISTS executions_visibility (
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
        history_length         BIGINT,
        history_size_bytes     BIGINT,
        state_transition_count BIGINT,
        parent_workflow_id     VARBINARY(1024),
        parent_run_id          VARBINARY(255),
        root_workflow_id       VARBINARY(1024) NOT NULL,
        root_run_id            VARBINARY(255)  NOT NULL,
        memo                   LONGBLOB        NOT NULL,
        search_attributes      LONGBLOB        NOT NULL,
        indexed                LONGTEXT        NOT NULL CHECK (JSON_VALID(indexed)),
        text_tokens            LONGTEXT        NOT NULL CHECK (JSON_VALID(text_tokens)),
        sort_time              BIGINT AS (COALESCE(close_time, 9223372036854775807)) STORED,
        namespace_division     VARBINARY(255) AS
            (JSON_UNQUOTE(JSON_EXTRACT(indexed, '$.TemporalNamespaceDivision'))) STORED,
        PRIMARY KEY (namespace_id, run_id),
        KEY executions_visibility_listing (namespace_id, namespace_division,
            sort_time DESC, start_time DESC, run_id),
        KEY executions_visibility_by_workflow_id (namespace_id, namespace_division,
            workflow_id, sort_time DESC, start_time DESC, run_id),
        KEY executions_visibility_by_workflow_type (namespace_id, namespace_division,
            workflow_type, sort_time DESC, start_time DESC, run_id),
        KEY executions_visibility_by_status (namespace_id, namespace_division,
            status, sort_time DESC, start_time DESC, run_id),
        KEY executions_visibility_by_task_queue (namespace_id, namespace_division,
            task_queue, sort_time DESC, start_time DESC, run_id)
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
        integer(row.history_length),
        integer(row.history_size_bytes),
        integer(row.state_transition_count),
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

/// Deletes a run's record (namespace id, run id).
pub(super) const DELETE: &str =
    "DELETE FROM executions_visibility WHERE namespace_id = ? AND run_id = ?";

impl ListedColumns for Row {
    type Error = Error;
    fn text(&self, i: usize) -> Result<String> {
        get(self, i)
    }
    fn optional_text(&self, i: usize) -> Result<Option<String>> {
        get(self, i)
    }
    fn int(&self, i: usize) -> Result<i64> {
        get(self, i)
    }
    fn status(&self, i: usize) -> Result<i32> {
        get(self, i)
    }
    fn optional_int(&self, i: usize) -> Result<Option<i64>> {
        get(self, i)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        get(self, i)
    }
}

/// Column `i` of `row`, as `T`.
pub(super) fn get<T: FromValue>(row: &Row, i: usize) -> Result<T> {
    match row.get_opt::<T, usize>(i) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(Error::Backend(format!("mysql: column {i}: {e}"))),
        None => Err(Error::Backend(format!("mysql: no column {i}"))),
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

#[async_trait::async_trait]
impl VisibilityStore for MysqlStore {
    async fn index_attribute(&self, _: &str, _: ValueType) -> Result<()> {
        // MariaDB indexes no expressions (only generated columns, one ALTER TABLE each):
        // filters on custom attributes read the records' JSON.
        Ok(())
    }

    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRow>> {
        let (sql, params) = Positional::<Sql>::list(namespace_id, filter, after, limit);
        let rows: Vec<Row> = self.select(&sql, params).await?;
        rows.iter().map(columns::listed_row).collect()
    }

    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&Filter>,
        group_by: Option<&Attribute>,
    ) -> Result<VisibilityCount> {
        let (sql, params) = Positional::<Sql>::count(namespace_id, filter, group_by);
        let rows: Vec<Row> = self.select(&sql, params).await?;
        columns::tally(&rows, group_by)
    }
}

#[cfg(test)]
mod tests;
