//! A run as visibility lists it, and what a [`Filter`] means for one: the reference semantics
//! that each store's SQL translation must give (the conformance suite will compare them).
//!
//! Temporal's SQL visibility (the reference server keeps it in SQLite) decides with SQL's
//! three-valued logic: a comparison with an attribute the run does not have is unknown, so
//! `CustomKeyword != 'x'` leaves out runs without `CustomKeyword`, and `NOT` of unknown is
//! unknown. Membership of KeywordList values and token matches of Text are subqueries there
//! (full-text tables): true or false, never unknown, so `NOT (BuildIds = 'b')` holds for a run
//! without build ids. A run is listed when the filter is true.

use std::collections::BTreeMap;

use super::filter::{Attribute, CompareOp, Filter, Value};
use super::{Timestamp, ValueType};

/// One run's visibility record.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibilityRow {
    pub namespace_id: String,
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    /// `WorkflowExecutionStatus` number.
    pub status: i32,
    pub start_time: Timestamp,
    pub execution_time: Timestamp,
    /// `None` while the run is open.
    pub close_time: Option<Timestamp>,
    /// Nanoseconds from execution time to close; `None` while open.
    pub execution_duration: Option<i64>,
    /// The run's history length, size and state transitions when it closed: `None` while it
    /// is open, as Temporal records them only at a close.
    pub history_length: Option<i64>,
    pub history_size_bytes: Option<i64>,
    pub state_transition_count: Option<i64>,
    pub parent_workflow_id: Option<String>,
    pub parent_run_id: Option<String>,
    pub root_workflow_id: String,
    pub root_run_id: String,
    /// Encoded memo, returned with list answers.
    pub memo: Vec<u8>,
    /// Encoded search attributes (payloads), returned with list answers.
    pub search_attributes: Vec<u8>,
    /// The values of the run's predefined and custom search attributes, by name, for
    /// filtering.
    pub indexed: BTreeMap<String, IndexedValue>,
}

/// A search-attribute value of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexedValue {
    Bool(bool),
    Int(i64),
    Double(f64),
    Datetime(Timestamp),
    Keyword(String),
    KeywordList(Vec<String>),
    Text(String),
}

impl IndexedValue {
    /// Decodes a search attribute's JSON payload data as Temporal does for an attribute of
    /// `value_type`: a value, or a list of one (a list of any length for KeywordList); `null`
    /// and the empty list mean the attribute is not set (`Ok(None)`).
    pub fn decode(value_type: ValueType, data: &[u8]) -> Result<Option<IndexedValue>, String> {
        let json: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
        if value_type == ValueType::KeywordList {
            return match json {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::Array(items) if items.is_empty() => Ok(None),
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(format!("a KeywordList item is not a string: {other}")),
                    })
                    .collect::<Result<_, _>>()
                    .map(|items| Some(IndexedValue::KeywordList(items))),
                other => Err(format!("a KeywordList value is not a list: {other}")),
            };
        }
        let single = match json {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::Array(mut items) => match items.len() {
                0 => return Ok(None),
                1 => items.remove(0),
                n => {
                    return Err(format!(
                        "a list of {n} values for a single-valued attribute"
                    ));
                }
            },
            other => other,
        };
        let wrong = |v: &serde_json::Value| format!("not a {} value: {v}", value_type.name());
        let value = match (value_type, &single) {
            (ValueType::Bool, serde_json::Value::Bool(b)) => IndexedValue::Bool(*b),
            (ValueType::Int, serde_json::Value::Number(n)) => {
                IndexedValue::Int(n.as_i64().ok_or_else(|| wrong(&single))?)
            }
            (ValueType::Double, serde_json::Value::Number(n)) => {
                IndexedValue::Double(n.as_f64().ok_or_else(|| wrong(&single))?)
            }
            (ValueType::Datetime, serde_json::Value::String(s)) => IndexedValue::Datetime(
                super::values::parse_rfc3339(s).ok_or_else(|| wrong(&single))?,
            ),
            (ValueType::Keyword, serde_json::Value::String(s)) => IndexedValue::Keyword(s.clone()),
            (ValueType::Text, serde_json::Value::String(s)) => IndexedValue::Text(s.clone()),
            _ => return Err(wrong(&single)),
        };
        Ok(Some(value))
    }
}

/// A comparable value of a run's attribute (system or indexed), or of a filter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Microseconds since the epoch.
    Datetime(i64),
    Str(&'a str),
}

impl Scalar<'_> {
    /// The order of two values of one kind (integers exactly, mixed numbers as doubles);
    /// `None` for values of different kinds.
    fn compare(&self, other: &Scalar<'_>) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
            (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
            (Scalar::Int(a), Scalar::Double(b)) => (*a as f64).partial_cmp(b),
            (Scalar::Double(a), Scalar::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Scalar::Double(a), Scalar::Double(b)) => a.partial_cmp(b),
            (Scalar::Datetime(a), Scalar::Datetime(b)) => Some(a.cmp(b)),
            (Scalar::Str(a), Scalar::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            _ => None,
        }
    }
}

impl VisibilityRow {
    /// Whether `filter` lists this run.
    pub fn matches(&self, filter: &Filter) -> bool {
        self.truth(filter) == Some(true)
    }

    /// The filter's truth for this run: `None` is SQL's unknown.
    fn truth(&self, filter: &Filter) -> Option<bool> {
        match filter {
            Filter::And(a, b) => match (self.truth(a), self.truth(b)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Filter::Or(a, b) => match (self.truth(a), self.truth(b)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Filter::Not(a) => self.truth(a).map(|t| !t),
            Filter::IsNull { attribute, negated } => {
                let null = match attribute.value_type {
                    ValueType::KeywordList | ValueType::Text => {
                        self.indexed_of(attribute).is_none()
                    }
                    _ => self.scalar(attribute).is_none(),
                };
                Some(null != *negated)
            }
            Filter::Compare {
                attribute,
                op,
                value,
            } => match attribute.value_type {
                ValueType::KeywordList => {
                    let has = self.list_contains(attribute, value);
                    Some(if *op == CompareOp::Ne { !has } else { has })
                }
                ValueType::Text => {
                    let has = self.text_matches(attribute, value);
                    Some(if *op == CompareOp::Ne { !has } else { has })
                }
                _ => {
                    let stored = self.scalar(attribute)?;
                    let wanted = scalar_of(value)?;
                    let ordering = stored.compare(&wanted)?;
                    Some(match op {
                        CompareOp::Eq => ordering.is_eq(),
                        CompareOp::Ne => ordering.is_ne(),
                        CompareOp::Lt => ordering.is_lt(),
                        CompareOp::Le => ordering.is_le(),
                        CompareOp::Gt => ordering.is_gt(),
                        CompareOp::Ge => ordering.is_ge(),
                    })
                }
            },
            Filter::In {
                attribute,
                values,
                negated,
            } => {
                if attribute.value_type == ValueType::KeywordList {
                    let any = values.iter().any(|v| self.list_contains(attribute, v));
                    return Some(any != *negated);
                }
                // `x IN (a, b)` is `x = a OR x = b`.
                let stored = self.scalar(attribute)?;
                let mut unknown = false;
                for v in values {
                    match scalar_of(v).and_then(|w| stored.compare(&w)) {
                        Some(o) if o.is_eq() => return Some(!*negated),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                if unknown { None } else { Some(*negated) }
            }
            Filter::Between {
                attribute,
                from,
                to,
                negated,
            } => {
                let stored = self.scalar(attribute)?;
                let low = stored.compare(&scalar_of(from)?)?;
                let high = stored.compare(&scalar_of(to)?)?;
                Some((low.is_ge() && high.is_le()) != *negated)
            }
            Filter::StartsWith {
                attribute,
                prefix,
                negated,
            } => match self.scalar(attribute)? {
                Scalar::Str(s) => Some(s.starts_with(prefix.as_str()) != *negated),
                _ => None,
            },
        }
    }

    fn indexed_of(&self, attribute: &Attribute) -> Option<&IndexedValue> {
        self.indexed.get(&attribute.name)
    }

    /// The run's value of a single-valued attribute.
    fn scalar(&self, attribute: &Attribute) -> Option<Scalar<'_>> {
        let number = |n: i64| Some(Scalar::Int(n));
        match attribute.name.as_str() {
            "WorkflowId" => Some(Scalar::Str(&self.workflow_id)),
            "RunId" => Some(Scalar::Str(&self.run_id)),
            "WorkflowType" => Some(Scalar::Str(&self.workflow_type)),
            "TaskQueue" => Some(Scalar::Str(&self.task_queue)),
            "ExecutionStatus" => number(i64::from(self.status)),
            "StartTime" => Some(Scalar::Datetime(self.start_time.unix_micros())),
            "ExecutionTime" => Some(Scalar::Datetime(self.execution_time.unix_micros())),
            "CloseTime" => self.close_time.map(|t| Scalar::Datetime(t.unix_micros())),
            "ExecutionDuration" => self.execution_duration.and_then(number),
            "HistoryLength" => self.history_length.and_then(number),
            "HistorySizeBytes" => self.history_size_bytes.and_then(number),
            "StateTransitionCount" => self.state_transition_count.and_then(number),
            "ParentWorkflowId" => self.parent_workflow_id.as_deref().map(Scalar::Str),
            "ParentRunId" => self.parent_run_id.as_deref().map(Scalar::Str),
            "RootWorkflowId" => Some(Scalar::Str(&self.root_workflow_id)),
            "RootRunId" => Some(Scalar::Str(&self.root_run_id)),
            _ => match self.indexed_of(attribute)? {
                IndexedValue::Bool(b) => Some(Scalar::Bool(*b)),
                IndexedValue::Int(i) => number(*i),
                IndexedValue::Double(d) => Some(Scalar::Double(*d)),
                IndexedValue::Datetime(t) => Some(Scalar::Datetime(t.unix_micros())),
                IndexedValue::Keyword(s) => Some(Scalar::Str(s)),
                IndexedValue::KeywordList(_) | IndexedValue::Text(_) => None,
            },
        }
    }

    fn list_contains(&self, attribute: &Attribute, value: &Value) -> bool {
        match (self.indexed_of(attribute), value) {
            (Some(IndexedValue::KeywordList(items)), Value::String(v)) => items.contains(v),
            _ => false,
        }
    }

    /// Some token of `value` is a token of the run's text (tokens: runs of letters and
    /// digits, compared without case, as the full-text tables tokenise; the reference server
    /// lists `the quick brown fox` for `'quick cat'`, not for `'qui'`).
    fn text_matches(&self, attribute: &Attribute, value: &Value) -> bool {
        let (Some(IndexedValue::Text(text)), Value::String(wanted)) =
            (self.indexed_of(attribute), value)
        else {
            return false;
        };
        let have: Vec<String> = text_tokens(text).collect();
        text_tokens(wanted).any(|t| have.contains(&t))
    }
}

/// The tokens of a Text value: runs of letters and digits, lower-cased.
pub fn text_tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// A filter value as a comparable scalar (statuses and counts compare as numbers).
fn scalar_of(value: &Value) -> Option<Scalar<'_>> {
    Some(match value {
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Int(i) => Scalar::Int(*i),
        Value::Double(d) => Scalar::Double(*d),
        Value::Datetime(t) => Scalar::Datetime(t.unix_micros()),
        Value::String(s) => Scalar::Str(s),
        Value::Status(s) => Scalar::Int(i64::from(*s)),
    })
}
