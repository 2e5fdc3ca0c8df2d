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

use crate::visibility::{
    Attribute, CompareOp, Filter, IndexedValue, Timestamp, Value, ValueType, VisibilityRow,
    text_tokens,
};

/// The visibility table (a schema migration once the shards write it).
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
        history_length         INTEGER NOT NULL,
        history_size_bytes     INTEGER NOT NULL,
        state_transition_count INTEGER NOT NULL,
        parent_workflow_id     TEXT,
        parent_run_id          TEXT,
        root_workflow_id       TEXT    NOT NULL,
        root_run_id            TEXT    NOT NULL,
        memo                   BLOB    NOT NULL,
        search_attributes      BLOB    NOT NULL,
        indexed                TEXT    NOT NULL,
        text_tokens            TEXT    NOT NULL,
        PRIMARY KEY (namespace_id, run_id)
    );";

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
    let mut indexed = serde_json::Map::new();
    let mut tokens = serde_json::Map::new();
    for (name, value) in &row.indexed {
        let json = match value {
            IndexedValue::Bool(b) => serde_json::Value::from(*b),
            IndexedValue::Int(i) => serde_json::Value::from(*i),
            IndexedValue::Double(d) => serde_json::Value::from(*d),
            IndexedValue::Datetime(t) => serde_json::Value::from(micros(t)),
            IndexedValue::Keyword(s) => serde_json::Value::from(s.as_str()),
            IndexedValue::KeywordList(items) => serde_json::Value::from(items.clone()),
            IndexedValue::Text(s) => {
                tokens.insert(name.clone(), text_tokens(s).collect());
                serde_json::Value::from(s.as_str())
            }
        };
        indexed.insert(name.clone(), json);
    }
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
        Sql::Integer(row.history_length),
        Sql::Integer(row.history_size_bytes),
        Sql::Integer(row.state_transition_count),
        optional(&row.parent_workflow_id),
        optional(&row.parent_run_id),
        text(&row.root_workflow_id),
        text(&row.root_run_id),
        Sql::Blob(row.memo.clone()),
        Sql::Blob(row.search_attributes.clone()),
        Sql::Text(serde_json::Value::Object(indexed).to_string()),
        Sql::Text(serde_json::Value::Object(tokens).to_string()),
    ]
}

fn micros(t: &Timestamp) -> i64 {
    t.unix_micros()
}

/// The system attributes and their columns.
const COLUMNS: &[(&str, &str)] = &[
    ("WorkflowId", "workflow_id"),
    ("RunId", "run_id"),
    ("WorkflowType", "workflow_type"),
    ("TaskQueue", "task_queue"),
    ("ExecutionStatus", "status"),
    ("StartTime", "start_time"),
    ("ExecutionTime", "execution_time"),
    ("CloseTime", "close_time"),
    ("ExecutionDuration", "execution_duration"),
    ("HistoryLength", "history_length"),
    ("HistorySizeBytes", "history_size_bytes"),
    ("StateTransitionCount", "state_transition_count"),
    ("ParentWorkflowId", "parent_workflow_id"),
    ("ParentRunId", "parent_run_id"),
    ("RootWorkflowId", "root_workflow_id"),
    ("RootRunId", "root_run_id"),
];

/// A filter as an SQL condition over `executions_visibility`, with its parameters in order
/// (`?` placeholders).
pub(super) fn condition(filter: &Filter) -> (String, Vec<Sql>) {
    let mut out = Translation::default();
    let sql = out.filter(filter);
    (sql, out.params)
}

#[derive(Default)]
struct Translation {
    params: Vec<Sql>,
}

impl Translation {
    fn bind(&mut self, value: Sql) -> &'static str {
        self.params.push(value);
        "?"
    }

    fn filter(&mut self, filter: &Filter) -> String {
        match filter {
            Filter::And(a, b) => format!("({} AND {})", self.filter(a), self.filter(b)),
            Filter::Or(a, b) => format!("({} OR {})", self.filter(a), self.filter(b)),
            Filter::Not(a) => format!("(NOT {})", self.filter(a)),
            Filter::IsNull { attribute, negated } => {
                let not = if *negated { " NOT" } else { "" };
                format!("({} IS{not} NULL)", self.column(attribute))
            }
            Filter::Compare {
                attribute,
                op,
                value,
            } => match attribute.value_type {
                ValueType::KeywordList | ValueType::Text => {
                    let values = match (attribute.value_type, value) {
                        (ValueType::Text, Value::String(s)) => {
                            text_tokens(s).map(Sql::Text).collect()
                        }
                        _ => vec![sql_value(value)],
                    };
                    let has = self.contains(attribute, values);
                    if *op == CompareOp::Ne {
                        format!("(NOT {has})")
                    } else {
                        has
                    }
                }
                _ => {
                    let column = self.column(attribute);
                    let op = match op {
                        CompareOp::Eq => "=",
                        CompareOp::Ne => "!=",
                        CompareOp::Lt => "<",
                        CompareOp::Le => "<=",
                        CompareOp::Gt => ">",
                        CompareOp::Ge => ">=",
                    };
                    let p = self.bind(sql_value(value));
                    format!("({column} {op} {p})")
                }
            },
            Filter::In {
                attribute,
                values,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                if attribute.value_type == ValueType::KeywordList {
                    let has = self.contains(attribute, values.iter().map(sql_value).collect());
                    return format!("({not}{has})");
                }
                let column = self.column(attribute);
                let list: Vec<_> = values.iter().map(|v| self.bind(sql_value(v))).collect();
                format!("({column} {not}IN ({}))", list.join(", "))
            }
            Filter::Between {
                attribute,
                from,
                to,
                negated,
            } => {
                let column = self.column(attribute);
                let not = if *negated { "NOT " } else { "" };
                let (a, b) = (self.bind(sql_value(from)), self.bind(sql_value(to)));
                format!("({column} {not}BETWEEN {a} AND {b})")
            }
            Filter::StartsWith {
                attribute,
                prefix,
                negated,
            } => {
                let column = self.column(attribute);
                let not = if *negated { "NOT " } else { "" };
                let length = self.bind(Sql::Integer(prefix.chars().count() as i64));
                let p = self.bind(Sql::Text(prefix.clone()));
                format!("({not}substr({column}, 1, {length}) = {p})")
            }
        }
    }

    /// The SQL expression of an attribute's value: its column, or its entry in `indexed`.
    fn column(&mut self, attribute: &Attribute) -> String {
        match COLUMNS.iter().find(|(name, _)| *name == attribute.name) {
            Some((_, column)) => (*column).to_string(),
            None => {
                let path = self.bind(Sql::Text(json_path(&attribute.name)));
                format!("json_extract(indexed, {path})")
            }
        }
    }

    /// True when the run's list (KeywordList values, or Text tokens) holds one of `values`.
    fn contains(&mut self, attribute: &Attribute, values: Vec<Sql>) -> String {
        let source = if attribute.value_type == ValueType::Text {
            "text_tokens"
        } else {
            "indexed"
        };
        let path = self.bind(Sql::Text(json_path(&attribute.name)));
        if values.is_empty() {
            return "(0)".to_string();
        }
        let list: Vec<_> = values.into_iter().map(|v| self.bind(v)).collect();
        format!(
            "EXISTS (SELECT 1 FROM json_each({source}, {path}) WHERE value IN ({}))",
            list.join(", ")
        )
    }
}

/// The JSON path of an attribute in `indexed` (names may hold any character).
fn json_path(name: &str) -> String {
    format!("$.{}", serde_json::Value::from(name))
}

fn sql_value(value: &Value) -> Sql {
    match value {
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Int(i) => Sql::Integer(*i),
        Value::Double(d) => Sql::Real(*d),
        Value::Datetime(t) => Sql::Integer(micros(t)),
        Value::String(s) => Sql::Text(s.clone()),
        Value::Status(s) => Sql::Integer(i64::from(*s)),
    }
}

#[cfg(test)]
mod tests;
