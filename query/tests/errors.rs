//! Errors: each names the position, what was expected and what was found.

use epitaph_query::{FIELD_NAMES, QueryError, parse};

fn parse_error(input: &str) -> QueryError {
    match parse(input) {
        Ok(query) => panic!("{input:?} parsed as {query}"),
        Err(error) => error,
    }
}

#[test]
fn display_reads_at_offset_expected_found() {
    let error = parse_error("level:error | stats count() by |");
    assert_eq!(
        error.to_string(),
        r#"at 31: expected a field name after "by", found "|""#
    );
    assert_eq!(error.span, 31..32);
    assert_eq!(error.expected, ["a field name"]);
}

#[test]
fn render_points_a_caret_at_the_span() {
    let input = "level:error | stats count() by |";
    assert_eq!(
        parse_error(input).render(input),
        "level:error | stats count() by |\n                               ^\nat 31: expected a field name after \"by\", found \"|\""
    );
}

#[test]
fn missing_group_by_field_at_the_end_points_past_the_input() {
    let error = parse_error("| stats count() by");
    assert_eq!(error.span, 18..18);
    assert!(error.message.ends_with("found end of query"));
}

#[test]
fn error_points_at_unclosed_quote() {
    let error = parse_error(r#"service:web "connection refused"#);
    assert_eq!(error.span, 12..13);
    assert!(error.message.starts_with("unclosed quote"));
    assert_eq!(error.expected, ["\""]);
}

#[test]
fn escaped_closing_quote_leaves_the_quote_open() {
    assert_eq!(parse_error(r#""abc\""#).span, 0..1);
}

#[test]
fn error_points_at_unclosed_parenthesis() {
    let error = parse_error("level:error (a OR b");
    assert_eq!(error.span, 12..13);
    assert_eq!(
        error.message,
        "expected \")\" to close this \"(\", found end of query"
    );
}

#[test]
fn unmatched_closing_parenthesis() {
    let error = parse_error("a b) c");
    assert_eq!(error.span, 3..4);
    assert!(error.message.starts_with("unmatched \")\""));
}

#[test]
fn pipe_inside_parentheses_is_not_a_term() {
    let error = parse_error("(| limit 1");
    assert_eq!(error.span, 1..2);
    assert!(
        error.message.starts_with("expected a term"),
        "{}",
        error.message
    );
    assert!(error.message.ends_with("found \"|\""));
}

#[test]
fn empty_parentheses() {
    assert_eq!(parse_error("a () b").span, 2..4);
}

#[test]
fn unknown_field_lists_known_fields() {
    let error = parse_error("level:error path:/health/");
    assert_eq!(error.span, 12..16);
    assert!(
        error
            .message
            .starts_with("unknown field \"path\"; known fields are service, image, version")
    );
    assert!(error.message.contains("attrs.<key>"));
    for known in FIELD_NAMES {
        assert!(error.expected.iter().any(|item| item == known), "{known}");
    }
    assert!(error.expected.iter().any(|item| item == "attrs.<key>"));
}

#[test]
fn unknown_field_suggests_a_close_one() {
    assert!(
        parse_error("servce:web")
            .message
            .starts_with("unknown field \"servce\" (did you mean \"service\"?)")
    );
    assert!(
        parse_error("attributes.x:1")
            .message
            .contains("did you mean \"attrs.x\"")
    );
}

#[test]
fn url_in_a_bare_word_hints_at_quoting() {
    assert!(
        parse_error("http://example.com")
            .message
            .contains("quote it")
    );
}

#[test]
fn malformed_attribute_names() {
    for input in ["attrs:x", "attrs..a:x", "attrs.a.:x"] {
        let error = parse_error(input);
        assert!(
            error
                .message
                .starts_with("attributes are named attrs.<key>"),
            "{input}"
        );
    }
}

#[test]
fn operator_without_operand() {
    let error = parse_error("a AND");
    assert_eq!(error.span, 5..5);
    assert!(error.message.starts_with("expected a word"));
    assert!(error.message.contains("after \"AND\", found end of query"));
    assert_eq!(parse_error("a OR OR b").span, 5..7);
    assert_eq!(parse_error("NOT | limit 1").span, 4..5);
    assert_eq!(parse_error("OR b").message, "expected a term before \"OR\"");
}

#[test]
fn value_must_follow_the_colon() {
    let error = parse_error("service: web");
    assert_eq!(error.span, 8..9);
    assert_eq!(
        error.message,
        "expected a value right after \"service:\", found a space"
    );
    assert!(
        parse_error("service:")
            .message
            .ends_with("found end of query")
    );
    assert_eq!(parse_error("(service:)").span, 9..10);
}

#[test]
fn severity_must_be_a_number() {
    let error = parse_error("severity:warn");
    assert_eq!(error.span, 9..13);
    assert_eq!(
        error.message,
        "severity is a whole number from 1 to 24, found \"warn\"; level:warn matches by level name"
    );
    assert!(
        parse_error("severity:>=-1")
            .message
            .starts_with("severity is a whole number")
    );
    assert!(
        parse_error("value:fast")
            .message
            .starts_with("value is a number field")
    );
}

#[test]
fn timestamp_must_be_a_time() {
    let error = parse_error("timestamp:>yesterday");
    assert_eq!(error.span, 11..20);
    assert!(
        error
            .message
            .starts_with("timestamp needs an RFC 3339 time")
    );
    assert!(
        parse_error("timestamp:[2026-02-30 TO *]")
            .message
            .contains("2026-02-30")
    );
}

#[test]
fn wildcards_and_regexes_need_text() {
    assert_eq!(
        parse_error("severity:1*").message,
        "wildcards work on keyword, text and attribute fields, and severity is a number field"
    );
    assert!(
        parse_error("timestamp:/2026.*/")
            .message
            .starts_with("regexes work on")
    );
}

#[test]
fn ranges_and_comparisons_do_not_apply_to_the_body() {
    assert!(
        parse_error("body:[a TO b]")
            .message
            .starts_with("ranges work on keyword, number, time")
    );
    assert!(
        parse_error("body:>a")
            .message
            .starts_with("comparisons work on")
    );
}

#[test]
fn range_needs_to_and_a_closing_bracket() {
    let error = parse_error("severity:[1 5]");
    assert_eq!(error.span, 12..13);
    assert_eq!(
        error.message,
        "expected \"TO\" after the lower bound, found \"5\""
    );
    let error = parse_error("severity:[1 TO 5");
    assert_eq!(error.span, 16..16);
    assert_eq!(error.expected, ["]", "}"]);
    assert!(
        parse_error("severity:[TO 5]")
            .message
            .starts_with("expected a value or \"*\" after \"[\"")
    );
}

#[test]
fn inverted_ranges_are_empty() {
    let error = parse_error("severity:[17 TO 9]");
    assert_eq!(error.span, 0..18);
    assert!(error.message.starts_with("empty range"));
    assert!(
        parse_error("severity:{5 TO 5]")
            .message
            .starts_with("empty range")
    );
    parse("severity:[5 TO 5]").unwrap();
    assert!(
        parse_error("timestamp:[2026-11-27 TO 2026-11-26]")
            .message
            .starts_with("empty range")
    );
}

#[test]
fn comparison_needs_an_adjacent_value() {
    assert_eq!(
        parse_error("severity:>= 5").message,
        "expected a value right after \">=\", found a space"
    );
    assert!(
        parse_error("severity:>")
            .message
            .ends_with("found end of query")
    );
    assert!(
        parse_error("severity:>*")
            .message
            .starts_with("expected a value after \">\"")
    );
}

#[test]
fn regex_errors() {
    let error = parse_error("source:/var/log");
    assert_eq!(error.span, 12..13);
    assert!(error.message.contains("quote it"));
    let unclosed = parse_error("source:/var");
    assert_eq!(unclosed.span, 7..8);
    assert!(unclosed.message.starts_with("unclosed regex"));
    let invalid = parse_error("a /(unclosed/");
    assert_eq!(invalid.span, 2..13);
    assert!(
        invalid.message.starts_with("invalid regex"),
        "{}",
        invalid.message
    );
    assert!(parse_error("//").message.starts_with("empty regex"));
}

#[test]
fn empty_phrase_is_an_error() {
    assert_eq!(parse_error(r#"a """#).span, 2..4);
}

#[test]
fn dangling_backslash() {
    assert_eq!(parse_error(r"abc\").span, 3..4);
}

#[test]
fn stage_errors_point_at_the_offending_token() {
    let error = parse_error("* | stats count(version");
    assert_eq!(error.span, 23..23);
    assert_eq!(error.expected, [")"]);
    let error = parse_error("* | stats count() by version extra");
    assert_eq!(error.span, 29..34);
    assert!(
        error
            .message
            .starts_with("expected \",\", \"|\" or end of query after the stats stage")
    );
    assert_eq!(
        parse_error("* | ").message,
        "expected a stage after \"|\", found end of query; stages are stats, timechart, top, fields, sort, limit, patterns"
    );
    assert!(
        parse_error("* | stats count() by \"x\"")
            .message
            .starts_with("unexpected '\"' in a pipe stage")
    );
}

#[test]
fn spans_count_bytes_in_unicode_input() {
    let input = "überweisung fehler:1";
    let error = parse_error(input);
    assert_eq!(error.span, 13..19);
    assert_eq!(&input[error.span.clone()], "fehler");
}

#[test]
fn too_deep_nesting_is_an_error_not_a_stack_overflow() {
    let input = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_error(&input).message.contains("nests deeper than"));
    let negations = format!("{}a", "-".repeat(100_000));
    assert!(
        parse_error(&negations)
            .message
            .contains("nests deeper than")
    );
    let nots = "NOT ".repeat(10_000) + "a";
    assert!(parse_error(&nots).message.contains("nests deeper than"));
}
