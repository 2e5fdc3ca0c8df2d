//! The syntax of a list filter, before names and values are checked: a condition tree over
//! operands, optional `GROUP BY`, `ORDER BY` and `LIMIT` clauses. What MySQL's grammar parses
//! but Temporal's visibility refuses (functions, arithmetic, `LIKE`, `ORDER BY`...) is parsed
//! here so that [`super::filter`] can refuse it with Temporal's message rather than a syntax
//! error.

use super::QueryError;
use super::lexer::{Keyword, Kind, Token, tokens};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Syntax {
    pub condition: Option<Condition>,
    pub group_by: Vec<Operand>,
    pub order_by: Vec<Operand>,
    pub limit: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Paren(Box<Condition>),
    /// `left op right`, `op` one of `=`, `!=`, `<`, `<=`, `>`, `>=`, `<=>`, `like`,
    /// `not like`, `regexp`, `not regexp`, `starts_with`, `not starts_with`.
    Compare(Operand, &'static str, Operand),
    In(Operand, Vec<Operand>, bool),
    Between(Operand, Operand, Operand, bool),
    /// `IS [NOT] NULL`, or `IS [NOT] TRUE|FALSE` (which no query may use).
    Is(Operand, &'static str),
    /// An operand where a condition belongs (`WorkflowId`, `1`).
    Bare(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    Name(String),
    Str(String),
    /// A number as written, with its sign.
    Number(String),
    Bool(bool),
    Null,
    /// Anything else MySQL would accept here (a function call, arithmetic, a qualified name),
    /// named for the message that refuses it.
    Unsupported(&'static str),
}

/// Parses `query` as the `WHERE` clause Temporal wraps it in (or as `GROUP BY ...`/`ORDER BY ...`
/// alone).
pub(super) fn parse(query: &str) -> Result<Syntax, QueryError> {
    let mut p = Parser {
        tokens: tokens(query)?,
        at: 0,
        len: query.len(),
    };
    let clause_first = matches!(
        p.peek(),
        Some(Kind::Keyword(Keyword::Order | Keyword::Group))
    ) && p.peek_at(1) == Some(&Kind::Keyword(Keyword::By));
    let condition = if clause_first || p.peek().is_none() {
        None
    } else {
        Some(p.condition()?)
    };
    let mut syntax = Syntax {
        condition,
        group_by: Vec::new(),
        order_by: Vec::new(),
        limit: false,
    };
    if p.eat_keywords(&[Keyword::Group, Keyword::By]) {
        syntax.group_by = p.operand_list()?;
    }
    if p.eat_keywords(&[Keyword::Order, Keyword::By]) {
        loop {
            syntax.order_by.push(p.operand()?);
            // The direction is optional.
            let _ = p.eat_keyword(Keyword::Asc) || p.eat_keyword(Keyword::Desc);
            if !p.eat(&Kind::Comma) {
                break;
            }
        }
    }
    if p.eat_keyword(Keyword::Limit) {
        syntax.limit = true;
        p.number()?;
        if p.eat(&Kind::Comma) {
            p.number()?;
        }
    }
    // A statement may end with a semicolon.
    p.eat(&Kind::Semicolon);
    match p.tokens.get(p.at) {
        None => Ok(syntax),
        Some(t) => Err(p.unexpected(t)),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Length of the query, for errors at its end.
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Kind> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Option<&Kind> {
        self.tokens.get(self.at + n).map(|t| &t.kind)
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        match self.tokens.get(self.at) {
            Some(t) => {
                self.at += 1;
                Ok(t.clone())
            }
            None => Err(QueryError::syntax(self.len, None)),
        }
    }

    fn eat(&mut self, kind: &Kind) -> bool {
        if self.peek() == Some(kind) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_keyword(&mut self, k: Keyword) -> bool {
        self.eat(&Kind::Keyword(k))
    }

    fn eat_keywords(&mut self, ks: &[Keyword]) -> bool {
        let all = ks
            .iter()
            .enumerate()
            .all(|(n, k)| self.peek_at(n) == Some(&Kind::Keyword(*k)));
        if all {
            self.at += ks.len();
        }
        all
    }

    fn expect(&mut self, kind: &Kind) -> Result<(), QueryError> {
        let t = self.next()?;
        if &t.kind == kind {
            Ok(())
        } else {
            Err(self.unexpected(&t))
        }
    }

    fn unexpected(&self, t: &Token) -> QueryError {
        QueryError::syntax(t.end, t.kind.near().as_deref())
    }

    /// `or_condition`: lowest precedence first, as MySQL: OR, AND, NOT, predicates.
    fn condition(&mut self) -> Result<Condition, QueryError> {
        let mut left = self.and_condition()?;
        while self.eat_keyword(Keyword::Or) {
            let right = self.and_condition()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_condition(&mut self) -> Result<Condition, QueryError> {
        let mut left = self.not_condition()?;
        while self.eat_keyword(Keyword::And) {
            let right = self.not_condition()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not_condition(&mut self) -> Result<Condition, QueryError> {
        if self.eat_keyword(Keyword::Not) {
            return Ok(Condition::Not(Box::new(self.not_condition()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Condition, QueryError> {
        if self.peek() == Some(&Kind::LeftParen) {
            self.at += 1;
            let inner = self.condition()?;
            self.expect(&Kind::RightParen)?;
            return Ok(Condition::Paren(Box::new(inner)));
        }
        let left = self.operand()?;
        let negated = self.eat_keyword(Keyword::Not);
        let Some(kind) = self.peek().cloned() else {
            if negated {
                return Err(QueryError::syntax(self.len, None));
            }
            return Ok(Condition::Bare(left));
        };
        let compare = |op: &'static str, not_op: &'static str| if negated { not_op } else { op };
        let condition = match kind {
            Kind::Compare(op) if !negated => {
                self.at += 1;
                Condition::Compare(left, op, self.operand()?)
            }
            Kind::Keyword(Keyword::Like) => {
                self.at += 1;
                Condition::Compare(left, compare("like", "not like"), self.operand()?)
            }
            Kind::Keyword(Keyword::Regexp) => {
                self.at += 1;
                Condition::Compare(left, compare("regexp", "not regexp"), self.operand()?)
            }
            Kind::Keyword(Keyword::StartsWith) => {
                self.at += 1;
                let op = compare("starts_with", "not starts_with");
                Condition::Compare(left, op, self.operand()?)
            }
            Kind::Keyword(Keyword::In) => {
                self.at += 1;
                self.expect(&Kind::LeftParen)?;
                let values = self.operand_list()?;
                self.expect(&Kind::RightParen)?;
                Condition::In(left, values, negated)
            }
            Kind::Keyword(Keyword::Between) => {
                self.at += 1;
                let from = self.operand()?;
                let and = self.next()?;
                if and.kind != Kind::Keyword(Keyword::And) {
                    return Err(self.unexpected(&and));
                }
                Condition::Between(left, from, self.operand()?, negated)
            }
            Kind::Keyword(Keyword::Is) if !negated => {
                self.at += 1;
                let not = self.eat_keyword(Keyword::Not);
                let t = self.next()?;
                let what = match t.kind {
                    Kind::Keyword(Keyword::Null) => "null",
                    Kind::Keyword(Keyword::True) => "true",
                    Kind::Keyword(Keyword::False) => "false",
                    _ => return Err(self.unexpected(&t)),
                };
                let op = match (not, what) {
                    (false, "null") => "is null",
                    (true, "null") => "is not null",
                    (false, "true") => "is true",
                    (true, "true") => "is not true",
                    (false, _) => "is false",
                    (true, _) => "is not false",
                };
                Condition::Is(left, op)
            }
            _ if negated => {
                let t = self.next()?;
                return Err(self.unexpected(&t));
            }
            _ => Condition::Bare(left),
        };
        Ok(condition)
    }

    fn operand_list(&mut self) -> Result<Vec<Operand>, QueryError> {
        let mut list = vec![self.operand()?];
        while self.eat(&Kind::Comma) {
            list.push(self.operand()?);
        }
        Ok(list)
    }

    fn number(&mut self) -> Result<String, QueryError> {
        let t = self.next()?;
        match t.kind {
            Kind::Number(n) => Ok(n),
            _ => Err(self.unexpected(&t)),
        }
    }

    /// A value or a name; arithmetic and calls are parsed to be refused by name.
    fn operand(&mut self) -> Result<Operand, QueryError> {
        let first = self.primary()?;
        if matches!(self.peek(), Some(Kind::Other(_) | Kind::Minus)) {
            self.at += 1;
            self.primary()?;
            while matches!(self.peek(), Some(Kind::Other(_) | Kind::Minus)) {
                self.at += 1;
                self.primary()?;
            }
            return Ok(Operand::Unsupported("arithmetic"));
        }
        Ok(first)
    }

    fn primary(&mut self) -> Result<Operand, QueryError> {
        let t = self.next()?;
        Ok(match t.kind {
            Kind::Name(name) => {
                if self.eat(&Kind::LeftParen) {
                    if !self.eat(&Kind::RightParen) {
                        self.operand_list()?;
                        self.expect(&Kind::RightParen)?;
                    }
                    Operand::Unsupported("function")
                } else {
                    // A qualified name (`a.b`) is a name no attribute has.
                    let mut name = name;
                    while self.peek() == Some(&Kind::Other('.')) {
                        if let Some(Kind::Name(part)) = self.peek_at(1).cloned() {
                            self.at += 2;
                            name = format!("{name}.{part}");
                        } else {
                            break;
                        }
                    }
                    Operand::Name(name)
                }
            }
            Kind::Str(s) => Operand::Str(s),
            Kind::Number(n) => Operand::Number(n),
            Kind::Keyword(Keyword::True) => Operand::Bool(true),
            Kind::Keyword(Keyword::False) => Operand::Bool(false),
            Kind::Keyword(Keyword::Null) => Operand::Null,
            Kind::Minus => match self.primary()? {
                Operand::Number(n) if n.starts_with('-') => Operand::Number(n[1..].to_string()),
                Operand::Number(n) => Operand::Number(format!("-{n}")),
                _ => Operand::Unsupported("arithmetic"),
            },
            Kind::LeftParen => {
                // A parenthesised value (or tuple) where an operand belongs.
                self.operand_list()?;
                self.expect(&Kind::RightParen)?;
                Operand::Unsupported("tuple")
            }
            _ => return Err(self.unexpected(&t)),
        })
    }
}
