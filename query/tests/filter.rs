//! The filter language: what each piece of syntax parses to.

use std::time::Duration;

use epitaph_query::{
    Bound, CompareOp, FieldRef, Filter, IdentityField, TimePoint, TypedValue, VersionAlias,
    WildcardPart, parse,
};

fn filter(input: &str) -> Filter {
    parse(input)
        .unwrap_or_else(|error| panic!("{}", error.render(input)))
        .filter
}

/// The canonical text of the filter, which shows its structure compactly.
fn canonical(input: &str) -> String {
    filter(input).to_string()
}

fn service() -> FieldRef {
    FieldRef::Identity(IdentityField::Service)
}

#[test]
fn empty_filter_and_star_match_everything() {
    assert!(matches!(filter(""), Filter::All { .. }));
    assert!(matches!(filter("   "), Filter::All { .. }));
    assert!(matches!(filter("*"), Filter::All { .. }));
    let query = parse(" | limit 5").unwrap();
    assert!(matches!(query.filter, Filter::All { .. }));
    assert_eq!(query.to_string(), "* | limit 5");
}

#[test]
fn bare_word_searches_the_body_with_its_exact_text() {
    let Filter::Term { field, value, span } = filter("Timeout") else {
        panic!("a term")
    };
    assert_eq!(field, None);
    assert_eq!(value.text, "Timeout");
    assert_eq!(value.typed, TypedValue::Text);
    assert_eq!(span, 0..7);
}

#[test]
fn quoted_phrase_searches_the_body_in_order() {
    let Filter::Phrase { field, text, span } = filter(r#""connection refused""#) else {
        panic!("a phrase")
    };
    assert_eq!(field, None);
    assert_eq!(text, "connection refused");
    assert_eq!(span, 0..20);
}

#[test]
fn field_term_resolves_the_field_and_spans_name_and_value() {
    let Filter::Term { field, value, span } = filter("service:web") else {
        panic!("a term")
    };
    assert_eq!(field, Some(service()));
    assert_eq!(value.text, "web");
    assert_eq!(value.span, 8..11);
    assert_eq!(span, 0..11);
}

#[test]
fn every_identity_field_is_a_keyword_field() {
    for identity in IdentityField::ALL {
        let input = format!("{}:x", identity.name());
        let Filter::Term { field, .. } = filter(&input) else {
            panic!("{input}")
        };
        assert_eq!(field, Some(FieldRef::Identity(identity)));
    }
}

#[test]
fn quoted_value_on_a_keyword_field_is_an_exact_term() {
    let Filter::Term { field, value, .. } = filter(r#"source:"/var/log/app (1).log""#) else {
        panic!("a term")
    };
    assert_eq!(field, Some(FieldRef::Source));
    assert_eq!(value.text, "/var/log/app (1).log");
}

#[test]
fn quoted_value_on_body_or_attribute_is_a_phrase() {
    assert!(matches!(
        filter(r#"body:"a b""#),
        Filter::Phrase {
            field: Some(FieldRef::Body),
            ..
        }
    ));
    assert!(matches!(
        filter(r#"attrs.user.agent:"curl 8""#),
        Filter::Phrase {
            field: Some(FieldRef::Attribute(_)),
            ..
        }
    ));
}

#[test]
fn backslash_escapes_inside_quotes() {
    let Filter::Phrase { text, .. } = filter(r#""say \"hi\" \\ now""#) else {
        panic!("a phrase")
    };
    assert_eq!(text, r#"say "hi" \ now"#);
}

#[test]
fn backslash_escapes_special_characters_in_bare_words() {
    let Filter::Term { field, value, .. } = filter(r"http\://x\ y\*") else {
        panic!("a term, not a field, not a wildcard")
    };
    assert_eq!(field, None);
    assert_eq!(value.text, "http://x y*");
}

#[test]
fn values_after_a_field_may_hold_colons() {
    let Filter::Term { value, .. } = filter("instance:i-0abc:7") else {
        panic!("a term")
    };
    assert_eq!(value.text, "i-0abc:7");
}

#[test]
fn times_and_addresses_in_bare_words_are_not_fields() {
    let Filter::Term { field, value, .. } = filter("10:42:07") else {
        panic!("a term")
    };
    assert_eq!(field, None);
    assert_eq!(value.text, "10:42:07");
}

#[test]
fn attribute_fields_take_any_dotted_key() {
    let Filter::Term { field, value, .. } = filter("attrs.http.status:500") else {
        panic!("a term")
    };
    assert_eq!(field, Some(FieldRef::Attribute("http.status".into())));
    assert_eq!(value.text, "500");
    assert_eq!(value.typed, TypedValue::Integer(500));
}

#[test]
fn attribute_values_that_are_not_numbers_stay_text() {
    let Filter::Term { value, .. } = filter("attrs.user:bob") else {
        panic!("a term")
    };
    assert_eq!(value.typed, TypedValue::Text);
}

#[test]
fn severity_values_are_integers() {
    let Filter::Term { value, .. } = filter("severity:17") else {
        panic!("a term")
    };
    assert_eq!(value.typed, TypedValue::Integer(17));
}

#[test]
fn implicit_and_between_terms() {
    let Filter::And { operands, span } = filter("service:web level:error timeout") else {
        panic!("an and")
    };
    assert_eq!(operands.len(), 3);
    assert_eq!(span, 0..31);
}

#[test]
fn explicit_and_is_the_same_as_juxtaposition() {
    assert_eq!(filter("a AND b").to_string(), filter("a b").to_string());
}

#[test]
fn implicit_and_binds_tighter_than_or() {
    let Filter::Or { operands, .. } = filter("a b OR c") else {
        panic!("an or at the top")
    };
    assert!(matches!(&operands[0], Filter::And { operands, .. } if operands.len() == 2));
    assert!(matches!(&operands[1], Filter::Term { .. }));
}

#[test]
fn explicit_and_binds_tighter_than_or() {
    assert_eq!(canonical("a OR b AND c"), "a OR b c");
    let Filter::Or { operands, .. } = filter("a OR b AND c") else {
        panic!("an or at the top")
    };
    assert!(matches!(&operands[1], Filter::And { .. }));
}

#[test]
fn not_binds_tighter_than_and() {
    let Filter::And { operands, .. } = filter("NOT a b") else {
        panic!("an and")
    };
    assert!(matches!(&operands[0], Filter::Not { .. }));
}

#[test]
fn parentheses_group() {
    let Filter::And { operands, .. } = filter("(a OR b) c") else {
        panic!("an and")
    };
    assert!(matches!(&operands[0], Filter::Or { .. }));
}

#[test]
fn or_chains_are_one_node() {
    let Filter::Or { operands, .. } = filter("a OR b OR c") else {
        panic!("an or")
    };
    assert_eq!(operands.len(), 3);
}

#[test]
fn leading_minus_excludes() {
    let Filter::And { operands, .. } = filter("service:web -source:/.*health.*/") else {
        panic!("an and")
    };
    let Filter::Not { operand, span } = &operands[1] else {
        panic!("a not")
    };
    assert_eq!(*span, 12..32);
    assert!(matches!(
        **operand,
        Filter::Regex {
            field: Some(FieldRef::Source),
            ..
        }
    ));
}

#[test]
fn minus_inside_a_word_or_alone_is_text() {
    let Filter::Term { value, .. } = filter("web-1") else {
        panic!("a term")
    };
    assert_eq!(value.text, "web-1");
    let Filter::And { operands, .. } = filter("a - b") else {
        panic!("an and")
    };
    assert!(matches!(&operands[1], Filter::Term { value, .. } if value.text == "-"));
}

#[test]
fn lowercase_operators_are_words() {
    let Filter::And { operands, .. } = filter("a or b") else {
        panic!("an and of three words")
    };
    assert_eq!(operands.len(), 3);
}

#[test]
fn a_filter_of_only_exclusions_is_a_not() {
    assert!(matches!(filter("-level:debug"), Filter::Not { .. }));
}

#[test]
fn field_group_applies_the_field_to_each_term() {
    assert_eq!(
        canonical("level:(error OR warn) -service:(a b)"),
        "(level:error OR level:warn) -(service:a service:b)"
    );
}

#[test]
fn field_group_takes_ranges_wildcards_and_exclusions() {
    assert_eq!(
        canonical("severity:([1 TO 4] OR >=17)"),
        "severity:[1 TO 4] OR severity:>=17"
    );
    assert_eq!(canonical("host:(web-* -web-3)"), "host:web-* -host:web-3");
}

#[test]
fn inclusive_range_with_numbers() {
    let Filter::Range {
        field,
        lower,
        upper,
        span,
    } = filter("severity:[9 TO 17]")
    else {
        panic!("a range")
    };
    assert_eq!(field, FieldRef::Severity);
    assert!(matches!(lower, Bound::Included(value) if value.typed == TypedValue::Integer(9)));
    assert!(matches!(upper, Bound::Included(value) if value.typed == TypedValue::Integer(17)));
    assert_eq!(span, 0..18);
}

#[test]
fn exclusive_and_open_ended_ranges() {
    let Filter::Range { lower, upper, .. } = filter("attrs.duration_ms:{100 TO *]") else {
        panic!("a range")
    };
    assert!(matches!(lower, Bound::Excluded(value) if value.text == "100"));
    assert_eq!(upper, Bound::Unbounded);
    let Filter::Range { lower, upper, .. } = filter("severity:[* TO 9}") else {
        panic!("a range")
    };
    assert_eq!(lower, Bound::Unbounded);
    assert!(matches!(upper, Bound::Excluded(_)));
}

#[test]
fn keyword_ranges_compare_text() {
    let Filter::Range { lower, .. } = filter("version:[2026.11.01 TO 2026.11.30]") else {
        panic!("a range")
    };
    assert!(matches!(lower, Bound::Included(value) if value.typed == TypedValue::Text));
}

#[test]
fn comparisons_on_numbers_attributes_and_times() {
    let Filter::Compare {
        field, op, value, ..
    } = filter("severity:>=13")
    else {
        panic!("a comparison")
    };
    assert_eq!((field, op), (FieldRef::Severity, CompareOp::GreaterOrEqual));
    assert_eq!(value.typed, TypedValue::Integer(13));

    let Filter::Compare { op, value, .. } = filter("attrs.duration_ms:<250") else {
        panic!("a comparison")
    };
    assert_eq!(op, CompareOp::Less);
    assert_eq!(value.typed, TypedValue::Integer(250));

    let Filter::Compare {
        field, op, value, ..
    } = filter("timestamp:>2026-11-26T10:00:00Z")
    else {
        panic!("a comparison")
    };
    assert_eq!((field, op), (FieldRef::Timestamp, CompareOp::Greater));
    assert_eq!(
        value.typed,
        TypedValue::Time(TimePoint::Absolute {
            unix_nanos: 1_795_687_200_000_000_000
        })
    );
    assert_eq!(value.text, "2026-11-26T10:00:00Z");
}

#[test]
fn relative_times_are_left_for_the_engine_to_resolve() {
    let Filter::Compare { value, .. } = filter("timestamp:>=now-15m") else {
        panic!("a comparison")
    };
    assert_eq!(
        value.typed,
        TypedValue::Time(TimePoint::BeforeNow(Duration::from_secs(900)))
    );
    let Filter::Range { lower, upper, .. } = filter("timestamp:[now-2h TO now-1h]") else {
        panic!("a range")
    };
    assert!(matches!(lower, Bound::Included(_)) && matches!(upper, Bound::Included(_)));
}

#[test]
fn regex_on_a_field() {
    let Filter::Regex {
        field,
        pattern,
        span,
    } = filter("source:/.*nginx.*/")
    else {
        panic!("a regex")
    };
    assert_eq!(field, Some(FieldRef::Source));
    assert_eq!(pattern, ".*nginx.*");
    assert_eq!(span, 0..18);
}

#[test]
fn regex_may_hold_pipes_spaces_and_escaped_slashes() {
    let query = parse(r"/GET \/api|POST x/ | limit 1").unwrap();
    let Filter::Regex { field, pattern, .. } = query.filter else {
        panic!("a regex")
    };
    assert_eq!(field, None);
    assert_eq!(pattern, "GET /api|POST x");
    assert_eq!(query.stages.len(), 1);
}

#[test]
fn wildcards_in_field_values_and_bare_words() {
    let Filter::Wildcard { field, pattern, .. } = filter("host:web-*") else {
        panic!("a wildcard")
    };
    assert_eq!(field, Some(FieldRef::Identity(IdentityField::Host)));
    assert_eq!(
        pattern.parts,
        [WildcardPart::Literal("web-".into()), WildcardPart::AnyChars]
    );
    assert_eq!(pattern.to_regex(), r"web\-.*");

    let Filter::Wildcard { field, pattern, .. } = filter("conn?ction") else {
        panic!("a wildcard")
    };
    assert_eq!(field, None);
    assert_eq!(
        pattern.parts,
        [
            WildcardPart::Literal("conn".into()),
            WildcardPart::AnyChar,
            WildcardPart::Literal("ction".into())
        ]
    );
}

#[test]
fn escaped_and_quoted_stars_are_literal() {
    assert!(matches!(filter(r"host:web\*"), Filter::Term { value, .. } if value.text == "web*"));
    assert!(
        matches!(filter(r#"host:"web-*""#), Filter::Term { value, .. } if value.text == "web-*")
    );
}

#[test]
fn field_star_means_the_field_exists() {
    assert_eq!(
        filter("attrs.user_id:*"),
        Filter::Exists {
            field: FieldRef::Attribute("user_id".into()),
            span: 0..15
        }
    );
}

#[test]
fn version_latest_is_an_alias() {
    assert_eq!(
        filter("version:latest"),
        Filter::VersionAlias {
            alias: VersionAlias::Latest,
            span: 0..14
        }
    );
    assert!(matches!(
        filter("service:web -version:previous"),
        Filter::And { operands, .. }
            if matches!(&operands[1], Filter::Not { operand, .. }
                if matches!(**operand, Filter::VersionAlias { alias: VersionAlias::Previous, .. }))
    ));
}

#[test]
fn quoted_latest_is_a_literal_version() {
    assert!(
        matches!(filter(r#"version:"latest""#), Filter::Term { value, .. } if value.text == "latest")
    );
    assert!(matches!(filter("image:latest"), Filter::Term { .. }));
}

#[test]
fn design_document_example_parses() {
    let query = parse(
        r#"service:web version:2026.11.26-3f2a level:error "connection refused" -source:"/health""#,
    )
    .unwrap();
    let Filter::And { operands, .. } = &query.filter else {
        panic!("an and")
    };
    assert_eq!(operands.len(), 5);
    parse("metric:http.server.duration service:web | stats p99(value) by version").unwrap();
}

#[test]
fn unicode_text_is_kept_whole() {
    let Filter::And { operands, .. } = filter("überweisung attrs.ユーザー:山田") else {
        panic!("an and")
    };
    assert!(
        matches!(&operands[1], Filter::Term { field: Some(FieldRef::Attribute(key)), value, .. }
        if key == "ユーザー" && value.text == "山田")
    );
}

#[test]
fn nesting_up_to_the_limit_parses() {
    let depth = epitaph_query::MAX_NESTING;
    let input = format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
    assert!(matches!(filter(&input), Filter::Term { .. }));
}
