//! The pipe stages: what each parses to and which sequences are accepted.

use std::time::Duration;

use epitaph_query::{
    AggregateFunction, Column, FieldRef, IdentityField, Query, SortOrder, Stage, parse,
};

fn query(input: &str) -> Query {
    parse(input).unwrap_or_else(|error| panic!("{}", error.render(input)))
}

fn only_stage(input: &str) -> Stage {
    let mut query = query(input);
    assert_eq!(query.stages.len(), 1, "{input}");
    query.stages.remove(0)
}

fn error_message(input: &str) -> String {
    parse(input).expect_err(input).message
}

const VERSION: FieldRef = FieldRef::Identity(IdentityField::Version);
const GENERATION: FieldRef = FieldRef::Identity(IdentityField::Generation);

#[test]
fn stats_count_without_a_field_counts_lines() {
    let Stage::Stats {
        aggregations,
        by,
        span,
    } = only_stage("* | stats count()")
    else {
        panic!("stats")
    };
    assert_eq!(aggregations.len(), 1);
    assert_eq!(aggregations[0].function, AggregateFunction::Count);
    assert_eq!(aggregations[0].field, None);
    assert_eq!(aggregations[0].output_name(), "count");
    assert!(by.is_empty());
    assert_eq!(span, 4..17);
}

#[test]
fn stats_by_several_fields() {
    let Stage::Stats {
        aggregations, by, ..
    } = only_stage("level:error | stats count(), avg(severity) by version, generation")
    else {
        panic!("stats")
    };
    assert_eq!(aggregations.len(), 2);
    assert_eq!(aggregations[1].function, AggregateFunction::Avg);
    assert_eq!(aggregations[1].output_name(), "avg(severity)");
    let by: Vec<FieldRef> = by.into_iter().map(|field| field.node).collect();
    assert_eq!(by, [VERSION, GENERATION]);
}

#[test]
fn every_function_parses_by_its_name() {
    for function in AggregateFunction::ALL {
        let input = format!("| stats {}(value)", function.name());
        let Stage::Stats { aggregations, .. } = only_stage(&input) else {
            panic!("{input}")
        };
        assert_eq!(aggregations[0].function, function);
    }
}

#[test]
fn percentile_functions_name_their_percentile() {
    assert_eq!(AggregateFunction::P99.percentile(), Some(99.0));
    assert_eq!(AggregateFunction::Avg.percentile(), None);
}

#[test]
fn aggregation_alias_names_the_output_column() {
    let Stage::Stats { aggregations, .. } =
        only_stage("| stats p99(attrs.duration_ms) as slow by version")
    else {
        panic!("stats")
    };
    let alias = aggregations[0].alias.as_ref().unwrap();
    assert_eq!(alias.node, "slow");
    assert_eq!(aggregations[0].output_name(), "slow");
    assert_eq!(
        aggregations[0].field.as_ref().unwrap().node,
        FieldRef::Attribute("duration_ms".into())
    );
}

#[test]
fn stage_keywords_and_functions_are_case_insensitive() {
    let query = query("| STATS Count() AS n BY version | Sort By n DESC | LIMIT 3");
    assert_eq!(
        query.to_string(),
        "* | stats count() as n by version | sort by n desc | limit 3"
    );
}

#[test]
fn field_names_in_stages_are_case_sensitive() {
    assert!(
        error_message("| stats count() by Version")
            .contains("unknown field \"Version\" (did you mean \"version\"?)")
    );
}

#[test]
fn count_star_is_count() {
    assert_eq!(query("| stats count(*)").to_string(), "* | stats count()");
}

#[test]
fn rate_counts_lines_per_second_without_a_field() {
    let Stage::Stats { aggregations, .. } = only_stage("| stats rate(), rate(value)") else {
        panic!("stats")
    };
    assert_eq!(aggregations[0].field, None);
    assert_eq!(aggregations[1].output_name(), "rate(value)");
}

#[test]
fn timechart_with_span_aggregations_and_split() {
    let Stage::Timechart {
        bucket,
        aggregations,
        by,
        ..
    } = only_stage("service:web | timechart span=1m count() by level")
    else {
        panic!("timechart")
    };
    assert_eq!(bucket, Duration::from_secs(60));
    assert_eq!(aggregations[0].function, AggregateFunction::Count);
    assert_eq!(by.unwrap().node, FieldRef::Level);
}

#[test]
fn timechart_span_units() {
    for (text, seconds) in [("10s", 10), ("5m", 300), ("1h", 3600), ("1d", 86_400)] {
        let Stage::Timechart { bucket, .. } =
            only_stage(&format!("| timechart span={text} count()"))
        else {
            panic!("{text}")
        };
        assert_eq!(bucket, Duration::from_secs(seconds), "{text}");
    }
    assert_eq!(
        query("| timechart span = 60s avg(value)").to_string(),
        "* | timechart span=1m avg(value)"
    );
}

#[test]
fn timechart_requires_span() {
    let error = parse("| timechart count() by level").unwrap_err();
    assert_eq!(error.span, 12..17);
    assert!(
        error
            .message
            .starts_with("timechart needs span=<duration> first")
    );
    assert_eq!(error.expected, ["span="]);
}

#[test]
fn timechart_span_must_be_a_positive_duration() {
    for bad in ["0m", "1", "m", "1.5m", "-1m", "1y"] {
        let message = error_message(&format!("| timechart span={bad} count()"));
        assert!(
            message.starts_with("span= needs a positive duration"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn timechart_splits_by_one_field_only() {
    assert!(error_message("| timechart span=1m count() by level, version").contains("one field"));
}

#[test]
fn top_takes_a_count_and_a_field() {
    let Stage::Top { n, field, span } = only_stage("level:error | top 10 version") else {
        panic!("top")
    };
    assert_eq!((n, field.node, span), (10, VERSION, 14..28));
}

#[test]
fn top_needs_at_least_one() {
    assert!(error_message("| top 0 version").starts_with("top needs a count of at least 1"));
    assert!(error_message("| top version").starts_with("top needs a count of at least 1"));
}

#[test]
fn fields_keeps_named_columns() {
    let Stage::Fields { columns, .. } =
        only_stage("| fields timestamp, service, attrs.http.status")
    else {
        panic!("fields")
    };
    let columns: Vec<Column> = columns.into_iter().map(|column| column.node).collect();
    assert_eq!(
        columns,
        [
            Column::Field(FieldRef::Timestamp),
            Column::Field(FieldRef::Identity(IdentityField::Service)),
            Column::Field(FieldRef::Attribute("http.status".into())),
        ]
    );
}

#[test]
fn sort_by_several_keys_with_orders() {
    let Stage::Sort { keys, .. } = only_stage("| sort by severity desc, timestamp") else {
        panic!("sort")
    };
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].column, Column::Field(FieldRef::Severity));
    assert_eq!(keys[0].order, SortOrder::Descending);
    assert_eq!(keys[1].order, SortOrder::Ascending);
}

#[test]
fn sort_without_by_is_accepted() {
    assert_eq!(
        query("| sort timestamp desc").to_string(),
        "* | sort by timestamp desc"
    );
}

#[test]
fn sort_after_stats_names_its_columns() {
    let query = query("| stats count(), p99(value) by version | sort by count desc, p99(value)");
    let Stage::Sort { keys, .. } = &query.stages[1] else {
        panic!("sort")
    };
    assert_eq!(keys[0].column, Column::Output("count".into()));
    assert_eq!(keys[1].column, Column::Output("p99(value)".into()));
}

#[test]
fn sort_after_stats_may_name_a_group_by_field() {
    let query = query("| stats count() by version | sort by version");
    let Stage::Sort { keys, .. } = &query.stages[1] else {
        panic!("sort")
    };
    assert_eq!(keys[0].column, Column::Field(VERSION));
}

#[test]
fn columns_missing_after_an_aggregation_are_errors() {
    let message = error_message("| stats count() by version | sort by level");
    assert!(
        message.contains("no column \"level\" here: the stats stage before makes version, count"),
        "{message}"
    );
}

#[test]
fn aggregation_columns_without_an_aggregation_are_errors() {
    for input in [
        "| sort by count desc",
        "| fields p99(value)",
        "| sort by pattern",
    ] {
        let message = error_message(input);
        assert!(
            message.contains("is not a field, and no aggregation"),
            "{input}: {message}"
        );
    }
}

#[test]
fn columns_dropped_by_fields_cannot_be_sorted_on() {
    assert!(error_message("| fields service | sort by timestamp").contains("keeps only service"));
}

#[test]
fn top_and_patterns_make_count_columns() {
    query("| top 5 host | sort by count asc | limit 2");
    query("| patterns by service | sort by count desc | fields pattern, count, example");
}

#[test]
fn limit_takes_a_positive_integer() {
    assert!(matches!(
        only_stage("| limit 20"),
        Stage::Limit { n: 20, .. }
    ));
    for bad in ["0", "-1", "ten", "99999999999999999999999"] {
        assert!(
            error_message(&format!("| limit {bad}")).starts_with("limit needs a whole number"),
            "{bad}"
        );
    }
}

#[test]
fn patterns_optionally_by_a_field() {
    assert!(matches!(
        only_stage("| patterns"),
        Stage::Patterns { by: None, .. }
    ));
    let Stage::Patterns { by, .. } = only_stage("version:latest | patterns by version") else {
        panic!("patterns")
    };
    assert_eq!(by.unwrap().node, VERSION);
}

#[test]
fn patterns_unique_by_a_field_compares_its_values() {
    let text = "service:web version:(v1 OR v2) | PATTERNS Unique BY version | sort by count desc";
    let parsed = query(text);
    let Stage::Patterns { by, unique, .. } = &parsed.stages[0] else {
        panic!("patterns")
    };
    assert!(*unique);
    assert_eq!(by.as_ref().unwrap().node, VERSION);
    assert_eq!(
        parsed.to_string(),
        "service:web (version:v1 OR version:v2) | patterns unique by version | sort by count desc"
    );
    assert_eq!(
        query(&parsed.to_string()).with_spans_cleared(),
        parsed.with_spans_cleared()
    );
    let Stage::Patterns { unique, .. } = only_stage("| patterns by version") else {
        panic!("patterns")
    };
    assert!(!unique);
    // `unique` compares the values of a field, so it needs one.
    let error = parse("* | patterns unique").unwrap_err();
    assert_eq!(error.span, 19..19);
    assert_eq!(error.expected, ["by"]);
    assert!(
        error.message.contains("patterns unique"),
        "{}",
        error.message
    );
    let error = parse("* | patterns unique | limit 3").unwrap_err();
    assert_eq!(error.span, 20..21);
    // After `patterns`, completion offers both.
    assert_eq!(
        parse("* | patterns sort").unwrap_err().expected,
        ["unique", "by", "|", "end of query"]
    );
}

#[test]
fn lines_can_be_shaped_without_aggregating() {
    let query = query("level:error | fields timestamp, body | sort by timestamp desc | limit 50");
    assert_eq!(query.stages.len(), 3);
    assert!(query.aggregation().is_none());
}

#[test]
fn aggregation_must_come_first() {
    assert!(
        error_message("| limit 10 | stats count()").contains("must come right after the filter")
    );
}

#[test]
fn only_one_aggregation_per_query() {
    assert!(
        error_message("| stats count() by version | top 3 version").contains("already has stats")
    );
}

#[test]
fn nothing_follows_timechart() {
    assert!(
        error_message("| timechart span=1m count() | limit 5")
            .contains("nothing can follow timechart")
    );
}

#[test]
fn sum_avg_min_max_and_percentiles_need_a_field() {
    for function in [
        "sum",
        "avg",
        "min",
        "max",
        "p50",
        "p90",
        "p95",
        "p99",
        "count_distinct",
    ] {
        let message = error_message(&format!("| stats {function}()"));
        assert!(
            message.starts_with(&format!("{function} needs a field")),
            "{message}"
        );
    }
}

#[test]
fn arithmetic_functions_need_numbers() {
    let message = error_message("| stats avg(version)");
    assert_eq!(
        message,
        "avg needs a number or attribute field, and version is a keyword field"
    );
    query("| stats max(timestamp), min(timestamp), sum(attrs.bytes)");
}

#[test]
fn body_cannot_be_grouped_or_sorted() {
    assert!(
        error_message("| stats count() by body").contains("\"patterns\" groups lines by message")
    );
    assert!(error_message("| sort by body").contains("full text"));
    assert!(error_message("| top 3 timestamp").contains("timechart"));
}

#[test]
fn duplicate_output_names_are_errors() {
    assert!(error_message("| stats count(), count()").contains("two columns are named \"count\""));
    assert!(error_message("| stats count() as version by version").contains("two columns"));
    query("| stats count(), count() as errors");
}

#[test]
fn aliases_are_identifiers_that_do_not_read_as_syntax() {
    assert!(error_message("| stats count() as by").contains("expected a name after \"as\""));
    assert!(error_message("| stats count() as 9x").contains("expected a name after \"as\""));
}

#[test]
fn unknown_stage_suggests_the_closest() {
    let message = error_message("* | stat count()");
    assert!(
        message.starts_with("unknown stage \"stat\" (did you mean \"stats\"?)"),
        "{message}"
    );
}

#[test]
fn unknown_function_lists_the_known_ones() {
    let error = parse("| stats median(value)").unwrap_err();
    assert!(error.message.starts_with("unknown function \"median\""));
    assert!(error.expected.contains(&"p50".to_string()));
}

#[test]
fn aggregation_reports_the_first_stage() {
    let query = query("| stats count() | sort by count");
    assert!(matches!(query.aggregation(), Some(Stage::Stats { .. })));
}
