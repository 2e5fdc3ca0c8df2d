//! Visibility's list-filter language: the query of `ListWorkflowExecutions`,
//! `CountWorkflowExecutions` and `temporal workflow list --query`, as Temporal's SQL visibility
//! accepts it. A query is parsed as the `WHERE` clause of a MySQL `SELECT` (optionally with
//! `GROUP BY`), then checked against the search attributes: every name must be one, every
//! operator must suit the attribute's type, every value must parse as that type. The result is a
//! typed [`Filter`] that each store translates into its own SQL; [`VisibilityRow::matches`]
//! says what it means for one run (SQL's three-valued logic, as Temporal's SQL visibility).
//!
//! What Temporal refuses is refused with its message ([`QueryError`]; the frontend answers
//! `InvalidArgument` with `invalid query: ` before it). Per-type operator rules follow Temporal's
//! query converter: Keyword takes comparisons, `IN` and `STARTS_WITH`; KeywordList `=`, `!=`,
//! `IN` (membership); Text `=`, `!=` (token match); Int, Double, Datetime and Bool comparisons
//! and `IN`; `BETWEEN` works on Datetime, Double, Int and Keyword; `IS [NOT] NULL` on any.
//! `ORDER BY` and `LIMIT` are refused, as Temporal's SQL visibility refuses them.
//!
//! Pure: no store, no I/O; the parser never panics, whatever the input (a test feeds it a kept
//! corpus and its mutations).

pub mod columns;
mod filter;
mod lexer;
mod listing;
mod parser;
mod row;
mod values;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;

pub use filter::{Attribute, CompareOp, Filter, Query, SYSTEM_ATTRIBUTES, Value};
pub use listing::{GroupValue, OPEN_SORT_TIME, VisibilityCount, VisibilityCursor};
pub use row::{IndexedValue, VisibilityRow, text_tokens};
pub use values::Timestamp;

/// The type of a search attribute (Temporal's `IndexedValueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ValueType {
    Bool,
    Int,
    Double,
    Datetime,
    Keyword,
    KeywordList,
    Text,
}

impl ValueType {
    /// The name Temporal's messages give the type (`KeywordList`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Bool => "Bool",
            ValueType::Int => "Int",
            ValueType::Double => "Double",
            ValueType::Datetime => "Datetime",
            ValueType::Keyword => "Keyword",
            ValueType::KeywordList => "KeywordList",
            ValueType::Text => "Text",
        }
    }
}

/// A query Temporal would refuse, with the reason in Temporal's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(String);

impl QueryError {
    fn new(message: String) -> QueryError {
        QueryError(message)
    }

    /// A syntax error at the token that ends at byte `end` of the query (`near` it, when it is
    /// a word, number or string). Positions count in the statement Temporal parses
    /// (`select * from table1 where <query>`), from 1, as its messages do.
    fn syntax(end: usize, near: Option<&str>) -> QueryError {
        const WRAPPER: usize = "select * from table1 where ".len();
        let position = WRAPPER + end + 1;
        QueryError(match near {
            Some(near) => {
                format!("malformed SQL query: syntax error at position {position} near '{near}'")
            }
            None => format!("malformed SQL query: syntax error at position {position}"),
        })
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Parses and checks `query` against the system attributes and `attributes` (the namespace's
/// predefined and custom search attributes, by name). An empty query matches every run.
pub fn parse(query: &str, attributes: &BTreeMap<String, ValueType>) -> Result<Query, QueryError> {
    filter::check(parser::parse(query.trim())?, attributes)
}
