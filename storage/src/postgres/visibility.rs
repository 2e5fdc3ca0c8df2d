//! Visibility on PostgreSQL: the table of a run's visibility record and the translation of a
//! [`Filter`] into a `WHERE` clause over it, listing what [`VisibilityRow::matches`] lists (the
//! tests run both on a private server and compare), as `sqlite/visibility.rs` does for SQLite.
//!
//! The run's predefined and custom attributes are one `jsonb` object (`indexed`): `->` answers
//! NULL for an attribute the run lacks, so comparisons keep SQL's three-valued logic; numbers
//! compare as `numeric` (exact for integers), strings bytewise (`COLLATE "C"`). KeywordList
//! membership and Text tokens (kept lower-cased in `text_tokens`) are `EXISTS` over
//! `jsonb_array_elements_text`. Times are integer microseconds since the epoch.

use deadpool_postgres::tokio_postgres::Row;
use deadpool_postgres::tokio_postgres::types::ToSql;

use super::column;
use crate::Result;
use crate::visibility::columns::{self, Dialect, indexed_json};
use crate::visibility::{Attribute, Filter, Value, ValueType, VisibilityCursor, VisibilityRow};

/// A statement parameter.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// The visibility table (schema migration 4), with an index in listing order for all runs and
/// one each for a workflow id, type, status and task queue, after the namespace. They are partial
/// indexes of the runs without a division (`TemporalNamespaceDivision`, NULL for every run but
/// the server's own), which every listing asks for unless its query names the division:
/// PostgreSQL does not take `IS NULL` on a leading column as fixing it for the order that
/// follows. Runs with a division have an index of their own.
pub(super) const TABLE: &str = r#"
    CREATE TABLE executions_visibility (
        namespace_id           text    COLLATE "C" NOT NULL,
        run_id                 text    COLLATE "C" NOT NULL,
        workflow_id            text    COLLATE "C" NOT NULL,
        workflow_type          text    COLLATE "C" NOT NULL,
        task_queue             text    COLLATE "C" NOT NULL,
        status                 integer NOT NULL,
        start_time             bigint  NOT NULL,
        execution_time         bigint  NOT NULL,
        close_time             bigint,
        execution_duration     bigint,
        history_length         bigint,
        history_size_bytes     bigint,
        state_transition_count bigint,
        parent_workflow_id     text    COLLATE "C",
        parent_run_id          text    COLLATE "C",
        root_workflow_id       text    COLLATE "C" NOT NULL,
        root_run_id            text    COLLATE "C" NOT NULL,
        memo                   bytea   NOT NULL,
        search_attributes      bytea   NOT NULL,
        indexed                jsonb   NOT NULL,
        text_tokens            jsonb   NOT NULL,
        sort_time              bigint  GENERATED ALWAYS AS
                                   (coalesce(close_time, 9223372036854775807)) STORED,
        namespace_division     text    COLLATE "C" GENERATED ALWAYS AS
                                   (indexed ->> 'TemporalNamespaceDivision') STORED,
        PRIMARY KEY (namespace_id, run_id)
    );
    CREATE INDEX executions_visibility_listing
        ON executions_visibility (namespace_id, sort_time DESC, start_time DESC, run_id)
        WHERE namespace_division IS NULL;
    CREATE INDEX executions_visibility_by_workflow_id
        ON executions_visibility (namespace_id, workflow_id, sort_time DESC, start_time DESC, run_id)
        WHERE namespace_division IS NULL;
    CREATE INDEX executions_visibility_by_workflow_type
        ON executions_visibility (namespace_id, workflow_type, sort_time DESC, start_time DESC, run_id)
        WHERE namespace_division IS NULL;
    CREATE INDEX executions_visibility_by_status
        ON executions_visibility (namespace_id, status, sort_time DESC, start_time DESC, run_id)
        WHERE namespace_division IS NULL;
    CREATE INDEX executions_visibility_by_task_queue
        ON executions_visibility (namespace_id, task_queue, sort_time DESC, start_time DESC, run_id)
        WHERE namespace_division IS NULL;
    CREATE INDEX executions_visibility_by_division
        ON executions_visibility (namespace_id, namespace_division,
            sort_time DESC, start_time DESC, run_id)
        WHERE namespace_division IS NOT NULL;"#;

/// Deletes a run's record (`$1` namespace id, `$2` run id).
pub(super) const DELETE: &str =
    "DELETE FROM executions_visibility WHERE namespace_id = $1 AND run_id = $2";

/// Writes (or replaces) a run's record.
pub(super) const UPSERT: &str = "INSERT INTO executions_visibility (
        namespace_id, run_id, workflow_id, workflow_type, task_queue, status, start_time,
        execution_time, close_time, execution_duration, history_length, history_size_bytes,
        state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id,
        memo, search_attributes, indexed, text_tokens)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20::text::jsonb, $21::text::jsonb)
    ON CONFLICT (namespace_id, run_id) DO UPDATE SET
        workflow_id = excluded.workflow_id, workflow_type = excluded.workflow_type,
        task_queue = excluded.task_queue, status = excluded.status,
        start_time = excluded.start_time, execution_time = excluded.execution_time,
        close_time = excluded.close_time, execution_duration = excluded.execution_duration,
        history_length = excluded.history_length,
        history_size_bytes = excluded.history_size_bytes,
        state_transition_count = excluded.state_transition_count,
        parent_workflow_id = excluded.parent_workflow_id,
        parent_run_id = excluded.parent_run_id, root_workflow_id = excluded.root_workflow_id,
        root_run_id = excluded.root_run_id, memo = excluded.memo,
        search_attributes = excluded.search_attributes, indexed = excluded.indexed,
        text_tokens = excluded.text_tokens";

/// The parameters of [`UPSERT`] for `row`.
pub(super) fn upsert_params(row: &VisibilityRow) -> Vec<Param> {
    let (indexed, tokens) = indexed_json(row);
    vec![
        Box::new(row.namespace_id.clone()),
        Box::new(row.run_id.clone()),
        Box::new(row.workflow_id.clone()),
        Box::new(row.workflow_type.clone()),
        Box::new(row.task_queue.clone()),
        Box::new(row.status),
        Box::new(row.start_time.unix_micros()),
        Box::new(row.execution_time.unix_micros()),
        Box::new(row.close_time.map(|t| t.unix_micros())),
        Box::new(row.execution_duration),
        Box::new(row.history_length),
        Box::new(row.history_size_bytes),
        Box::new(row.state_transition_count),
        Box::new(row.parent_workflow_id.clone()),
        Box::new(row.parent_run_id.clone()),
        Box::new(row.root_workflow_id.clone()),
        Box::new(row.root_run_id.clone()),
        Box::new(row.memo.clone()),
        Box::new(row.search_attributes.clone()),
        Box::new(indexed),
        Box::new(tokens),
    ]
}

/// A page of a listing, with its parameters (see [`columns::list_statement`]).
pub(super) fn list(
    namespace_id: &str,
    filter: Option<&Filter>,
    after: Option<&VisibilityCursor>,
    limit: usize,
) -> (String, Vec<Param>) {
    let mut dialect = Postgres::from(1);
    let sql = columns::list_statement(&mut dialect, namespace_id, filter, after, limit);
    (sql, dialect.params)
}

/// A count, with its parameters (see [`columns::count_statement`]).
pub(super) fn count(
    namespace_id: &str,
    filter: Option<&Filter>,
    group_by: Option<&Attribute>,
) -> (String, Vec<Param>) {
    let mut dialect = Postgres::from(1);
    let sql = columns::count_statement(&mut dialect, namespace_id, filter, group_by);
    (sql, dialect.params)
}

impl columns::ListedColumns for Row {
    type Error = crate::Error;
    fn text(&self, i: usize) -> Result<String> {
        column(self, i)
    }
    fn optional_text(&self, i: usize) -> Result<Option<String>> {
        column(self, i)
    }
    fn int(&self, i: usize) -> Result<i64> {
        column(self, i)
    }
    fn status(&self, i: usize) -> Result<i32> {
        column(self, i)
    }
    fn optional_int(&self, i: usize) -> Result<Option<i64>> {
        column(self, i)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        column(self, i)
    }
}

/// A filter as an SQL condition over `executions_visibility`, its parameters numbered from
/// `$first`.
#[cfg(test)]
pub(super) fn condition(filter: &Filter, first: usize) -> (String, Vec<Param>) {
    let mut dialect = Postgres::from(first);
    let sql = columns::condition(filter, &mut dialect);
    (sql, dialect.params)
}

/// An attribute's value in its type, `key` its name as SQL (a literal or a placeholder). A
/// value of another JSON type is NULL, never an error: a name may have other types in other
/// namespaces, and an index of the expression must never fail a write.
fn attribute_expression(key: &str, value_type: ValueType) -> String {
    let typed = |json: &str, sql: &str| {
        format!(
            "(CASE WHEN jsonb_typeof(indexed -> {key}) = '{json}' \
             THEN (indexed -> {key})::{sql} END)"
        )
    };
    match value_type {
        ValueType::Int | ValueType::Double | ValueType::Datetime => typed("number", "numeric"),
        ValueType::Bool => typed("boolean", "boolean"),
        ValueType::Keyword => format!("((indexed ->> {key}) COLLATE \"C\")"),
        ValueType::KeywordList | ValueType::Text => format!("(indexed -> {key})"),
    }
}

/// What [`attribute_expression`] reads a type as: types read alike share an index.
fn expression_kind(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Int | ValueType::Double | ValueType::Datetime => "numeric",
        ValueType::Bool => "boolean",
        ValueType::Keyword => "keyword",
        ValueType::KeywordList | ValueType::Text => "json",
    }
}

/// The index that filters on a custom attribute read (`None` when it cannot have one): a
/// partial index of the runs without a division, as the others.
pub(super) fn attribute_index(name: &str, value_type: ValueType) -> Option<String> {
    if !columns::indexable(value_type) || !columns::literal_name(name) {
        return None;
    }
    let expression = attribute_expression(&format!("'{name}'"), value_type);
    let index = columns::attribute_index_name(name, expression_kind(value_type));
    Some(format!(
        "CREATE INDEX IF NOT EXISTS {index} ON executions_visibility (namespace_id, \
         {expression}, sort_time DESC, start_time DESC, run_id) \
         WHERE namespace_division IS NULL"
    ))
}

struct Postgres {
    params: Vec<Param>,
    first: usize,
}

impl Postgres {
    /// A dialect whose placeholders are numbered from `$first`.
    fn from(first: usize) -> Postgres {
        Postgres {
            params: Vec::new(),
            first,
        }
    }

    /// Binds `value` and answers its placeholder, cast to `cast`.
    fn bind(&mut self, value: Param, cast: &str) -> String {
        self.params.push(value);
        format!("${}::{cast}", self.first + self.params.len() - 1)
    }

    fn text(&mut self, text: &str) -> String {
        self.bind(Box::new(text.to_string()), "text")
    }
}

impl Dialect for Postgres {
    fn value(&mut self, value: &Value) -> String {
        match value {
            Value::Bool(b) => self.bind(Box::new(*b), "boolean"),
            Value::Int(i) => self.bind(Box::new(*i), "bigint"),
            Value::Double(d) => self.bind(Box::new(*d), "float8"),
            Value::Datetime(t) => self.bind(Box::new(t.unix_micros()), "bigint"),
            Value::String(s) => self.bind(Box::new(s.clone()), "text"),
            Value::Status(s) => self.bind(Box::new(i64::from(*s)), "bigint"),
        }
    }

    fn indexed(&mut self, attribute: &Attribute) -> String {
        let key = if columns::literal_name(&attribute.name) {
            format!("'{}'", attribute.name)
        } else {
            self.text(&attribute.name)
        };
        attribute_expression(&key, attribute.value_type)
    }

    fn contains(&mut self, attribute: &Attribute, items: &[String]) -> String {
        if items.is_empty() {
            return "false".to_string();
        }
        let source = if attribute.value_type == ValueType::Text {
            "text_tokens"
        } else {
            "indexed"
        };
        let key = self.text(&attribute.name);
        let list = self.bind(Box::new(items.to_vec()), "text[]");
        format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce({source} -> {key}, \
             '[]')) AS e(item) WHERE e.item = ANY({list}))"
        )
    }

    fn starts_with(&mut self, expression: &str, prefix: &str) -> String {
        let length = self.bind(Box::new(prefix.chars().count() as i32), "integer");
        let prefix = self.text(prefix);
        format!("left({expression}, {length}) = {prefix}")
    }
}

#[cfg(test)]
mod tests;
