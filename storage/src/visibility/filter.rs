//! From syntax to a typed filter: names resolved to search attributes (system ones, then the
//! namespace's), operators checked against each attribute's type, values parsed into the
//! attribute's type. Refusals carry Temporal's messages (its `query` converter's).

use std::collections::BTreeMap;

use super::parser::{Condition, Operand, Syntax};
use super::values::{Timestamp, parse_execution_duration, parse_rfc3339};
use super::{QueryError, ValueType};

/// A search attribute a filter names: `name` is the attribute (`WorkflowId`, `CustomerId`),
/// `alias` what the query wrote (`TemporalWorkflowId` resolves to `WorkflowId`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub alias: String,
    pub value_type: ValueType,
}

/// A value in an attribute's type. `ExecutionStatus` values are statuses (the
/// `WorkflowExecutionStatus` number); `ExecutionDuration` values are nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Double(f64),
    Datetime(Timestamp),
    /// Keyword, KeywordList and Text values.
    String(String),
    Status(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A checked filter. For a KeywordList attribute `=` means "contains" and `IN` "contains any";
/// for Text, `=` means some token of the value is a token of the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        attribute: Attribute,
        op: CompareOp,
        value: Value,
    },
    In {
        attribute: Attribute,
        values: Vec<Value>,
        negated: bool,
    },
    Between {
        attribute: Attribute,
        from: Value,
        to: Value,
        negated: bool,
    },
    StartsWith {
        attribute: Attribute,
        prefix: String,
        negated: bool,
    },
    IsNull {
        attribute: Attribute,
        negated: bool,
    },
}

/// A checked query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub filter: Option<Filter>,
    /// `GROUP BY` (counts only).
    pub group_by: Option<Attribute>,
    /// Whether the query names `TemporalNamespaceDivision`; when it does not, Temporal lists
    /// only runs without one (it hides the server's own workflows, such as schedulers').
    pub names_namespace_division: bool,
}

/// The attributes every run has, with their types.
pub const SYSTEM_ATTRIBUTES: &[(&str, ValueType)] = &[
    ("WorkflowId", ValueType::Keyword),
    ("RunId", ValueType::Keyword),
    ("WorkflowType", ValueType::Keyword),
    ("StartTime", ValueType::Datetime),
    ("ExecutionTime", ValueType::Datetime),
    ("CloseTime", ValueType::Datetime),
    ("ExecutionStatus", ValueType::Keyword),
    ("TaskQueue", ValueType::Keyword),
    ("HistoryLength", ValueType::Int),
    ("ExecutionDuration", ValueType::Int),
    ("StateTransitionCount", ValueType::Int),
    ("HistorySizeBytes", ValueType::Int),
    ("ParentWorkflowId", ValueType::Keyword),
    ("ParentRunId", ValueType::Keyword),
    ("RootWorkflowId", ValueType::Keyword),
    ("RootRunId", ValueType::Keyword),
];

/// `WorkflowExecutionStatus` values by their two names (`Running`,
/// `WORKFLOW_EXECUTION_STATUS_RUNNING`).
const STATUSES: &[(&str, &str)] = &[
    ("Unspecified", "WORKFLOW_EXECUTION_STATUS_UNSPECIFIED"),
    ("Running", "WORKFLOW_EXECUTION_STATUS_RUNNING"),
    ("Completed", "WORKFLOW_EXECUTION_STATUS_COMPLETED"),
    ("Failed", "WORKFLOW_EXECUTION_STATUS_FAILED"),
    ("Canceled", "WORKFLOW_EXECUTION_STATUS_CANCELED"),
    ("Terminated", "WORKFLOW_EXECUTION_STATUS_TERMINATED"),
    (
        "ContinuedAsNew",
        "WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW",
    ),
    ("TimedOut", "WORKFLOW_EXECUTION_STATUS_TIMED_OUT"),
    ("Paused", "WORKFLOW_EXECUTION_STATUS_PAUSED"),
];

const RESERVED_PREFIX: &str = "Temporal";
const NAMESPACE_DIVISION: &str = "TemporalNamespaceDivision";

const NOT_SUPPORTED: &str = "operation is not supported";
const INVALID: &str = "invalid expression";

/// Checks `syntax` against the attributes: the system ones and `attributes` (the predefined
/// and custom attributes of the namespace, by name).
pub(super) fn check(
    syntax: Syntax,
    attributes: &BTreeMap<String, ValueType>,
) -> Result<Query, QueryError> {
    let mut c = Checker {
        attributes,
        names_namespace_division: false,
    };
    if syntax.limit {
        return Err(QueryError::new(format!("{NOT_SUPPORTED}: 'LIMIT' clause")));
    }
    let filter = syntax.condition.map(|cond| c.condition(cond)).transpose()?;
    if syntax.group_by.len() > 1 {
        return Err(QueryError::new(format!(
            "{NOT_SUPPORTED}: 'GROUP BY' clause supports only a single field"
        )));
    }
    let group_by = match syntax.group_by.into_iter().next() {
        Some(operand) => {
            let attribute = c.attribute(operand)?;
            let allowed = attribute.name == "ExecutionStatus"
                || attribute.name == NAMESPACE_DIVISION
                || attribute.name.starts_with("TemporalLowCardinalityKeyword");
            if !allowed {
                return Err(QueryError::new(format!(
                    "{NOT_SUPPORTED}: 'GROUP BY' clause is not supported for search attribute {}",
                    attribute.alias
                )));
            }
            Some(attribute)
        }
        None => None,
    };
    // Temporal checks the columns of `ORDER BY`, then its SQL visibility refuses the clause.
    for operand in syntax.order_by.iter().cloned() {
        let attribute = c.attribute(operand)?;
        if attribute.value_type == ValueType::Text {
            return Err(QueryError::new(format!(
                "{NOT_SUPPORTED}: unable to sort by search attribute type Text"
            )));
        }
    }
    if !syntax.order_by.is_empty() {
        return Err(QueryError::new(format!(
            "{NOT_SUPPORTED}: 'ORDER BY' clause"
        )));
    }
    Ok(Query {
        filter,
        group_by,
        names_namespace_division: c.names_namespace_division,
    })
}

struct Checker<'a> {
    attributes: &'a BTreeMap<String, ValueType>,
    names_namespace_division: bool,
}

/// A literal before it is typed by its attribute.
enum Literal {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Literal {
    /// The type Temporal's messages name for the literal (Go's).
    fn go_type(&self) -> &'static str {
        match self {
            Literal::Str(_) => "string",
            Literal::Int(_) => "int64",
            Literal::Double(_) => "float64",
            Literal::Bool(_) => "bool",
        }
    }

    /// The literal as Temporal's messages print it.
    fn describe(&self) -> String {
        match self {
            Literal::Str(s) => format!("{s:?}"),
            Literal::Int(i) => i.to_string(),
            Literal::Double(d) => d.to_string(),
            Literal::Bool(b) => b.to_string(),
        }
    }
}

impl Checker<'_> {
    fn condition(&mut self, condition: Condition) -> Result<Filter, QueryError> {
        Ok(match condition {
            Condition::And(a, b) => {
                Filter::And(Box::new(self.condition(*a)?), Box::new(self.condition(*b)?))
            }
            Condition::Or(a, b) => {
                Filter::Or(Box::new(self.condition(*a)?), Box::new(self.condition(*b)?))
            }
            Condition::Not(a) => Filter::Not(Box::new(self.condition(*a)?)),
            Condition::Paren(a) => self.condition(*a)?,
            Condition::Compare(left, op, right) => self.compare(left, op, right)?,
            Condition::In(left, values, negated) => {
                let attribute = self.attribute(left)?;
                let values = values
                    .into_iter()
                    .map(|v| self.value(&attribute, v))
                    .collect::<Result<_, _>>()?;
                check_operator(&attribute, if negated { "not in" } else { "in" })?;
                Filter::In {
                    attribute,
                    values,
                    negated,
                }
            }
            Condition::Between(left, from, to, negated) => {
                let attribute = self.attribute(left)?;
                if !matches!(
                    attribute.value_type,
                    ValueType::Datetime | ValueType::Double | ValueType::Int | ValueType::Keyword
                ) {
                    return Err(QueryError::new(format!(
                        "{INVALID}: cannot do range condition on search attribute '{}' of type {}",
                        attribute.alias,
                        attribute.value_type.name()
                    )));
                }
                let from = self.value(&attribute, from)?;
                let to = self.value(&attribute, to)?;
                Filter::Between {
                    attribute,
                    from,
                    to,
                    negated,
                }
            }
            Condition::Is(left, op) => {
                let attribute = self.attribute(left)?;
                match op {
                    "is null" | "is not null" => Filter::IsNull {
                        attribute,
                        negated: op == "is not null",
                    },
                    _ => {
                        return Err(QueryError::new(format!(
                            "{INVALID}: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'"
                        )));
                    }
                }
            }
            Condition::Bare(Operand::Name(_)) => {
                return Err(QueryError::new(format!("{INVALID}: incomplete expression")));
            }
            Condition::Bare(Operand::Unsupported("function")) => {
                return Err(QueryError::new(format!(
                    "{NOT_SUPPORTED}: function expression"
                )));
            }
            Condition::Bare(other) => {
                return Err(QueryError::new(format!(
                    "{NOT_SUPPORTED}: expression of type {}",
                    operand_kind(&other)
                )));
            }
        })
    }

    fn compare(
        &mut self,
        left: Operand,
        op: &'static str,
        right: Operand,
    ) -> Result<Filter, QueryError> {
        let attribute = self.attribute(left)?;
        let value = self.value(&attribute, right)?;
        check_operator(&attribute, op)?;
        let op = match op {
            "=" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            // Only STARTS_WITH passes the operator check of a Keyword, whose values are strings.
            _ => {
                let Value::String(prefix) = value else {
                    unreachable!("a Keyword value is a string")
                };
                return Ok(Filter::StartsWith {
                    attribute,
                    prefix,
                    negated: op == "not starts_with",
                });
            }
        };
        Ok(Filter::Compare {
            attribute,
            op,
            value,
        })
    }

    /// Resolves a name as Temporal does: the namespace's attributes first (unless the name is
    /// a system attribute), `ScheduleId` as `WorkflowId`, then the name as written, with the
    /// `Temporal` prefix added, or with it removed.
    fn attribute(&mut self, operand: Operand) -> Result<Attribute, QueryError> {
        let alias = match operand {
            Operand::Name(name) => name,
            other => {
                return Err(QueryError::new(format!(
                    "{INVALID}: must be a column name but was {}",
                    operand_kind(&other)
                )));
            }
        };
        let lookup = |name: &str| -> Option<ValueType> {
            SYSTEM_ATTRIBUTES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .or_else(|| self.attributes.get(name).copied())
        };
        let system = SYSTEM_ATTRIBUTES.iter().any(|(n, _)| *n == alias);
        let resolved = if !system && alias == "ScheduleId" && !self.attributes.contains_key(&alias)
        {
            Some(("WorkflowId".to_string(), ValueType::Keyword))
        } else {
            let prefixed = format!("{RESERVED_PREFIX}{alias}");
            let stripped = alias.strip_prefix(RESERVED_PREFIX).unwrap_or(&alias);
            [alias.as_str(), prefixed.as_str(), stripped]
                .into_iter()
                .find_map(|name| lookup(name).map(|t| (name.to_string(), t)))
        };
        let Some((name, value_type)) = resolved else {
            return Err(QueryError::new(format!(
                "invalid search attribute: {alias}"
            )));
        };
        if name == NAMESPACE_DIVISION {
            self.names_namespace_division = true;
        }
        Ok(Attribute {
            name,
            alias,
            value_type,
        })
    }

    fn value(&self, attribute: &Attribute, operand: Operand) -> Result<Value, QueryError> {
        let literal = match operand {
            Operand::Str(s) => Literal::Str(s),
            Operand::Bool(b) => Literal::Bool(b),
            Operand::Number(n) => match n.parse::<i64>() {
                Ok(i) => Literal::Int(i),
                Err(_) => match n.parse::<f64>() {
                    Ok(f) if f.is_finite() => Literal::Double(f),
                    _ => {
                        return Err(QueryError::new(format!(
                            "{INVALID}: unable to parse value \"{n}\""
                        )));
                    }
                },
            },
            Operand::Name(name) => {
                return Err(QueryError::new(format!(
                    "{NOT_SUPPORTED}: column name on the right side of comparison expression \
                     (did you forget to quote \"{name}\"?)"
                )));
            }
            Operand::Unsupported("function") => {
                return Err(QueryError::new(format!("{NOT_SUPPORTED}: nested func")));
            }
            other => {
                return Err(QueryError::new(format!(
                    "{INVALID}: unexpected value type {}",
                    operand_kind(&other)
                )));
            }
        };
        match attribute.name.as_str() {
            "ExecutionStatus" => return status(literal),
            "ExecutionDuration" => return duration(literal),
            _ => {}
        }
        let mismatch = |literal: &Literal| {
            QueryError::new(format!(
                "{INVALID}: invalid value type for search attribute {} of type {}: {} (type: {})",
                attribute.alias,
                attribute.value_type.name(),
                literal.describe(),
                literal.go_type()
            ))
        };
        match (attribute.value_type, literal) {
            (ValueType::Int | ValueType::Double, Literal::Int(i)) => Ok(Value::Int(i)),
            (ValueType::Int | ValueType::Double, Literal::Double(d)) => Ok(Value::Double(d)),
            (ValueType::Bool, Literal::Bool(b)) => Ok(Value::Bool(b)),
            (ValueType::Datetime, Literal::Int(nanos)) => {
                Ok(Value::Datetime(Timestamp::from_unix_nanos(nanos)))
            }
            (ValueType::Datetime, Literal::Str(s)) => match parse_rfc3339(&s) {
                Some(t) => Ok(Value::Datetime(t)),
                None => Err(QueryError::new(format!(
                    "{INVALID}: unable to parse datetime '{s}'"
                ))),
            },
            (ValueType::Keyword | ValueType::KeywordList | ValueType::Text, Literal::Str(s)) => {
                Ok(Value::String(s))
            }
            (_, literal) => Err(mismatch(&literal)),
        }
    }
}

/// Refuses an operator the attribute's type does not take.
fn check_operator(attribute: &Attribute, op: &str) -> Result<(), QueryError> {
    let comparisons = ["=", "!=", "<", "<=", ">", ">=", "in", "not in"];
    let allowed: &[&str] = match attribute.value_type {
        ValueType::Keyword => &[
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "in",
            "not in",
            "starts_with",
            "not starts_with",
        ],
        ValueType::KeywordList => &["=", "!=", "in", "not in"],
        ValueType::Text => &["=", "!="],
        _ => &comparisons,
    };
    if allowed.contains(&op) {
        Ok(())
    } else {
        Err(QueryError::new(format!(
            "{NOT_SUPPORTED}: operator '{}' not supported for {} type search attribute '{}'",
            op.to_ascii_uppercase(),
            attribute.value_type.name(),
            attribute.alias
        )))
    }
}

fn status(literal: Literal) -> Result<Value, QueryError> {
    match literal {
        Literal::Int(i) => match i32::try_from(i) {
            Ok(n) if (0..STATUSES.len() as i32).contains(&n) => Ok(Value::Status(n)),
            _ => Err(QueryError::new(format!(
                "{INVALID}: invalid ExecutionStatus value {i}"
            ))),
        },
        Literal::Str(s) => STATUSES
            .iter()
            .position(|(short, long)| *short == s || *long == s)
            .map(|n| Value::Status(n as i32))
            .ok_or_else(|| {
                QueryError::new(format!("{INVALID}: invalid ExecutionStatus value '{s}'"))
            }),
        other => Err(QueryError::new(format!(
            "{INVALID}: unexpected value type {} for search attribute ExecutionStatus",
            other.go_type()
        ))),
    }
}

fn duration(literal: Literal) -> Result<Value, QueryError> {
    match literal {
        Literal::Int(nanos) => Ok(Value::Int(nanos)),
        Literal::Str(s) => parse_execution_duration(&s).map(Value::Int).ok_or_else(|| {
            QueryError::new(format!(
                "{INVALID}: invalid duration value for search attribute ExecutionDuration: {s}"
            ))
        }),
        other => Err(QueryError::new(format!(
            "{INVALID}: unexpected value type {} for search attribute ExecutionDuration",
            other.go_type()
        ))),
    }
}

/// How a message names an operand that is not what it should be: the Go type Temporal's parser
/// gives it, as Temporal's messages do.
fn operand_kind(operand: &Operand) -> &'static str {
    match operand {
        Operand::Name(_) => "*sqlparser.ColName",
        Operand::Str(_) | Operand::Number(_) => "*sqlparser.SQLVal",
        Operand::Bool(_) => "sqlparser.BoolVal",
        Operand::Null => "*sqlparser.NullVal",
        Operand::Unsupported("function") => "*sqlparser.FuncExpr",
        Operand::Unsupported("tuple") => "sqlparser.ValTuple",
        Operand::Unsupported(_) => "*sqlparser.BinaryExpr",
    }
}
