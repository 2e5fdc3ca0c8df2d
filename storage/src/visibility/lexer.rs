//! Tokens of the list-filter language: the MySQL dialect Temporal parses a query in (it wraps
//! the query as the `WHERE` clause of a `SELECT`). Keywords are case-insensitive; names are not.

use super::QueryError;

/// One token and the byte offset just past it in the query (for error messages).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: Kind,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// A name, bare or in backquotes.
    Name(String),
    /// A quoted string, escapes resolved.
    Str(String),
    /// A number as written (digits, fraction, exponent).
    Number(String),
    Keyword(Keyword),
    /// `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `<=>`.
    Compare(&'static str),
    LeftParen,
    RightParen,
    Comma,
    Semicolon,
    Minus,
    /// `+`, `*`, `/`, `%`, `.`: arithmetic and qualified names, which no query may use.
    Other(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    And,
    Or,
    Not,
    In,
    Between,
    Is,
    Null,
    True,
    False,
    Like,
    Regexp,
    StartsWith,
    Order,
    Group,
    By,
    Asc,
    Desc,
    Limit,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Keyword> {
        Some(match word.to_ascii_lowercase().as_str() {
            "and" => Keyword::And,
            "or" => Keyword::Or,
            "not" => Keyword::Not,
            "in" => Keyword::In,
            "between" => Keyword::Between,
            "is" => Keyword::Is,
            "null" => Keyword::Null,
            "true" => Keyword::True,
            "false" => Keyword::False,
            "like" => Keyword::Like,
            "regexp" | "rlike" => Keyword::Regexp,
            "starts_with" => Keyword::StartsWith,
            "order" => Keyword::Order,
            "group" => Keyword::Group,
            "by" => Keyword::By,
            "asc" => Keyword::Asc,
            "desc" => Keyword::Desc,
            "limit" => Keyword::Limit,
            _ => return None,
        })
    }
}

impl Kind {
    /// The token as a syntax error quotes it (`near '...'`): words, numbers and strings
    /// (keywords in lower case, as MySQL's parser reports them); punctuation is not quoted.
    pub(super) fn near(&self) -> Option<String> {
        match self {
            Kind::Name(n) => Some(n.clone()),
            Kind::Str(s) => Some(s.clone()),
            Kind::Number(n) => Some(n.clone()),
            Kind::Keyword(k) => Some(format!("{k:?}").to_ascii_lowercase()),
            _ => None,
        }
    }
}

/// Splits `query` into tokens.
pub(super) fn tokens(query: &str) -> Result<Vec<Token>, QueryError> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Comments, as MySQL reads them: `#` or `-- ` to the end of the line, `/* */`.
        let dash_comment =
            bytes[i..].starts_with(b"--") && bytes.get(i + 2).is_none_or(u8::is_ascii_whitespace);
        if c == b'#' || dash_comment {
            i = line_end(bytes, i);
            continue;
        }
        if bytes[i..].starts_with(b"/*") {
            match query[i + 2..].find("*/") {
                Some(n) => i += n + 4,
                None => return Err(QueryError::syntax(query.len(), None)),
            }
            continue;
        }
        if let Some((kind, len)) = punctuation(&bytes[i..]) {
            i += len;
            out.push(Token { kind, end: i });
            continue;
        }
        let kind = match c {
            b'\'' | b'"' => {
                let (text, end) = quoted(query, i, c)?;
                i = end;
                Kind::Str(text)
            }
            b'`' => {
                let (text, end) = quoted(query, i, c)?;
                i = end;
                Kind::Name(text)
            }
            b'0'..=b'9' | b'.' => {
                i = number_end(bytes, i);
                // A name may start with digits (`1abc`), as in MySQL.
                if bytes.get(i).is_some_and(|b| is_name_byte(*b)) {
                    i = name_end(query, i);
                    Kind::Name(query[start..i].to_string())
                } else {
                    Kind::Number(query[start..i].to_string())
                }
            }
            _ if is_name_byte(c) || c >= 0x80 => {
                i = name_end(query, i);
                let word = &query[start..i];
                match Keyword::from_word(word) {
                    Some(k) => Kind::Keyword(k),
                    None => Kind::Name(word.to_string()),
                }
            }
            _ => {
                let near: String = query[start..].chars().next().into_iter().collect();
                return Err(QueryError::syntax(start + near.len(), Some(&near)));
            }
        };
        out.push(Token { kind, end: i });
    }
    Ok(out)
}

/// The operator or punctuation token at the start of `rest`, and its length.
fn punctuation(rest: &[u8]) -> Option<(Kind, usize)> {
    const LONGEST_FIRST: &[(&str, Kind)] = &[
        ("<=>", Kind::Compare("<=>")),
        ("<=", Kind::Compare("<=")),
        (">=", Kind::Compare(">=")),
        ("!=", Kind::Compare("!=")),
        ("<>", Kind::Compare("!=")),
        ("&&", Kind::Keyword(Keyword::And)),
        ("||", Kind::Keyword(Keyword::Or)),
        ("=", Kind::Compare("=")),
        ("<", Kind::Compare("<")),
        (">", Kind::Compare(">")),
        ("(", Kind::LeftParen),
        (")", Kind::RightParen),
        (",", Kind::Comma),
        (";", Kind::Semicolon),
        ("-", Kind::Minus),
        ("+", Kind::Other('+')),
        ("*", Kind::Other('*')),
        ("/", Kind::Other('/')),
        ("%", Kind::Other('%')),
    ];
    // A dot before a digit starts a number (`.5`).
    if rest[0] == b'.' && !rest.get(1).is_some_and(u8::is_ascii_digit) {
        return Some((Kind::Other('.'), 1));
    }
    LONGEST_FIRST
        .iter()
        .find(|(text, _)| rest.starts_with(text.as_bytes()))
        .map(|(text, kind)| (kind.clone(), text.len()))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// The end of a name starting at `i` (ASCII name bytes and any non-ASCII character).
fn name_end(query: &str, i: usize) -> usize {
    query[i..]
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii() && is_name_byte(c as u8) || !c.is_ascii()))
        .map_or(query.len(), |(n, _)| i + n)
}

/// The end of a number starting at `i`: digits, an optional fraction, an optional exponent.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    let digits = |bytes: &[u8], mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    i = digits(bytes, i);
    if bytes.get(i) == Some(&b'.') {
        i = digits(bytes, i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(bytes, j);
        }
    }
    i
}

/// The text of a quoted string or name starting at `start` with quote `q`, and the offset past
/// its closing quote. A doubled quote stands for itself; in strings a backslash escapes the
/// next character, as in MySQL.
fn quoted(query: &str, start: usize, q: u8) -> Result<(String, usize), QueryError> {
    let mut text = String::new();
    let mut chars = query[start + 1..].char_indices().peekable();
    while let Some((n, c)) = chars.next() {
        let at = start + 1 + n;
        if c == q as char {
            if chars.peek().is_some_and(|&(_, next)| next == c) {
                chars.next();
                text.push(c);
                continue;
            }
            return Ok((text, at + 1));
        }
        if c == '\\' && q != b'`' {
            match chars.next() {
                Some((_, e)) => {
                    let resolved = match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        'b' => '\u{8}',
                        'Z' => '\u{1a}',
                        // `\%` and `\_` keep their backslash (they are LIKE escapes in MySQL).
                        '%' | '_' => {
                            text.push('\\');
                            e
                        }
                        other => other,
                    };
                    text.push(resolved);
                }
                None => break,
            }
            continue;
        }
        text.push(c);
    }
    Err(QueryError::syntax(query.len(), Some(&query[start + 1..])))
}

fn line_end(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| i + n)
}
