//! What the SQL stores share about visibility: the columns of the system attributes, the JSON
//! the other attributes are kept in, and the shape of a filter's SQL ([`condition`]), each
//! store supplying its [`Dialect`].

use super::{
    Attribute, CompareOp, Filter, GroupValue, IndexedValue, Timestamp, Value, ValueType,
    VisibilityCount, VisibilityCursor, VisibilityRow, text_tokens,
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
        // A column generated from the JSON object, so that the condition every listing has
        // unless its query names it (`TemporalNamespaceDivision IS NULL`) is part of each index.
        "TemporalNamespaceDivision" => "namespace_division",
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

impl<V> Positional<V>
where
    Positional<V>: Dialect,
{
    /// A page of a listing with its parameters (see [`list_statement`]).
    pub fn list(
        namespace_id: &str,
        filter: Option<&Filter>,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> (String, Vec<V>) {
        let mut dialect = Positional::default();
        let sql = list_statement(&mut dialect, namespace_id, filter, after, limit);
        (sql, dialect.params)
    }

    /// A count with its parameters (see [`count_statement`]).
    pub fn count(
        namespace_id: &str,
        filter: Option<&Filter>,
        group_by: Option<&Attribute>,
    ) -> (String, Vec<V>) {
        let mut dialect = Positional::default();
        let sql = count_statement(&mut dialect, namespace_id, filter, group_by);
        (sql, dialect.params)
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
    /// What a count groups by: the attribute's `expression`. `filtered` says the query has a
    /// condition of its own (more than the namespace division every listing has).
    fn grouped(&mut self, expression: String, filtered: bool) -> String {
        let _ = filtered;
        expression
    }
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

/// The columns a listing reads, in this order (every store reads them back by position).
pub const LISTED: &str = "namespace_id, run_id, workflow_id, workflow_type, task_queue, status, \
    start_time, execution_time, close_time, execution_duration, history_length, \
    history_size_bytes, state_transition_count, parent_workflow_id, parent_run_id, \
    root_workflow_id, root_run_id, memo, search_attributes";

/// A store's row of [`LISTED`] columns, read by position.
pub trait ListedColumns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn optional_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    /// The `status` column (a 32-bit integer).
    fn status(&self, i: usize) -> Result<i32, Self::Error>;
    fn optional_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>, Self::Error>;
}

/// A listed run from its [`LISTED`] columns (times in microseconds). Its indexed values are
/// left out: a listing answers the payloads.
pub fn listed_row<R: ListedColumns>(row: &R) -> Result<VisibilityRow, R::Error> {
    let time = |micros: i64| Timestamp::from_unix_nanos(micros.saturating_mul(1_000));
    Ok(VisibilityRow {
        namespace_id: row.text(0)?,
        run_id: row.text(1)?,
        workflow_id: row.text(2)?,
        workflow_type: row.text(3)?,
        task_queue: row.text(4)?,
        status: row.status(5)?,
        start_time: time(row.int(6)?),
        execution_time: time(row.int(7)?),
        close_time: row.optional_int(8)?.map(time),
        execution_duration: row.optional_int(9)?,
        history_length: row.optional_int(10)?,
        history_size_bytes: row.optional_int(11)?,
        state_transition_count: row.optional_int(12)?,
        parent_workflow_id: row.optional_text(13)?,
        parent_run_id: row.optional_text(14)?,
        root_workflow_id: row.text(15)?,
        root_run_id: row.text(16)?,
        memo: row.bytes(17)?,
        search_attributes: row.bytes(18)?,
        indexed: Default::default(),
    })
}

/// A count from the rows of its statement (see [`count_statement`]): one row holding the
/// count, or with `group_by` one row per group (its value, then its count).
pub fn tally<'a, R: ListedColumns + 'a>(
    rows: impl IntoIterator<Item = &'a R>,
    group_by: Option<&Attribute>,
) -> Result<VisibilityCount, R::Error> {
    let mut count = VisibilityCount::default();
    for row in rows {
        count_row(&mut count, row, group_by)?;
    }
    count.groups.sort();
    Ok(count)
}

/// Adds one row of a count statement to `count` (the caller sorts the groups at the end).
pub fn count_row<R: ListedColumns>(
    count: &mut VisibilityCount,
    row: &R,
    group_by: Option<&Attribute>,
) -> Result<(), R::Error> {
    let Some(attribute) = group_by else {
        count.total = row.int(0)?;
        return Ok(());
    };
    let value = if attribute.name == "ExecutionStatus" {
        GroupValue::Status(row.status(0)?)
    } else {
        row.optional_text(0)?
            .map_or(GroupValue::Null, GroupValue::Keyword)
    };
    let n = row.int(1)?;
    count.total += n;
    count.groups.push((value, n));
    Ok(())
}

/// The listing order over the table (`sort_time` is the close time, or
/// [`super::OPEN_SORT_TIME`] while open: a generated column every store's table has).
const ORDER: &str = "ORDER BY sort_time DESC, start_time DESC, run_id";

/// The `WHERE` clause of the runs of `namespace_id` that `filter` lists, after `after`.
fn listed_runs(
    dialect: &mut impl Dialect,
    namespace_id: &str,
    filter: Option<&Filter>,
    after: Option<&VisibilityCursor>,
) -> String {
    let mut sql = format!(
        "WHERE namespace_id = {}",
        dialect.value(&Value::String(namespace_id.to_string()))
    );
    if let Some(filter) = filter {
        sql += &format!(" AND {}", condition(filter, dialect));
    }
    if let Some(after) = after {
        let sort_time = Value::Int(after.sort_time);
        let start_time = Value::Int(after.start_time);
        let run_id = Value::String(after.run_id.clone());
        // The first term lets an index seek to the cursor; the second is the exact order.
        sql += &format!(
            " AND sort_time <= {} AND (sort_time < {} OR (sort_time = {} AND (start_time < {} OR \
             (start_time = {} AND run_id > {}))))",
            dialect.value(&sort_time),
            dialect.value(&sort_time),
            dialect.value(&sort_time),
            dialect.value(&start_time),
            dialect.value(&start_time),
            dialect.value(&run_id),
        );
    }
    sql
}

/// A page of a listing: the [`LISTED`] columns of the runs of `namespace_id` that `filter`
/// lists, after `after`, in listing order, at most `limit`.
pub fn list_statement(
    dialect: &mut impl Dialect,
    namespace_id: &str,
    filter: Option<&Filter>,
    after: Option<&VisibilityCursor>,
    limit: usize,
) -> String {
    let runs = listed_runs(dialect, namespace_id, filter, after);
    let limit = dialect.value(&Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    format!("SELECT {LISTED} FROM executions_visibility {runs} {ORDER} LIMIT {limit}")
}

/// A count of the runs of `namespace_id` that `filter` lists: one row of the count, or, with
/// `group_by`, one row per value (the value, then the count).
pub fn count_statement(
    dialect: &mut impl Dialect,
    namespace_id: &str,
    filter: Option<&Filter>,
    group_by: Option<&Attribute>,
) -> String {
    match group_by {
        None => {
            let runs = listed_runs(dialect, namespace_id, filter, None);
            format!("SELECT count(*) FROM executions_visibility {runs}")
        }
        Some(attribute) => {
            // The value's placeholders come first in the text, so they are bound first.
            let value = expression(attribute, dialect);
            let filtered = filter.is_some_and(|f| !is_division_only(f));
            let value = dialect.grouped(value, filtered);
            let runs = listed_runs(dialect, namespace_id, filter, None);
            format!("SELECT {value}, count(*) FROM executions_visibility {runs} GROUP BY 1")
        }
    }
}

/// Whether a custom attribute's name may be written into SQL as a literal, and so read through
/// an index of its expression: ASCII letters, digits, `_` and `-`, at most 64 bytes. Other
/// names are bound as parameters and filtered by reading the records.
pub fn literal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether a store indexes attributes of `value_type` (single values with an order).
pub fn indexable(value_type: ValueType) -> bool {
    !matches!(value_type, ValueType::KeywordList | ValueType::Text)
}

/// The name of the index of a custom attribute's expression: stable, short enough for every
/// store, and one per name and `kind` of expression (FNV-1a of both): the types a store reads
/// with one expression share its index.
pub fn attribute_index_name(name: &str, kind: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([0]).chain(name.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("executions_visibility_attr_{hash:016x}")
}

/// Whether `filter` is only the condition a listing gets when its query does not name the
/// namespace division.
fn is_division_only(filter: &Filter) -> bool {
    matches!(
        filter,
        Filter::IsNull { attribute, negated: false } if attribute.name == "TemporalNamespaceDivision"
    )
}

/// An attribute's value: its column, or what the dialect reads from the JSON object.
fn expression(attribute: &Attribute, dialect: &mut impl Dialect) -> String {
    match system_column(&attribute.name) {
        Some(column) => column.to_string(),
        None => dialect.indexed(attribute),
    }
}
