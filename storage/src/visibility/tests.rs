use std::collections::BTreeMap;

use super::*;

/// The attributes the corpus's queries name (the reference server had the same registered).
pub(crate) fn attributes() -> BTreeMap<String, ValueType> {
    [
        ("CustomKeyword", ValueType::Keyword),
        ("CustomInt", ValueType::Int),
        ("CustomBool", ValueType::Bool),
        ("CustomText", ValueType::Text),
        ("CustomDouble", ValueType::Double),
        ("CustomDatetime", ValueType::Datetime),
        ("TemporalChangeVersion", ValueType::KeywordList),
        ("BuildIds", ValueType::KeywordList),
        ("TemporalNamespaceDivision", ValueType::Keyword),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

fn filter(query: &str) -> Filter {
    match parse(query, &attributes()) {
        Ok(q) => q.filter.expect("a filter"),
        Err(e) => panic!("{query}: {e}"),
    }
}

fn refused(query: &str) -> String {
    match parse(query, &attributes()) {
        Ok(q) => panic!("{query} was accepted: {q:?}"),
        Err(e) => e.message().to_string(),
    }
}

fn attr(name: &str, value_type: ValueType) -> Attribute {
    Attribute {
        name: name.into(),
        alias: name.into(),
        value_type,
    }
}

fn keyword(name: &str) -> Attribute {
    attr(name, ValueType::Keyword)
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn comparisons_take_every_operator_and_both_quotes() {
    for (op, expected) in [
        ("=", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        ("<>", CompareOp::Ne),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::Le),
        (">", CompareOp::Gt),
        (">=", CompareOp::Ge),
    ] {
        for quote in ['\'', '"'] {
            let q = format!("WorkflowId {op} {quote}a{quote}");
            assert_eq!(
                filter(&q),
                Filter::Compare {
                    attribute: keyword("WorkflowId"),
                    op: expected,
                    value: s("a")
                },
                "{q}"
            );
        }
    }
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_and_not_group() {
    let a = || Filter::Compare {
        attribute: keyword("WorkflowId"),
        op: CompareOp::Eq,
        value: s("a"),
    };
    let b = || Filter::Compare {
        attribute: keyword("WorkflowType"),
        op: CompareOp::Eq,
        value: s("b"),
    };
    let c = || Filter::Compare {
        attribute: keyword("TaskQueue"),
        op: CompareOp::Eq,
        value: s("c"),
    };
    assert_eq!(
        filter("WorkflowId = 'a' or WorkflowType = 'b' AND TaskQueue = 'c'"),
        Filter::Or(
            Box::new(a()),
            Box::new(Filter::And(Box::new(b()), Box::new(c())))
        )
    );
    assert_eq!(
        filter("(WorkflowId = 'a' || WorkflowType = 'b') && TaskQueue = 'c'"),
        Filter::And(
            Box::new(Filter::Or(Box::new(a()), Box::new(b()))),
            Box::new(c())
        )
    );
    assert_eq!(
        filter("NOT WorkflowId = 'a' AND NOT (WorkflowType = 'b')"),
        Filter::And(
            Box::new(Filter::Not(Box::new(a()))),
            Box::new(Filter::Not(Box::new(b())))
        )
    );
}

#[test]
fn in_between_starts_with_and_is_null_with_their_negations() {
    assert_eq!(
        filter("WorkflowId NOT IN ('a', \"b\")"),
        Filter::In {
            attribute: keyword("WorkflowId"),
            values: vec![s("a"), s("b")],
            negated: true
        }
    );
    assert_eq!(
        filter("HistoryLength BETWEEN 1 AND 2.5"),
        Filter::Between {
            attribute: attr("HistoryLength", ValueType::Int),
            from: Value::Int(1),
            to: Value::Double(2.5),
            negated: false
        }
    );
    assert_eq!(
        filter("WorkflowId not starts_with 'ord'"),
        Filter::StartsWith {
            attribute: keyword("WorkflowId"),
            prefix: "ord".into(),
            negated: true
        }
    );
    assert_eq!(
        filter("CloseTime IS NOT NULL"),
        Filter::IsNull {
            attribute: attr("CloseTime", ValueType::Datetime),
            negated: true
        }
    );
}

#[test]
fn values_take_their_attribute_types() {
    let value = |q: &str| match filter(q) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("ExecutionStatus = 'Running'"), Value::Status(1));
    assert_eq!(
        value("ExecutionStatus = 'WORKFLOW_EXECUTION_STATUS_TIMED_OUT'"),
        Value::Status(7)
    );
    assert_eq!(value("ExecutionStatus = 3"), Value::Status(3));
    assert_eq!(
        value("ExecutionDuration > '1m'"),
        Value::Int(60_000_000_000)
    );
    assert_eq!(value("ExecutionDuration > 5"), Value::Int(5));
    assert_eq!(
        value("StartTime > '2024-01-01T00:00:00Z'"),
        Value::Datetime(Timestamp {
            seconds: 1_704_067_200,
            nanos: 0
        })
    );
    assert_eq!(
        value("StartTime > 1500000000"),
        Value::Datetime(Timestamp {
            seconds: 1,
            nanos: 500_000_000
        })
    );
    assert_eq!(value("CustomBool = FALSE"), Value::Bool(false));
    assert_eq!(value("CustomDouble < -2"), Value::Int(-2));
    assert_eq!(value("CustomDouble < -2.5e1"), Value::Double(-25.0));
    assert_eq!(value("CustomKeyword = 'it''s'"), s("it's"));
    assert_eq!(value(r"CustomKeyword = 'a\'b\\c'"), s(r"a'b\c"));
}

#[test]
fn names_resolve_as_temporal_resolves_them() {
    let attribute = |q: &str| match filter(q) {
        Filter::Compare { attribute, .. } => attribute,
        other => panic!("{other:?}"),
    };
    let a = attribute("TemporalWorkflowId = 'x'");
    assert_eq!(
        (a.name.as_str(), a.alias.as_str()),
        ("WorkflowId", "TemporalWorkflowId")
    );
    let a = attribute("ChangeVersion = 'x'");
    assert_eq!(a.name, "TemporalChangeVersion");
    assert_eq!(a.value_type, ValueType::KeywordList);
    assert_eq!(attribute("ScheduleId = 'x'").name, "WorkflowId");
    assert_eq!(attribute("`CustomKeyword` = 'x'").name, "CustomKeyword");
    assert_eq!(
        refused("customkeyword = 'x'"),
        "invalid search attribute: customkeyword"
    );
    assert_eq!(
        refused("a.WorkflowId = 'x'"),
        "invalid search attribute: a.WorkflowId"
    );
    let q = parse("TemporalNamespaceDivision IS NULL", &attributes()).unwrap();
    assert!(q.names_namespace_division);
    let q = parse("WorkflowId = 'a'", &attributes()).unwrap();
    assert!(!q.names_namespace_division);
}

#[test]
fn operators_a_type_does_not_take_are_refused_with_temporals_messages() {
    assert_eq!(
        refused("CustomDouble STARTS_WITH 1"),
        "operation is not supported: operator 'STARTS_WITH' not supported for Double type search \
         attribute 'CustomDouble'"
    );
    assert!(refused("BuildIds > 'b'").contains("operator '>' not supported for KeywordList"));
    assert!(refused("CustomText IN ('a')").contains("operator 'IN' not supported for Text"));
    assert_eq!(
        refused("CustomText BETWEEN 'a' AND 'b'"),
        "invalid expression: cannot do range condition on search attribute 'CustomText' of type \
         Text"
    );
    assert!(refused("CustomBool BETWEEN true AND false").contains("range condition"));
    for op in ["LIKE", "NOT LIKE", "REGEXP", "NOT REGEXP", "<=>"] {
        assert_eq!(
            refused(&format!("WorkflowId {op} 'a%'")),
            format!(
                "operation is not supported: operator '{op}' not supported for Keyword type \
                 search attribute 'WorkflowId'"
            )
        );
    }
    assert_eq!(
        refused("CustomBool IS TRUE"),
        "invalid expression: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'"
    );
    // The value is checked before the operator.
    assert_eq!(
        refused("HistoryLength STARTS_WITH '1'"),
        "invalid expression: invalid value type for search attribute HistoryLength of type Int: \
         \"1\" (type: string)"
    );
    assert!(refused("WorkflowId STARTS_WITH 5").contains("Keyword: 5 (type: int64)"));
}

#[test]
fn values_of_the_wrong_type_are_refused() {
    for (query, expected) in [
        (
            "HistoryLength = 'ten'",
            "invalid value type for search attribute HistoryLength of type Int: \"ten\" (type: \
             string)",
        ),
        (
            "CustomBool = 'true'",
            "search attribute CustomBool of type Bool: \"true\" (type: string)",
        ),
        ("CustomBool = 1", "of type Bool: 1 (type: int64)"),
        ("WorkflowId = -5", "of type Keyword: -5 (type: int64)"),
        ("CustomInt = true", "of type Int: true (type: bool)"),
        (
            "CustomDatetime > 5.5",
            "of type Datetime: 5.5 (type: float64)",
        ),
        ("WorkflowId IN (1, 'a')", "of type Keyword: 1 (type: int64)"),
        (
            "StartTime > 'yesterday'",
            "unable to parse datetime 'yesterday'",
        ),
        (
            "ExecutionStatus = 'Sleeping'",
            "invalid ExecutionStatus value 'Sleeping'",
        ),
        ("ExecutionStatus = 9", "invalid ExecutionStatus value 9"),
        ("ExecutionStatus = 1.5", "unexpected value type float64"),
        ("ExecutionDuration > 'forever'", "invalid duration value"),
        ("ExecutionDuration > 1.5", "unexpected value type float64"),
        (
            "WorkflowId = NULL",
            "unexpected value type *sqlparser.NullVal",
        ),
        ("WorkflowId = 1e999", "unable to parse value \"1e999\""),
        (
            "WorkflowId = WorkflowType",
            "did you forget to quote \"WorkflowType\"?",
        ),
        ("WorkflowId = lower('x')", "nested func"),
    ] {
        let message = refused(query);
        assert!(message.contains(expected), "{query}: {message}");
    }
}

#[test]
fn clauses_temporals_sql_visibility_refuses_are_refused() {
    for (query, message) in [
        (
            "WorkflowId = 'a' ORDER BY StartTime DESC",
            "operation is not supported: 'ORDER BY' clause",
        ),
        (
            "ORDER BY StartTime",
            "operation is not supported: 'ORDER BY' clause",
        ),
        (
            "WorkflowId = 'a' LIMIT 10",
            "operation is not supported: 'LIMIT' clause",
        ),
        (
            "WorkflowId = 'a' ORDER BY StartTime LIMIT 3",
            "operation is not supported: 'LIMIT' clause",
        ),
        (
            "WorkflowId = 'a' ORDER BY Nope",
            "invalid search attribute: Nope",
        ),
        ("WorkflowId", "invalid expression: incomplete expression"),
        (
            "HistoryLength + 1 = 2",
            "invalid expression: must be a column name but was *sqlparser.BinaryExpr",
        ),
        (
            "lower(WorkflowId) = 'x'",
            "invalid expression: must be a column name but was *sqlparser.FuncExpr",
        ),
        (
            "'x'",
            "operation is not supported: expression of type *sqlparser.SQLVal",
        ),
    ] {
        assert_eq!(refused(query), message, "{query}");
    }
    assert!(refused("GROUP BY WorkflowType").contains("not supported for search attribute"));
    assert!(refused("GROUP BY ExecutionStatus, WorkflowType").contains("only a single field"));
}

#[test]
fn group_by_stands_alone_or_after_a_filter() {
    let q = parse("GROUP BY ExecutionStatus", &attributes()).unwrap();
    assert_eq!(q.filter, None);
    assert_eq!(q.group_by.unwrap().name, "ExecutionStatus");
    let q = parse("WorkflowType = 'a' group by ExecutionStatus", &attributes()).unwrap();
    assert!(q.filter.is_some() && q.group_by.is_some());
    assert_eq!(parse("  ", &attributes()).unwrap().filter, None);
    assert!(parse("WorkflowId = 'a'; # a comment", &attributes()).is_ok());
    assert!(parse("WorkflowId = /* inline */ 'a' -- to the end", &attributes()).is_ok());
}

#[test]
fn malformed_queries_are_syntax_errors_with_their_position() {
    for query in [
        "WorkflowId IN ()",
        "WorkflowId = 'a' ; DROP TABLE executions",
        "WorkflowId NOT = 'a'",
        "WorkflowId = 'a' /* unclosed",
    ] {
        let message = refused(query);
        assert!(
            message.starts_with("malformed SQL query: syntax error at position"),
            "{query}: {message}"
        );
    }
    // Positions and `near` as the reference server reports them.
    for (query, message) in [
        ("WorkflowId = 'a' AND", "at position 48"),
        (
            "WorkflowId = 'a' OR OR WorkflowId = 'b'",
            "at position 50 near 'or'",
        ),
        ("WorkflowId IN ()", "at position 44"),
        ("WorkflowId IN 'a'", "at position 45 near 'a'"),
        ("(WorkflowId = 'a'", "at position 45"),
        ("WorkflowId = 'a')", "at position 45"),
        ("WorkflowId = 'a' )", "at position 46"),
        (
            "WorkflowId = 'unterminated",
            "at position 54 near 'unterminated'",
        ),
        ("WorkflowId == 'a'", "at position 41"),
        ("WorkflowId NOT = 'a'", "at position 44"),
        ("LIMIT 10", "at position 33 near 'limit'"),
    ] {
        assert_eq!(
            refused(query),
            format!("malformed SQL query: syntax error {message}"),
            "{query}"
        );
    }
}

/// The kept corpus: queries and the reference server's answers (`reference.tsv`).
fn reference() -> Vec<(&'static str, &'static str)> {
    include_str!("reference.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .collect()
}

/// Every query the reference server was asked gets the same answer here: accepted, or refused
/// with the same message.
#[test]
fn the_reference_servers_answers_are_ours() {
    let attributes = attributes();
    let mut differ = Vec::new();
    for (answer, query) in reference() {
        let ours = match parse(query, &attributes) {
            Ok(_) => "OK".to_string(),
            Err(e) => e.message().to_string(),
        };
        if ours != answer {
            differ.push(format!(
                "{query}\n  reference: {answer}\n  sundial:   {ours}"
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// A small deterministic generator (xorshift), so the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every query of the kept corpus, and thousands of mutations of them (cuts, deletions,
/// insertions and swaps of characters and tokens), parse to a query or an error: never a
/// panic, and every error has a message.
#[test]
fn no_input_makes_the_parser_panic() {
    const PIECES: &[&str] = &[
        "(",
        ")",
        "'",
        "\"",
        "`",
        ",",
        "=",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "<=>",
        "-",
        "+",
        ".",
        "\\",
        " AND ",
        " OR ",
        " NOT ",
        " IN ",
        " BETWEEN ",
        " IS ",
        " NULL ",
        " TRUE ",
        "STARTS_WITH",
        " ORDER BY ",
        " GROUP BY ",
        " LIMIT ",
        "WorkflowId",
        "CustomBool",
        "1",
        "1.5e3",
        "é",
        "\u{0}",
        "||",
        "&&",
        " ",
        "9999999999999999999999",
    ];
    let corpus: Vec<&str> = reference().into_iter().map(|(_, q)| q).collect();
    assert!(
        corpus.len() >= 60,
        "the kept corpus has {} queries",
        corpus.len()
    );
    let attributes = attributes();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut checked = 0;
    for query in &corpus {
        let mut inputs = vec![query.to_string()];
        for _ in 0..200 {
            let mut chars: Vec<char> = query.chars().collect();
            for _ in 0..1 + rng.below(3) {
                let at = if chars.is_empty() {
                    0
                } else {
                    rng.below(chars.len() + 1)
                };
                match rng.below(4) {
                    0 => chars.truncate(at),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    2 => {
                        let piece = PIECES[rng.below(PIECES.len())];
                        for (n, c) in piece.chars().enumerate() {
                            chars.insert(at + n, c);
                        }
                    }
                    _ if chars.len() > 1 => {
                        let (last, other) = (chars.len() - 1, rng.below(chars.len()));
                        chars.swap(at.min(last), other);
                    }
                    _ => {}
                }
            }
            inputs.push(chars.into_iter().collect());
        }
        for input in inputs {
            if let Err(e) = parse(&input, &attributes) {
                assert!(!e.message().is_empty(), "{input:?}");
            }
            checked += 1;
        }
    }
    assert!(checked > 10_000);
}

/// Three runs as the reference server was asked about them: w1 (CustomKeyword gold, a text,
/// build ids b1 and b2), w2 (CustomKeyword silver, CustomInt 5), w3 (no attributes).
fn runs() -> Vec<VisibilityRow> {
    let at = |s| Timestamp {
        seconds: s,
        nanos: 0,
    };
    let run = |id: &str, indexed: Vec<(&str, IndexedValue)>| VisibilityRow {
        namespace_id: "ns".into(),
        run_id: format!("run-{id}"),
        workflow_id: id.into(),
        workflow_type: "T".into(),
        task_queue: "q".into(),
        status: 1,
        start_time: at(100),
        execution_time: at(100),
        close_time: None,
        execution_duration: None,
        history_length: None,
        history_size_bytes: None,
        state_transition_count: None,
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: id.into(),
        root_run_id: format!("run-{id}"),
        memo: Vec::new(),
        search_attributes: Vec::new(),
        indexed: indexed
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    };
    vec![
        run(
            "w1",
            vec![
                ("CustomKeyword", IndexedValue::Keyword("gold".into())),
                (
                    "CustomText",
                    IndexedValue::Text("the quick brown fox".into()),
                ),
                (
                    "BuildIds",
                    IndexedValue::KeywordList(vec!["b1".into(), "b2".into()]),
                ),
            ],
        ),
        run(
            "w2",
            vec![
                ("CustomKeyword", IndexedValue::Keyword("silver".into())),
                ("CustomInt", IndexedValue::Int(5)),
            ],
        ),
        run("w3", vec![]),
    ]
}

fn listed(query: &str, rows: &[VisibilityRow]) -> Vec<String> {
    let query = parse(query, &attributes()).unwrap_or_else(|e| panic!("{query}: {e}"));
    rows.iter()
        .filter(|r| query.filter.as_ref().is_none_or(|f| r.matches(f)))
        .map(|r| r.workflow_id.clone())
        .collect()
}

/// What the reference server (Temporal 1.32.0 on SQLite) listed for each query over the three
/// runs of [`runs`], asked with `temporal workflow list --query` on 2026-12-02.
#[test]
fn filters_list_what_the_reference_server_lists() {
    let rows = runs();
    for (query, expected) in [
        ("CustomKeyword != 'gold'", &["w2"][..]),
        ("NOT (CustomKeyword = 'gold')", &["w2"]),
        ("BuildIds = 'b1'", &["w1"]),
        ("NOT (BuildIds = 'b1')", &["w2", "w3"]),
        ("BuildIds != 'b1'", &["w2", "w3"]),
        ("BuildIds NOT IN ('b1')", &["w2", "w3"]),
        ("CustomText = 'quick FOX'", &["w1"]),
        ("CustomText = 'quick cat'", &["w1"]),
        ("CustomText = 'qui'", &[]),
        ("NOT (CustomText = 'quick')", &["w2", "w3"]),
        ("CustomText != 'quick'", &["w2", "w3"]),
        ("CustomInt < 3 OR CustomKeyword = 'gold'", &["w1"]),
        ("NOT (CustomInt < 3)", &["w2"]),
        ("CustomKeyword IS NULL", &["w3"]),
        ("BuildIds IS NULL", &["w2", "w3"]),
        ("CustomText IS NULL", &["w2", "w3"]),
        ("CustomKeyword NOT IN ('gold')", &["w2"]),
        ("CustomKeyword NOT BETWEEN 'a' AND 'h'", &["w2"]),
        ("CustomKeyword NOT STARTS_WITH 'g'", &["w2"]),
        ("CustomText = 'the'", &["w1"]),
    ] {
        assert_eq!(listed(query, &rows), expected, "{query}");
    }
}

#[test]
fn system_attributes_compare_in_their_types() {
    let mut rows = runs();
    rows[1].status = 2;
    rows[1].close_time = Some(Timestamp {
        seconds: 160,
        nanos: 0,
    });
    rows[1].execution_duration = Some(60_000_000_000);
    rows[0].history_length = Some(2);
    rows[1].history_length = Some(2);
    rows[2].history_length = Some(9_007_199_254_740_993);
    rows[0].history_size_bytes = Some(300);
    for (query, expected) in [
        ("ExecutionStatus = 'Running'", &["w1", "w3"][..]),
        ("ExecutionStatus IN ('Completed', 'Failed')", &["w2"]),
        ("ExecutionStatus != 1", &["w2"]),
        ("CloseTime IS NULL", &["w1", "w3"]),
        ("CloseTime > '1970-01-01T00:02:00Z'", &["w2"]),
        ("ExecutionDuration >= '1m'", &["w2"]),
        ("ExecutionDuration < '1m'", &[]),
        (
            "StartTime BETWEEN 100000000000 AND '1970-01-01T00:01:40Z'",
            &["w1", "w2", "w3"],
        ),
        (
            "WorkflowId STARTS_WITH 'w' AND WorkflowId > 'w1'",
            &["w2", "w3"],
        ),
        ("HistoryLength IN (2, 3)", &["w1", "w2"]),
        // Integers compare exactly, past what a double holds.
        ("HistoryLength = 9007199254740992", &[]),
        ("HistoryLength = 9007199254740993", &["w3"]),
        ("HistoryLength > 1.5", &["w1", "w2", "w3"]),
        // Figures a run has only once closed: NULL, so never compared, until then.
        ("HistorySizeBytes IS NULL", &["w2", "w3"]),
        ("HistorySizeBytes >= 0", &["w1"]),
        ("", &["w1", "w2", "w3"]),
    ] {
        assert_eq!(listed(query, &rows), expected, "{query}");
    }
}

#[test]
fn search_attribute_payloads_decode_as_temporal_decodes_them() {
    use IndexedValue as V;
    let ok = |t, json: &str| IndexedValue::decode(t, json.as_bytes()).unwrap();
    assert_eq!(
        ok(ValueType::Keyword, r#""gold""#),
        Some(V::Keyword("gold".into()))
    );
    assert_eq!(
        ok(ValueType::Keyword, r#"["gold"]"#),
        Some(V::Keyword("gold".into()))
    );
    assert_eq!(ok(ValueType::Text, r#""a b""#), Some(V::Text("a b".into())));
    assert_eq!(ok(ValueType::Int, "5"), Some(V::Int(5)));
    assert_eq!(ok(ValueType::Double, "5"), Some(V::Double(5.0)));
    assert_eq!(ok(ValueType::Bool, "true"), Some(V::Bool(true)));
    assert_eq!(
        ok(ValueType::Datetime, r#""2024-01-01T00:00:00.5Z""#),
        Some(V::Datetime(Timestamp {
            seconds: 1_704_067_200,
            nanos: 500_000_000
        }))
    );
    assert_eq!(
        ok(ValueType::KeywordList, r#"["b1", "b2"]"#),
        Some(V::KeywordList(vec!["b1".into(), "b2".into()]))
    );
    for (t, json) in [
        (ValueType::Keyword, "null"),
        (ValueType::Int, "[]"),
        (ValueType::KeywordList, "[]"),
    ] {
        assert_eq!(ok(t, json), None, "{json}");
    }
    for (t, json) in [
        (ValueType::Int, "5.5"),
        (ValueType::Int, r#""5""#),
        (ValueType::Bool, "1"),
        (ValueType::Keyword, r#"["a", "b"]"#),
        (ValueType::KeywordList, r#""a""#),
        (ValueType::KeywordList, "[1]"),
        (ValueType::Datetime, r#""yesterday""#),
        (ValueType::Text, "not json"),
    ] {
        assert!(IndexedValue::decode(t, json.as_bytes()).is_err(), "{json}");
    }
}

struct Runs(u64);

impl Runs {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn maybe(&mut self) -> bool {
        self.below(3) != 0
    }
}

fn at(seconds: i64, nanos: u32) -> Timestamp {
    Timestamp { seconds, nanos }
}

/// Runs with attributes present or not and values from small sets, so filters choose among
/// them: the rows every store's SQL is checked on.
pub(crate) fn generated_runs(count: usize) -> Vec<VisibilityRow> {
    let mut rng = Runs(0x1234_5678_9abc_def1);
    let base = 1_704_067_200; // 2024-01-01T00:00:00Z
    (0..count)
        .map(|i| {
            let start = at(
                base + rng.below(100_000) as i64,
                rng.below(1_000_000_000) as u32,
            );
            let closed = rng.maybe();
            let mut indexed = BTreeMap::new();
            if rng.maybe() {
                let v = rng.pick(&["gold", "silver", "quoted name", "x", "order-1", ""]);
                indexed.insert("CustomKeyword".into(), IndexedValue::Keyword(v.into()));
            }
            if rng.maybe() {
                let v = rng.below(9) as i64 - 3;
                indexed.insert("CustomInt".into(), IndexedValue::Int(v));
            }
            if rng.maybe() {
                indexed.insert("CustomBool".into(), IndexedValue::Bool(rng.below(2) == 0));
            }
            if rng.maybe() {
                let v = rng.pick(&["the quick brown fox", "Quick-fox!", "lazy dog", "fox"]);
                indexed.insert("CustomText".into(), IndexedValue::Text(v.into()));
            }
            if rng.maybe() {
                let v = [-1.5, 0.0, 2.5, 2000.0, 3.0][rng.below(5)];
                indexed.insert("CustomDouble".into(), IndexedValue::Double(v));
            }
            if rng.maybe() {
                let t = at(1_893_456_000 + rng.below(3) as i64 * 86_400, 0);
                indexed.insert("CustomDatetime".into(), IndexedValue::Datetime(t));
            }
            for name in ["BuildIds", "TemporalChangeVersion"] {
                if rng.maybe() {
                    let items = (0..rng.below(3))
                        .map(|_| rng.pick(&["b1", "b2", "b3", "v2"]).to_string())
                        .collect();
                    indexed.insert(name.into(), IndexedValue::KeywordList(items));
                }
            }
            // The server's own runs (a column of its own in the SQL stores).
            if rng.below(4) == 0 {
                let division = rng.pick(&["TemporalBatcher", "TemporalScheduler"]);
                indexed.insert(
                    "TemporalNamespaceDivision".into(),
                    IndexedValue::Keyword(division.into()),
                );
            }
            VisibilityRow {
                namespace_id: "ns".into(),
                run_id: format!("run-{i:03}"),
                workflow_id: format!(
                    "{}-{i}",
                    rng.pick(&["order", "a", "m", "refund", "daily", "x"])
                ),
                workflow_type: rng.pick(&["Checkout", "Refund", "a"]).into(),
                task_queue: rng.pick(&["payments", "q"]).into(),
                status: if closed { 2 + rng.below(6) as i32 } else { 1 },
                start_time: start,
                execution_time: start,
                close_time: closed.then(|| at(start.seconds + rng.below(20_000) as i64, 0)),
                execution_duration: closed
                    .then(|| rng.below(20_000) as i64 * 1_000_000_000 + rng.below(1000) as i64),
                history_length: closed.then(|| rng.below(20) as i64),
                history_size_bytes: closed.then(|| rng.below(5000) as i64),
                state_transition_count: closed.then(|| rng.below(10) as i64),
                parent_workflow_id: rng.maybe().then(|| "parent".to_string()),
                parent_run_id: None,
                root_workflow_id: "root".into(),
                root_run_id: format!("root-{}", rng.below(2)),
                memo: Vec::new(),
                search_attributes: Vec::new(),
                indexed,
            }
        })
        .collect()
}

/// Queries (beyond the corpus's accepted ones) the stores' SQL is checked with.
pub(crate) const MORE: &[&str] = &[
    "TemporalNamespaceDivision IS NULL",
    "TemporalNamespaceDivision = 'TemporalBatcher'",
    "TemporalNamespaceDivision STARTS_WITH 'Temporal' AND WorkflowType = 'a'",
    "(CustomInt > 2 OR WorkflowType = 'Refund') AND TemporalNamespaceDivision IS NULL",
    "CustomKeyword != 'gold'",
    "NOT (CustomKeyword = 'gold')",
    "CustomKeyword IN ('gold', 'x') OR CustomInt >= 2",
    "NOT (CustomKeyword IN ('gold', 'x'))",
    "CustomKeyword STARTS_WITH 'quo' OR CustomKeyword STARTS_WITH ''",
    "CustomKeyword NOT STARTS_WITH 'g'",
    "CustomKeyword BETWEEN 'a' AND 'h'",
    "CustomKeyword NOT BETWEEN 'a' AND 'h'",
    "CustomKeyword IS NULL OR CustomKeyword = ''",
    "BuildIds = 'b1'",
    "BuildIds != 'b1'",
    "BuildIds IN ('b2', 'b3')",
    "BuildIds NOT IN ('b2', 'b3')",
    "BuildIds IS NULL",
    "BuildIds IS NOT NULL AND NOT (BuildIds = 'b2')",
    "CustomText = 'quick cat'",
    "CustomText = 'FOX'",
    "CustomText != 'fox'",
    "CustomText IS NULL",
    "CustomInt < 0 OR CustomInt > 3",
    "NOT (CustomInt BETWEEN -1 AND 1)",
    "CustomInt IN (1, 2, 3)",
    "CustomInt = 2.0",
    "CustomDouble >= 2.5",
    "CustomDouble = 3",
    "CustomBool = true",
    "CustomBool != false",
    "NOT CustomBool = true",
    "CustomDatetime > '2030-01-01T12:00:00Z'",
    "CustomDatetime = '2030-01-02T00:00:00Z'",
    "ExecutionStatus = 'Running'",
    "ExecutionStatus IN ('Completed', 'Failed', 4)",
    "ExecutionStatus != 'Running' AND CloseTime IS NOT NULL",
    "CloseTime IS NULL",
    "CloseTime > '2024-01-01T12:00:00Z'",
    "ExecutionDuration > '1h'",
    "ExecutionDuration BETWEEN '00:10:00' AND '2h'",
    "ExecutionDuration IS NULL",
    "StartTime > '2024-01-01T10:00:00.5Z' AND StartTime < '2024-01-01T20:00:00Z'",
    "StartTime >= 1704100000000000000",
    "WorkflowId STARTS_WITH 'order-'",
    "WorkflowId > 'm' AND WorkflowId < 'r'",
    "WorkflowType IN ('Checkout', 'Refund') AND TaskQueue = 'payments'",
    "HistoryLength >= 10 OR HistorySizeBytes < 100",
    "StateTransitionCount BETWEEN 2 AND 4",
    "ParentWorkflowId IS NULL",
    "ParentWorkflowId = 'parent'",
    "RootRunId = 'root-1'",
    "ParentRunId IS NOT NULL",
];

/// Every filter the stores' SQL is checked with (the corpus's accepted queries that filter, and
/// [`MORE`]), with its query.
pub(crate) fn oracle_filters() -> Vec<(&'static str, Filter)> {
    let attributes = attributes();
    reference()
        .into_iter()
        .filter(|(answer, _)| *answer == "OK")
        .map(|(_, q)| q)
        .chain(MORE.iter().copied())
        .filter_map(|q| {
            let parsed = parse(q, &attributes).unwrap_or_else(|e| panic!("{q}: {e}"));
            parsed.filter.map(|f| (q, f))
        })
        .collect()
}

/// The run ids `filter` lists among `rows`, in order.
pub(crate) fn expected_runs<'a>(filter: &Filter, rows: &'a [VisibilityRow]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = rows
        .iter()
        .filter(|r| r.matches(filter))
        .map(|r| r.run_id.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

/// The generated runs make the oracle's filters choose: nearly all list some runs, not all.
#[test]
fn the_oracle_filters_choose_among_the_generated_runs() {
    let rows = generated_runs(300);
    let filters = oracle_filters();
    assert!(filters.len() > 80, "{} filters", filters.len());
    let choosing = MORE
        .iter()
        .filter(|q| {
            let f = parse(q, &attributes()).unwrap().filter.unwrap();
            let n = expected_runs(&f, &rows).len();
            n > 0 && n < rows.len()
        })
        .count();
    assert!(choosing >= MORE.len() - 3, "only {choosing} queries choose");
}
