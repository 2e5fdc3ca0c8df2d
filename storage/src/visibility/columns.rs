//! What the SQL stores share about visibility: the columns of the system attributes, the JSON
//! the other attributes are kept in, and the shape of a filter's SQL ([`condition`]), each
//! store supplying its [`Dialect`].

use super::{
    Attribute, CompareOp, Filter, IndexedValue, Value, ValueType, VisibilityRow, text_tokens,
};

/// The column of a system attribute in every SQL store's visibility table.
pub fn system_column(name: &str) -> Option<&'static str> {
    Some(match name {
        "WorkflowId" => "workflow_id",
        "RunId" => "run_id",
        "WorkflowType" => "workflow_type",
        "TaskQueue" => "task_queue",
        "ExecutionStatus" => "status",
        "StartTime" => "start_time",
        "ExecutionTime" => "execution_time",
        "CloseTime" => "close_time",
        "ExecutionDuration" => "execution_duration",
        "HistoryLength" => "history_length",
        "HistorySizeBytes" => "history_size_bytes",
        "StateTransitionCount" => "state_transition_count",
        "ParentWorkflowId" => "parent_workflow_id",
        "ParentRunId" => "parent_run_id",
        "RootWorkflowId" => "root_workflow_id",
        "RootRunId" => "root_run_id",
        _ => return None,
    })
}

/// The run's predefined and custom attributes as one JSON object (times as microseconds since
/// the epoch), and the lower-cased tokens of its Text attributes as another.
pub fn indexed_json(row: &VisibilityRow) -> (String, String) {
    let mut indexed = serde_json::Map::new();
    let mut tokens = serde_json::Map::new();
    for (name, value) in &row.indexed {
        let json = match value {
            IndexedValue::Bool(b) => serde_json::Value::from(*b),
            IndexedValue::Int(i) => serde_json::Value::from(*i),
            IndexedValue::Double(d) => serde_json::Value::from(*d),
            IndexedValue::Datetime(t) => serde_json::Value::from(t.unix_micros()),
            IndexedValue::Keyword(s) => serde_json::Value::from(s.as_str()),
            IndexedValue::KeywordList(items) => serde_json::Value::from(items.clone()),
            IndexedValue::Text(s) => {
                tokens.insert(name.clone(), text_tokens(s).collect());
                serde_json::Value::from(s.as_str())
            }
        };
        indexed.insert(name.clone(), json);
    }
    (
        serde_json::Value::Object(indexed).to_string(),
        serde_json::Value::Object(tokens).to_string(),
    )
}

/// Parameters bound to `?` placeholders, in order (SQLite's and MySQL's style).
pub struct Positional<V> {
    pub params: Vec<V>,
}

impl<V> Default for Positional<V> {
    fn default() -> Self {
        Positional { params: Vec::new() }
    }
}

impl<V> Positional<V> {
    /// Binds `value`; answers its placeholder.
    pub fn bind(&mut self, value: V) -> String {
        self.params.push(value);
        "?".to_string()
    }
}

/// How one SQL store spells what a filter needs (placeholders, attribute access, list
/// membership); [`condition`] builds the rest, so every store's SQL has one shape.
pub trait Dialect {
    /// A placeholder bound to `value`.
    fn value(&mut self, value: &Value) -> String;
    /// A predefined or custom attribute's value, in its type; NULL when the run lacks it.
    fn indexed(&mut self, attribute: &Attribute) -> String;
    /// True when the run's list (KeywordList values, or Text tokens) holds one of `items`:
    /// true or false, never NULL.
    fn contains(&mut self, attribute: &Attribute, items: &[String]) -> String;
    /// True when the text `expression` starts with `prefix` (NULL when it is NULL).
    fn starts_with(&mut self, expression: &str, prefix: &str) -> String;
}

/// `filter` as an SQL condition over the visibility table, in `dialect`.
pub fn condition(filter: &Filter, dialect: &mut impl Dialect) -> String {
    let d = dialect;
    match filter {
        Filter::And(a, b) => format!("({} AND {})", condition(a, d), condition(b, d)),
        Filter::Or(a, b) => format!("({} OR {})", condition(a, d), condition(b, d)),
        Filter::Not(a) => format!("(NOT {})", condition(a, d)),
        Filter::IsNull { attribute, negated } => {
            let not = if *negated { " NOT" } else { "" };
            format!("({} IS{not} NULL)", expression(attribute, d))
        }
        Filter::Compare {
            attribute,
            op,
            value,
        } => match (attribute.value_type, value) {
            (ValueType::KeywordList | ValueType::Text, Value::String(s)) => {
                let items: Vec<String> = if attribute.value_type == ValueType::Text {
                    text_tokens(s).collect()
                } else {
                    vec![s.clone()]
                };
                let has = d.contains(attribute, &items);
                if *op == CompareOp::Ne {
                    format!("(NOT {has})")
                } else {
                    has
                }
            }
            _ => {
                let column = expression(attribute, d);
                let op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::Ne => "!=",
                    CompareOp::Lt => "<",
                    CompareOp::Le => "<=",
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                };
                format!("({column} {op} {})", d.value(value))
            }
        },
        Filter::In {
            attribute,
            values,
            negated,
        } => {
            let not = if *negated { "NOT " } else { "" };
            if attribute.value_type == ValueType::KeywordList {
                let items: Vec<String> = values
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                return format!("({not}{})", d.contains(attribute, &items));
            }
            let column = expression(attribute, d);
            let list: Vec<_> = values.iter().map(|v| d.value(v)).collect();
            format!("({column} {not}IN ({}))", list.join(", "))
        }
        Filter::Between {
            attribute,
            from,
            to,
            negated,
        } => {
            let column = expression(attribute, d);
            let not = if *negated { "NOT " } else { "" };
            let (a, b) = (d.value(from), d.value(to));
            format!("({column} {not}BETWEEN {a} AND {b})")
        }
        Filter::StartsWith {
            attribute,
            prefix,
            negated,
        } => {
            let column = expression(attribute, d);
            let not = if *negated { "NOT " } else { "" };
            format!("({not}{})", d.starts_with(&column, prefix))
        }
    }
}

/// An attribute's value: its column, or what the dialect reads from the JSON object.
fn expression(attribute: &Attribute, dialect: &mut impl Dialect) -> String {
    match system_column(&attribute.name) {
        Some(column) => column.to_string(),
        None => dialect.indexed(attribute),
    }
}
