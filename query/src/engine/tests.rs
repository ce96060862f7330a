//! The engine over a small in-RAM index built with the server's field names and options
//! (copied from `server/src/index/schema.rs`; this crate does not depend on the server).

use std::collections::{BTreeMap, BTreeSet};

use tantivy::collector::DocSetCollector;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    OwnedValue, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, Index, IndexReader, TantivyDocument};

use super::*;
use crate::ast::VersionAlias;
use crate::error::QueryError;
use crate::parse;

const IDENTITY: [&str; 10] = [
    "service",
    "image",
    "version",
    "image_id",
    "generation",
    "instance",
    "host",
    "env",
    "region",
    "zone",
];

fn keyword_options(fast: bool) -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let options = TextOptions::default()
        .set_indexing_options(indexing)
        .set_stored();
    if fast {
        options.set_fast("raw")
    } else {
        options
    }
}

fn log_schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_date_field(
        "timestamp",
        DateOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored()
            .set_precision(DateTimePrecision::Nanoseconds),
    );
    for name in IDENTITY {
        builder.add_text_field(name, keyword_options(true));
    }
    builder.add_text_field("level", keyword_options(true));
    builder.add_u64_field(
        "severity",
        NumericOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored(),
    );
    builder.add_text_field(
        "body",
        TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                    .set_fieldnorms(false),
            )
            .set_stored(),
    );
    builder.add_text_field("source", keyword_options(true));
    builder.add_text_field("trace_id", keyword_options(false));
    builder.add_text_field("span_id", keyword_options(false));
    builder.add_json_field(
        "attrs",
        JsonObjectOptions::default()
            .set_stored()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqs)
                    .set_fieldnorms(false),
            )
            .set_expand_dots_enabled(),
    );
    builder.add_u64_field("_row", NumericOptions::default().set_fast().set_stored());
    builder.build()
}

/// One test line: row number, identity, level/severity, seconds since the epoch, body,
/// attributes.
struct Line {
    service: &'static str,
    version: &'static str,
    generation: &'static str,
    level: &'static str,
    severity: u64,
    seconds: i64,
    body: &'static str,
    attrs: Vec<(&'static str, OwnedValue)>,
}

fn line(
    service: &'static str,
    version: &'static str,
    level: &'static str,
    severity: u64,
    body: &'static str,
) -> Line {
    Line {
        service,
        version,
        generation: "1",
        level,
        severity,
        seconds: 1_000,
        body,
        attrs: Vec::new(),
    }
}

pub(super) struct TestIndex {
    pub(super) schema: Schema,
    pub(super) reader: IndexReader,
    row: Field,
}

/// Rows, by their index in this list (the `_row` field).
fn lines() -> Vec<Line> {
    vec![
        // 0
        Line {
            attrs: vec![
                ("http.status", OwnedValue::I64(500)),
                ("url", OwnedValue::Str("/api/Users".into())),
            ],
            seconds: 1_000,
            ..line("web", "v1", "error", 17, "connection refused by 10.0.0.7")
        },
        // 1
        Line {
            attrs: vec![
                ("http.status", OwnedValue::I64(200)),
                ("duration_ms", OwnedValue::F64(12.5)),
            ],
            seconds: 2_000,
            ..line("web", "v2", "info", 9, "request served refused later")
        },
        // 2
        Line {
            attrs: vec![("duration_ms", OwnedValue::I64(300))],
            seconds: 3_000,
            generation: "2",
            ..line("api", "a1", "warn", 13, "Timeout talking to db-primary")
        },
        // 3
        Line {
            seconds: 4_000,
            ..line("api", "a2", "debug", 5, "cache warm")
        },
        // 4: a service with no version history beyond one version
        Line {
            seconds: 5_000,
            ..line("batch", "b1", "fatal", 21, "out of memory")
        },
    ]
}

pub(super) fn test_index() -> TestIndex {
    let schema = log_schema();
    let index = Index::create_in_ram(schema.clone());
    let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
    let field = |name: &str| schema.get_field(name).unwrap();
    for (row, line) in lines().into_iter().enumerate() {
        let mut document = TantivyDocument::new();
        document.add_date(
            field("timestamp"),
            DateTime::from_timestamp_nanos(line.seconds * 1_000_000_000),
        );
        for name in IDENTITY {
            let value = match name {
                "service" => line.service,
                "version" => line.version,
                "generation" => line.generation,
                "instance" => "i-1",
                _ => "",
            };
            document.add_text(field(name), value);
        }
        document.add_text(field("level"), line.level);
        document.add_u64(field("severity"), line.severity);
        document.add_text(field("body"), line.body);
        document.add_text(field("source"), "/var/log/app.log");
        if row == 0 {
            document.add_text(field("trace_id"), "0aff10");
        }
        if !line.attrs.is_empty() {
            let attrs: BTreeMap<String, OwnedValue> = line
                .attrs
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect();
            document.add_object(field("attrs"), attrs);
        }
        document.add_u64(field("_row"), row as u64);
        writer.add_document(document).unwrap();
    }
    writer.commit().unwrap();
    TestIndex {
        row: field("_row"),
        reader: index.reader().unwrap(),
        schema,
    }
}

/// Newest and second-newest per service, by a fixed history.
struct FixedVersions;

impl VersionResolver for FixedVersions {
    fn resolve(
        &self,
        alias: VersionAlias,
        services: Option<&BTreeSet<String>>,
    ) -> Vec<(String, String)> {
        let history = [("web", ["v2", "v1"]), ("api", ["a2", "a1"])];
        let position = match alias {
            VersionAlias::Latest => 0,
            VersionAlias::Previous => 1,
        };
        history
            .iter()
            .filter(|(service, _)| services.is_none_or(|wanted| wanted.contains(*service)))
            .map(|(service, versions)| (service.to_string(), versions[position].to_string()))
            .collect()
    }
}

impl TestIndex {
    fn rows(&self, query: &str) -> Vec<u64> {
        let parsed = parse(query).unwrap_or_else(|error| panic!("{}", error.render(query)));
        let context = EngineContext {
            schema: &self.schema,
            versions: &FixedVersions,
            now_nanos: 6_000 * 1_000_000_000,
        };
        let compiled = compile_filter(&parsed.filter, &context)
            .unwrap_or_else(|error| panic!("{}", error.render(query)));
        let searcher = self.reader.searcher();
        let addresses = searcher
            .search(compiled.as_ref(), &DocSetCollector)
            .unwrap_or_else(|error| panic!("{query}: {error}"));
        let mut rows: Vec<u64> = addresses
            .into_iter()
            .map(|address| {
                let document: TantivyDocument = searcher.doc(address).unwrap();
                use tantivy::schema::Value as _;
                document.get_first(self.row).unwrap().as_u64().unwrap()
            })
            .collect();
        rows.sort_unstable();
        rows
    }

    fn error(&self, query: &str) -> QueryError {
        let parsed = parse(query).unwrap_or_else(|error| panic!("{}", error.render(query)));
        let context = EngineContext {
            schema: &self.schema,
            versions: &NoVersions,
            now_nanos: 0,
        };
        match compile_filter(&parsed.filter, &context) {
            Ok(_) => panic!("{query} compiled"),
            Err(error) => error,
        }
    }
}

#[test]
fn identity_terms_match_whole_values() {
    let index = test_index();
    assert_eq!(index.rows("service:web"), [0, 1]);
    assert_eq!(index.rows("service:web AND version:v2"), [1]);
    assert_eq!(index.rows("service:we"), Vec::<u64>::new());
    assert_eq!(index.rows("level:(error OR fatal)"), [0, 4]);
    assert_eq!(index.rows("generation:2"), [2]);
}

#[test]
fn everything_and_boolean_structure() {
    let index = test_index();
    assert_eq!(index.rows(""), [0, 1, 2, 3, 4]);
    assert_eq!(index.rows("*"), [0, 1, 2, 3, 4]);
    assert_eq!(index.rows("-service:web"), [2, 3, 4]);
    assert_eq!(index.rows("NOT service:web AND NOT service:api"), [4]);
    assert_eq!(index.rows("service:web OR -level:warn"), [0, 1, 3, 4]);
    assert_eq!(index.rows("refused -version:v1"), [1]);
}

#[test]
fn body_words_phrases_and_dotted_words() {
    let index = test_index();
    assert_eq!(index.rows("refused"), [0, 1]);
    assert_eq!(index.rows("REFUSED"), [0, 1]);
    assert_eq!(index.rows("\"connection refused\""), [0]);
    assert_eq!(index.rows("\"refused connection\""), Vec::<u64>::new());
    // Several tokens in one bare word are a phrase.
    assert_eq!(index.rows("10.0.0.7"), [0]);
    assert_eq!(index.rows("db-primary"), [2]);
    assert_eq!(index.rows("body:timeout"), [2]);
}

#[test]
fn wildcards_and_regexes() {
    let index = test_index();
    assert_eq!(index.rows("service:w*"), [0, 1]);
    assert_eq!(index.rows("version:?2"), [1, 3]);
    assert_eq!(index.rows("source:/.*app\\.log/"), [0, 1, 2, 3, 4]);
    assert_eq!(index.rows("conn*"), [0]);
    assert_eq!(index.rows("Time*"), [2]);
    assert_eq!(index.rows("/tim.o.t/"), [2]);
    assert_eq!(index.rows("/TIM.O.T/"), [2]);
}

#[test]
fn severity_and_time_ranges() {
    let index = test_index();
    assert_eq!(index.rows("severity:>=13"), [0, 2, 4]);
    assert_eq!(index.rows("severity:[9 TO 17}"), [1, 2]);
    assert_eq!(index.rows("severity:<9"), [3]);
    assert_eq!(index.rows("severity:13"), [2]);
    assert_eq!(index.rows("severity:[* TO 5]"), [3]);
    // 1970-01-01T00:50:00Z is second 3000.
    assert_eq!(index.rows("timestamp:>=1970-01-01T00:50:00Z"), [2, 3, 4]);
    assert_eq!(index.rows("timestamp:>1970-01-01T00:50:00Z"), [3, 4]);
    // now is second 6000 in these tests.
    assert_eq!(index.rows("timestamp:>now-35m"), [3, 4]);
    assert_eq!(index.rows("timestamp:1970-01-01T00:50:00Z"), [2]);
}

#[test]
fn attributes_by_word_number_and_range() {
    let index = test_index();
    assert_eq!(index.rows("attrs.http.status:500"), [0]);
    assert_eq!(index.rows("attrs.url:users"), [0]);
    assert_eq!(index.rows("attrs.url:\"/api/users\""), [0]);
    assert_eq!(index.rows("attrs.http.status:>=400"), [0]);
    assert_eq!(index.rows("attrs.http.status:[100 TO 300]"), [1]);
    // Whole and fractional numbers alike.
    assert_eq!(index.rows("attrs.duration_ms:>12"), [1, 2]);
    assert_eq!(index.rows("attrs.duration_ms:<13"), [1]);
    assert_eq!(index.rows("attrs.duration_ms:{12.5 TO 300]"), [2]);
    assert_eq!(index.rows("attrs.duration_ms:*"), [1, 2]);
    assert_eq!(index.rows("attrs.http:*"), Vec::<u64>::new());
}

#[test]
fn exists_on_fixed_fields() {
    let index = test_index();
    assert_eq!(index.rows("trace_id:*"), [0]);
    assert_eq!(index.rows("service:*"), [0, 1, 2, 3, 4]);
    assert_eq!(index.rows("image:*"), Vec::<u64>::new());
    assert_eq!(index.rows("severity:*"), [0, 1, 2, 3, 4]);
}

#[test]
fn version_aliases_resolve_per_service() {
    let index = test_index();
    assert_eq!(index.rows("version:latest"), [1, 3]);
    assert_eq!(index.rows("version:previous"), [0, 2]);
    assert_eq!(index.rows("service:web version:latest"), [1]);
    assert_eq!(index.rows("version:\"latest\""), Vec::<u64>::new());
}

#[test]
fn what_cannot_run_is_an_error_at_its_position() {
    let index = test_index();
    let error = index.error("level:error value:>3");
    assert_eq!(error.span, 12..20);
    assert!(error.message.contains("value"), "{error}");
    let error = index.error("service:web attrs.url:/ap.*/");
    assert_eq!(error.span.start, 12);
    assert!(error.message.contains("not supported yet"), "{error}");
    let error = index.error("a \"!!!\"");
    assert_eq!(error.span, 2..7);
}

mod pruning {
    use super::*;

    fn required(query: &str) -> RequiredIdentity {
        required_identity(&parse(query).unwrap().filter)
    }

    fn set(values: &[&str]) -> Option<BTreeSet<String>> {
        Some(values.iter().map(|value| value.to_string()).collect())
    }

    #[test]
    fn anded_terms_intersect_and_ored_terms_unite() {
        let required = required("service:web version:v2 refused");
        assert_eq!(required.services, set(&["web"]));
        assert_eq!(required.versions, set(&["v2"]));
        assert_eq!(required.generations, None);
        let required =
            required_identity(&parse("service:(web OR api) service:web").unwrap().filter);
        assert_eq!(required.services, set(&["web"]));
        assert_eq!(
            super::pruning::required("(service:a version:1) OR (service:b generation:3)").services,
            set(&["a", "b"])
        );
        assert_eq!(
            super::pruning::required("service:a service:b").services,
            set(&[])
        );
    }

    #[test]
    fn anything_but_exact_terms_leaves_a_field_free() {
        for query in [
            "*",
            "-service:web",
            "service:web OR refused",
            "service:w*",
            "service:/web/",
            "service:[a TO c]",
            "service:*",
            "version:latest",
            "NOT (service:web)",
            "instance:i-1 OR service:web",
        ] {
            assert_eq!(
                required(query).services,
                None,
                "{query} must not constrain services"
            );
        }
        assert_eq!(required("instance:i-1 OR service:web").instances, None);
    }

    /// Soundness: for every query and every split built from a subset of the test
    /// lines, a split that holds a matching line is never pruned.
    #[test]
    fn pruning_never_skips_a_split_with_a_match() {
        let index = test_index();
        let all_lines = lines();
        let queries = [
            "service:web",
            "service:web version:v1",
            "service:(web OR batch) level:fatal",
            "(service:web version:v2) OR (service:api generation:2)",
            "service:api -version:a1",
            "generation:2 OR generation:1",
            "instance:i-1 service:batch",
            "service:nope",
            "service:web service:api",
            "refused OR service:api",
        ];
        for query in queries {
            let matching = index.rows(query);
            let required = required(query);
            // Every split made of a contiguous run of lines.
            for start in 0..all_lines.len() {
                for end in start + 1..=all_lines.len() {
                    let split = &all_lines[start..end];
                    let values = |pick: fn(&Line) -> &'static str| -> BTreeSet<String> {
                        split.iter().map(|line| pick(line).to_string()).collect()
                    };
                    let may_match = required.may_match(
                        &values(|line| line.service),
                        &values(|line| line.version),
                        &values(|line| line.generation),
                        &BTreeSet::from(["i-1".to_string()]),
                    );
                    let holds_match = matching
                        .iter()
                        .any(|row| (start..end).contains(&(*row as usize)));
                    assert!(
                        may_match || !holds_match,
                        "{query}: split of lines {start}..{end} pruned but holds a match"
                    );
                }
            }
        }
        // And pruning does prune: a split of only `api` lines cannot match `service:web`.
        let only_api = BTreeSet::from(["api".to_string()]);
        let anything = BTreeSet::from(["x".to_string()]);
        assert!(!required("service:web").may_match(&only_api, &anything, &anything, &anything));
    }

    /// Soundness of time pruning, the same way: no split holding a match is skipped.
    #[test]
    fn time_pruning_never_skips_a_split_with_a_match() {
        const SECOND: i64 = 1_000_000_000;
        let index = test_index();
        let all_lines = lines();
        let queries = [
            "timestamp:>1970-01-01T00:50:00Z",
            "timestamp:[1970-01-01T00:20:00Z TO 1970-01-01T00:50:00Z}",
            "timestamp:<now-80m OR timestamp:>now-20m",
            "timestamp:>now-35m service:batch",
            "timestamp:1970-01-01T00:50:00Z",
            "timestamp:>now-35m OR refused",
            "-timestamp:>now-35m",
        ];
        for query in queries {
            let matching = index.rows(query);
            let range = required_time_range(&parse(query).unwrap().filter, 6_000 * SECOND);
            for start in 0..all_lines.len() {
                for end in start + 1..=all_lines.len() {
                    let split = &all_lines[start..end];
                    let min = split.iter().map(|line| line.seconds).min().unwrap() * SECOND;
                    let max = split.iter().map(|line| line.seconds).max().unwrap() * SECOND;
                    let may_match = range.start_nanos.is_none_or(|start| max >= start)
                        && range.end_nanos.is_none_or(|end| min <= end);
                    let holds_match = matching
                        .iter()
                        .any(|row| (start..end).contains(&(*row as usize)));
                    assert!(
                        may_match || !holds_match,
                        "{query}: split of lines {start}..{end} pruned but holds a match"
                    );
                }
            }
        }
        // And it does prune: now-35m is second 3900 here.
        let range = required_time_range(
            &parse("level:error timestamp:>now-35m").unwrap().filter,
            6_000 * SECOND,
        );
        assert_eq!(range.start_nanos, Some(3_900 * SECOND));
        assert_eq!(range.end_nanos, None);
    }
}

#[test]
fn time_ranges_over_a_millisecond_column_round_to_whole_milliseconds() {
    use std::ops::Bound as RangeBound;
    let mut builder = Schema::builder();
    let timestamp = builder.add_i64_field(
        "timestamp",
        tantivy::schema::NumericOptions::default().set_fast(),
    );
    let schema = builder.build();
    let index = Index::create_in_ram(schema.clone());
    let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
    for millis in [1_i64, 2, 3] {
        let mut doc = TantivyDocument::new();
        doc.add_i64(timestamp, millis);
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    let searcher = index.reader().unwrap().searcher();
    let millis_in = |lower: RangeBound<i64>, upper: RangeBound<i64>| -> Vec<i64> {
        let query = time_range_query(&schema, timestamp, &lower, &upper);
        let mut found: Vec<i64> = searcher
            .search(&query, &DocSetCollector)
            .unwrap()
            .into_iter()
            .map(|address| address.doc_id as i64 + 1)
            .collect();
        found.sort();
        found
    };
    const MS: i64 = 1_000_000;
    use RangeBound::{Excluded, Included, Unbounded};
    assert_eq!(millis_in(Included(MS + 1), Unbounded), [2, 3]);
    assert_eq!(millis_in(Included(2 * MS), Included(2 * MS)), [2]);
    assert_eq!(millis_in(Excluded(2 * MS), Unbounded), [3]);
    assert_eq!(millis_in(Excluded(2 * MS - 1), Unbounded), [2, 3]);
    assert_eq!(millis_in(Unbounded, Included(3 * MS - 1)), [1, 2]);
    assert_eq!(millis_in(Unbounded, Excluded(2 * MS)), [1]);
    assert_eq!(millis_in(Unbounded, Excluded(2 * MS + 1)), [1, 2]);
}
