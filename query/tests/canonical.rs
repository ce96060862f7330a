//! The canonical form: what `Display` prints for a parsed query.

use epitaph_query::parse;

fn canonical(input: &str) -> String {
    parse(input)
        .unwrap_or_else(|error| panic!("{}", error.render(input)))
        .to_string()
}

#[test]
fn readme_example_prints_as_documented() {
    assert_eq!(
        canonical(
            "level:(error OR warn)  -service:(a b)  |  STATS Count() AS n BY version | Sort By n"
        ),
        "(level:error OR level:warn) -(service:a service:b) | stats count() as n by version | sort by n asc"
    );
}

#[test]
fn canonical_form_keeps_nested_and_groups_and_drops_redundant_parentheses() {
    assert_eq!(canonical("a AND (b AND c)"), "a (b c)");
    assert_eq!(canonical("((a))"), "a");
    assert_eq!(canonical("(a b) OR c"), "a b OR c");
    assert_eq!(canonical("NOT (a OR b)"), "-(a OR b)");
}

#[test]
fn canonical_form_quotes_or_escapes_only_where_needed() {
    assert_eq!(canonical(r#"service:"web""#), "service:web");
    assert_eq!(canonical(r#"host:"web-*""#), r#"host:"web-*""#);
    assert_eq!(canonical(r#"version:"latest""#), r#"version:"latest""#);
    assert_eq!(canonical(r#"service:"""#), r#"service:"""#);
    assert_eq!(canonical(r"foo\:bar"), r"foo\:bar");
    assert_eq!(canonical(r#"attrs.path:\/health"#), r"attrs.path:\/health");
    assert_eq!(canonical(r#"source:/a\/b/"#), r"source:/a\/b/");
    assert_eq!(canonical("severity:[* TO 9}"), "severity:[* TO 9}");
    assert_eq!(
        canonical(r#"attrs.x:["TO" TO "a b"]"#),
        r#"attrs.x:["TO" TO "a b"]"#
    );
}

#[test]
fn canonical_durations_use_the_largest_exact_unit() {
    assert_eq!(
        canonical("| timechart span=3600s count()"),
        "* | timechart span=1h count()"
    );
    assert_eq!(
        canonical("| timechart span=90s count()"),
        "* | timechart span=90s count()"
    );
    assert_eq!(
        canonical("| timechart span=14d count()"),
        "* | timechart span=2w count()"
    );
}
