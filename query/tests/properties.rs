//! Properties over random input: the parser never panics, its error spans are slices of
//! the input, and the canonical form of every accepted query parses back to the same
//! tree.
//!
//! Three sources of input: arbitrary strings (any Unicode, control characters included),
//! a soup of the grammar's own tokens glued at random (which reaches deep into the
//! parser far more often than random characters do), and generated valid queries
//! (which exercise the canonical form on every construct).

use epitaph_query::{Filter, Query, QueryError, parse};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Asserts the properties for one input, whatever `parse` makes of it.
fn check(input: &str) -> Result<(), TestCaseError> {
    match parse(input) {
        Ok(query) => {
            check_filter_spans(input, &query.filter)?;
            check_round_trip(input, query)
        }
        Err(error) => check_error_span(input, &error),
    }
}

fn check_error_span(input: &str, error: &QueryError) -> Result<(), TestCaseError> {
    let span = &error.span;
    prop_assert!(
        span.start <= span.end,
        "{span:?} is backwards for {input:?}"
    );
    prop_assert!(
        span.end <= input.len(),
        "{span:?} is past the end of {input:?}"
    );
    prop_assert!(
        input.is_char_boundary(span.start) && input.is_char_boundary(span.end),
        "{span:?} splits a char of {input:?}"
    );
    prop_assert!(!error.message.is_empty());
    let prefix = format!("at {}: ", span.start);
    prop_assert!(error.to_string().starts_with(&prefix));
    // Rendering must not panic either, and always shows a caret.
    prop_assert!(error.render(input).contains('^'));
    Ok(())
}

fn check_filter_spans(input: &str, filter: &Filter) -> Result<(), TestCaseError> {
    let span = filter.span();
    prop_assert!(
        span.start <= span.end
            && span.end <= input.len()
            && input.is_char_boundary(span.start)
            && input.is_char_boundary(span.end),
        "filter span {span:?} is not a slice of {input:?}"
    );
    match filter {
        Filter::And { operands, .. } | Filter::Or { operands, .. } => {
            prop_assert!(operands.len() >= 2);
            for operand in operands {
                check_filter_spans(input, operand)?;
            }
        }
        Filter::Not { operand, .. } => check_filter_spans(input, operand)?,
        _ => {}
    }
    Ok(())
}

fn check_round_trip(input: &str, query: Query) -> Result<(), TestCaseError> {
    let canonical = query.to_string();
    let reparsed = parse(&canonical).map_err(|error| {
        TestCaseError::fail(format!(
            "the canonical form {canonical:?} of {input:?} does not parse:\n{}",
            error.render(&canonical)
        ))
    })?;
    prop_assert_eq!(
        reparsed.to_string(),
        canonical.clone(),
        "canonical form is not stable for {:?}",
        input
    );
    prop_assert_eq!(
        reparsed.with_spans_cleared(),
        query.with_spans_cleared(),
        "{:?} and its canonical form {:?} differ",
        input,
        canonical
    );
    Ok(())
}

const TOKENS: &[&str] = &[
    "service:",
    "version:",
    "severity:",
    "timestamp:",
    "attrs.x.y:",
    "body:",
    "level:",
    "host:",
    "value:",
    "foo:",
    "web",
    "latest",
    "previous",
    "500",
    "-3",
    "2.5",
    "2026-11-26T10:00:00Z",
    "now-1h",
    "\"",
    "\"a b\"",
    "\"\\\"\"",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "TO",
    "AND",
    "OR",
    "NOT",
    "-",
    "*",
    "?",
    "web-*",
    "/",
    "/re.*/",
    "/a|b/",
    "\\",
    "\\:",
    ">",
    ">=",
    "<",
    "<=",
    ":",
    "=",
    "|",
    "stats",
    "STATS",
    "count()",
    "count(",
    "count(*)",
    "p99(value)",
    "avg(severity)",
    "sum(version)",
    "as",
    "n",
    "by",
    ",",
    "timechart",
    "span=1m",
    "span=0s",
    "span",
    "top",
    "10",
    "0",
    "limit",
    "sort",
    "asc",
    "desc",
    "fields",
    "patterns",
    "é",
    "日本",
    "🎉",
    "\t",
    "\n",
    "\r",
    "\u{0}",
    "\u{200b}",
    "\u{3000}",
    "\u{85}",
];

const SEPARATORS: &[&str] = &["", " ", " ", "  ", "\n"];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(TOKENS),
            prop::sample::select(SEPARATORS),
        ),
        0..24,
    )
    .prop_map(|pieces| {
        pieces
            .into_iter()
            .flat_map(|(token, separator)| [token, separator])
            .collect()
    })
}

const STAGE_TOKENS: &[&str] = &[
    "stats",
    "STATS",
    "timechart",
    "top",
    "fields",
    "sort",
    "limit",
    "patterns",
    "count()",
    "count(",
    "count(*)",
    "(",
    ")",
    "*",
    "p99",
    "p99(value)",
    "avg(severity)",
    "max(timestamp)",
    "count_distinct(host)",
    "rate()",
    "sum(body)",
    "value",
    "version",
    "level",
    "host",
    "body",
    "attrs.x",
    "by",
    "BY",
    "as",
    "n",
    ",",
    "=",
    "span",
    "span=1m",
    "span=",
    "1m",
    "0s",
    "10",
    "0",
    "-1",
    "asc",
    "desc",
    "count",
    "pattern",
    "unique",
    "|",
    "é",
    "\"",
    ":",
];

const STAGE_KEYWORDS: &[&str] = &[
    "stats",
    "timechart span=1m",
    "top 3",
    "fields",
    "sort by",
    "limit",
    "patterns",
];

/// A filter, then stages that each open with a stage keyword and go on with stage tokens
/// glued at random: reaches every branch of the stage parser.
fn pipeline_soup() -> impl Strategy<Value = String> {
    let tail = prop::collection::vec(
        (
            prop::sample::select(STAGE_TOKENS),
            prop::sample::select(SEPARATORS),
        ),
        0..8,
    );
    let stage = (prop::sample::select(STAGE_KEYWORDS), tail);
    (
        prop::sample::select(VALID_TERMS),
        prop::collection::vec(stage, 1..4),
    )
        .prop_map(|(filter, stages)| {
            let mut query = filter.to_string();
            for (keyword, tail) in stages {
                query.push_str(" | ");
                query.push_str(keyword);
                query.push(' ');
                for (token, separator) in tail {
                    query.push_str(token);
                    query.push_str(separator);
                }
            }
            query
        })
}

fn any_chars() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..48).prop_map(String::from_iter)
}

/// Terms that parse on their own, covering every kind of filter leaf.
const VALID_TERMS: &[&str] = &[
    "web",
    "timeout",
    "\"connection refused\"",
    "\"say \\\"hi\\\" \\\\ now\"",
    "service:web",
    "service:\"my svc\"",
    "service:\"\"",
    "host:web-*",
    "host:*-1?",
    "conn?ction",
    "source:/.*nginx.*/",
    "/GET \\/api|POST/",
    "severity:[9 TO 17]",
    "severity:{1 TO *]",
    "severity:[* TO 9}",
    "severity:>=13",
    "attrs.duration_ms:<250",
    "attrs.duration_ms:>-2.5e3",
    "attrs.name:>\"=x\"",
    "attrs.name:[\"TO\" TO \"a b\"]",
    "timestamp:>2026-11-26T10:00:00Z",
    "timestamp:[now-1h TO now]",
    "timestamp:<2026-11-26",
    "version:latest",
    "version:previous",
    "version:\"latest\"",
    "version:\\previous",
    "version:2026.11.26-3f2a",
    "attrs.http.status:500",
    "attrs.user_id:*",
    "attrs.path:\\/health",
    "attrs.q:\"x y\"",
    "attrs.x:a\\ b",
    "body:\"a b\"",
    "body:error",
    "*",
    "level:(error OR warn)",
    "host:(web-* -web-3)",
    "severity:([1 TO 4] OR >=17)",
    "foo\\:bar",
    "\\-x",
    "\\AND",
    "\\*",
    "a\\ b",
    "instance:i-0:7",
    "überweisung",
    "日本",
    "[ERROR]",
    "a>b",
    "10:42:07",
    "-",
];

const VALID_PIPELINES: &[&str] = &[
    "",
    " | stats count()",
    " | stats count(), p99(value) as p by version, generation | sort by p desc | limit 5",
    " | stats count() by version | sort by count desc, version",
    " | stats count_distinct(host), rate() | fields rate",
    " | timechart span=5m avg(attrs.ms) by level",
    " | timechart span=90s count(), max(timestamp)",
    " | top 3 host | sort by count asc",
    " | patterns by service | fields pattern, count",
    " | patterns",
    " | fields timestamp, body | sort by timestamp desc | limit 10",
    " | sort severity | limit 1",
];

fn valid_filter() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(VALID_TERMS).prop_map(str::to_string);
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

const AGGREGATIONS: &[&str] = &[
    "count()",
    "count(host)",
    "sum(value)",
    "avg(attrs.ms)",
    "min(timestamp)",
    "max(severity)",
    "p50(value)",
    "P90(value)",
    "p95(value)",
    "p99(attrs.ms)",
    "count_distinct(version)",
    "rate()",
    "rate(value)",
];

const GROUP_BY: &[&str] = &[
    "version",
    "generation",
    "level",
    "attrs.http.status",
    "severity",
];

/// `stats` with random aggregations, aliases and group-by fields, sorted by one of its
/// columns and limited.
fn valid_stats() -> impl Strategy<Value = String> {
    (
        prop::sample::subsequence(AGGREGATIONS, 1..5),
        prop::collection::vec(any::<bool>(), 5),
        prop::sample::subsequence(GROUP_BY, 0..4),
        prop::sample::select(&["asc", "desc", "DESC", ""][..]),
        1u64..10_000,
    )
        .prop_map(|(aggregations, aliased, by, order, limit)| {
            let mut columns = Vec::new();
            let mut calls = Vec::new();
            for (index, aggregation) in aggregations.iter().enumerate() {
                if aliased[index] {
                    calls.push(format!("{aggregation} as a{index}"));
                    columns.push(format!("a{index}"));
                } else {
                    calls.push(aggregation.to_string());
                    columns.push(aggregation.to_lowercase().replace("()", ""));
                }
            }
            let mut stats = format!(" | stats {}", calls.join(", "));
            if !by.is_empty() {
                stats.push_str(&format!(" by {}", by.join(", ")));
            }
            let sort_column = by
                .first()
                .map_or(columns[0].clone(), |field| field.to_string());
            format!("{stats} | sort by {sort_column} {order} | limit {limit}")
        })
}

fn valid_query() -> impl Strategy<Value = String> {
    let pipeline = prop_oneof![
        prop::sample::select(VALID_PIPELINES).prop_map(str::to_string),
        valid_stats(),
    ];
    (valid_filter(), pipeline).prop_map(|(filter, pipeline)| format!("{filter}{pipeline}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_unicode_never_panics(input in any_chars()) {
        check(&input)?;
    }

    #[test]
    fn printable_strings_never_panic(input in "\\PC{0,64}") {
        check(&input)?;
    }

    #[test]
    fn token_soup_never_panics_and_round_trips(input in token_soup()) {
        check(&input)?;
    }

    #[test]
    fn stage_soup_never_panics_and_round_trips(input in pipeline_soup()) {
        check(&input)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn valid_queries_parse_and_round_trip(input in valid_query()) {
        if let Err(error) = parse(&input) {
            return Err(TestCaseError::fail(error.render(&input)));
        }
        check(&input)?;
    }
}

#[test]
fn each_valid_term_parses_and_round_trips() {
    for term in VALID_TERMS {
        parse(term).unwrap_or_else(|error| panic!("{}", error.render(term)));
        check(term).unwrap_or_else(|failure| panic!("{failure}"));
    }
    for pipeline in VALID_PIPELINES {
        let input = format!("service:web{pipeline}");
        parse(&input).unwrap_or_else(|error| panic!("{}", error.render(&input)));
        check(&input).unwrap_or_else(|failure| panic!("{failure}"));
    }
}
