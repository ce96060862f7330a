//! The `patterns` stage: lines grouped by message template.
//!
//! A line's template is its body with the variable parts masked, token by token — no
//! training, no state, so the same line always gets the same template, whichever split or
//! query it comes from, and two versions' templates can be compared:
//!
//! | in the body | becomes |
//! |---|---|
//! | `"quoted text"`, `'quoted'` | `<str>` |
//! | `550e8400-e29b-41d4-a716-446655440000` | `<uuid>` |
//! | `10.0.0.7`, `10.0.0.7:5432`, `10.0.0.0/8`, `fe80::1` | `<ip>` |
//! | `2026-11-26T10:00:00Z`, `2026-11-26`, `10:42:07.123` | `<time>` |
//! | `250ms`, `1.5s`, `3m`, `1h30m`, `20µs` | `<duration>` |
//! | `42`, `-3.5`, `1e9`, `99%` | `<num>` |
//! | `0x1f`, `3f2a9c1b` (hex of 6+ characters with a digit and a letter) | `<hex>` |
//! | any other word with a digit: `/users/123`, `req-42`, `HTTP/1.1` | its parts, split at `/ - _ . : @ #`, masked one by one (`/users/<num>`, `req-<num>`); a part that mixes letters and digits (`user42`, `v2`) is `<*>` |
//!
//! Words are separated by whitespace and by `, ; ( ) [ ] { } < > = |`, so `status=500`
//! is `status=<num>`; a word's trailing `.` or `:` (end of a sentence, `error:`) is kept
//! outside it. Everything else — words, punctuation, spacing — stays as it is.
//!
//! The engine does the grouping ([`PatternCounter`]) and shapes the table; the caller
//! chooses which lines to feed it (the server reads the newest lines of each group up to
//! a cap).

use std::collections::{BTreeMap, BTreeSet};

use tantivy::schema::Schema;

use super::aggregate::{AggregateTable, Cell, shape};
use crate::ast::{Query, Stage};
use crate::error::QueryError;
use crate::fields::FieldRef;

/// The template of a log message: its variable parts masked (see the module docs).
pub fn message_template(message: &str) -> String {
    let mut template = String::with_capacity(message.len());
    let mut rest = message;
    let mut previous: Option<char> = None;
    while let Some(first) = rest.chars().next() {
        // A quoted string: an opening quote not glued to a word before it (so the
        // apostrophe of "don't" is not one) up to its closing quote.
        if (first == '"' || first == '\'')
            && !previous.is_some_and(char::is_alphanumeric)
            && let Some(length) = quoted_length(rest, first)
        {
            template.push_str("<str>");
            previous = Some(first);
            rest = &rest[length..];
            continue;
        }
        if first.is_whitespace() || is_delimiter(first) {
            template.push(first);
            previous = Some(first);
            rest = &rest[first.len_utf8()..];
            continue;
        }
        // The word runs to the next separator or double quote after its first character
        // (which may itself be a quote that does not open a string), so it is never empty.
        let word_length = first.len_utf8()
            + rest[first.len_utf8()..]
                .find(|c: char| c.is_whitespace() || is_delimiter(c) || c == '"')
                .unwrap_or(rest.len() - first.len_utf8());
        let word = &rest[..word_length];
        // A sentence's full stop or a label's colon is not part of the word.
        let core = word.trim_end_matches(['.', ':']);
        let core = if core.is_empty() { word } else { core };
        mask_word(core, &mut template);
        template.push_str(&word[core.len()..]);
        previous = word.chars().last();
        rest = &rest[word_length..];
    }
    template
}

fn is_delimiter(character: char) -> bool {
    matches!(
        character,
        ',' | ';' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '=' | '|'
    )
}

/// The byte length of the quoted string at the start of `text` (quotes included), if it
/// closes; a backslash escapes the next character.
fn quoted_length(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (position, character) in text.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == quote {
            return Some(position + character.len_utf8());
        }
    }
    None
}

fn mask_word(word: &str, out: &mut String) {
    if let Some(mask) = whole_word_mask(word) {
        out.push_str(mask);
        return;
    }
    if !word.chars().any(|c| c.is_ascii_digit()) {
        out.push_str(word);
        return;
    }
    // A word with digits in it: mask its parts.
    let mut part_start = 0;
    for (position, character) in word.char_indices() {
        if matches!(character, '/' | '-' | '_' | '.' | ':' | '@' | '#') {
            mask_part(&word[part_start..position], out);
            out.push(character);
            part_start = position + character.len_utf8();
        }
    }
    mask_part(&word[part_start..], out);
}

fn mask_part(part: &str, out: &mut String) {
    if part.is_empty() {
        return;
    }
    if let Some(mask) = whole_word_mask(part) {
        out.push_str(mask);
    } else if part.chars().any(|c| c.is_ascii_digit()) {
        out.push_str("<*>");
    } else {
        out.push_str(part);
    }
}

/// The mask of a word that is one variable as a whole, if it is one.
fn whole_word_mask(word: &str) -> Option<&'static str> {
    if is_uuid(word) {
        Some("<uuid>")
    } else if is_ip(word) {
        Some("<ip>")
    } else if is_time(word) {
        Some("<time>")
    } else if is_duration(word) {
        Some("<duration>")
    } else if is_number(word) {
        Some("<num>")
    } else if is_hex(word) {
        Some("<hex>")
    } else {
        None
    }
}

fn is_uuid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, length)| group.len() == length && all_hex(group))
}

fn all_hex(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

fn is_ip(word: &str) -> bool {
    // An optional /prefix length.
    let address = match word.split_once('/') {
        Some((address, prefix)) if all_digits(prefix) && prefix.len() <= 3 => address,
        Some(_) => return false,
        None => word,
    };
    // IPv4, with an optional :port.
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if all_digits(port) && host.contains('.') => (host, Some(port)),
        _ => (address, None),
    };
    let octets: Vec<&str> = host.split('.').collect();
    if octets.len() == 4
        && octets.iter().all(|octet| {
            all_digits(octet) && octet.len() <= 3 && octet.parse::<u16>().is_ok_and(|n| n <= 255)
        })
    {
        return port.is_none_or(|port| port.len() <= 5);
    }
    // IPv6: hex groups and colons, at least two colons, at least one hex digit, and not
    // a time of day (which is only digits and colons with two-digit groups).
    address.matches(':').count() >= 2
        && address
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        && address.chars().any(|c| c.is_ascii_hexdigit())
        && !is_time(address)
        && address
            .split(':')
            .all(|group| group.len() <= 4 || group.contains('.'))
}

/// A date (`2026-11-26`), a time of day (`10:42:07`, `10:42:07.123`) or both
/// (`2026-11-26T10:00:00Z`, `2026-11-26 10:00:00+01:00`).
fn is_time(word: &str) -> bool {
    let (date, time) = match word.split_once(['T', 't']) {
        Some((date, time)) => (Some(date), Some(time)),
        None if word.contains(':') => (None, Some(word)),
        None => (Some(word), None),
    };
    let date_ok = date.is_none_or(|date| {
        let parts: Vec<&str> = date.split(['-', '/']).collect();
        parts.len() == 3
            && parts.iter().all(|p| all_digits(p))
            && parts.iter().any(|p| p.len() == 4)
    });
    let time_ok = time.is_none_or(|time| {
        let time = time.trim_end_matches(['Z', 'z']);
        // An offset: +01:00 / -05:00 after the seconds.
        let time = match time.find(['+', '-']) {
            Some(offset_start) if offset_start > 0 => &time[..offset_start],
            _ => time,
        };
        let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
        let parts: Vec<&str> = clock.split(':').collect();
        (2..=3).contains(&parts.len())
            && parts.iter().all(|p| all_digits(p) && p.len() <= 2)
            && all_digits(fraction)
    });
    date_ok && time_ok && (date.is_some() || time.is_some_and(|t| t.contains(':')))
}

/// One or more `<number><unit>` (`250ms`, `1.5s`, `1h30m`).
fn is_duration(word: &str) -> bool {
    const UNITS: [&str; 12] = [
        "ns", "us", "µs", "μs", "ms", "s", "sec", "secs", "m", "min", "h", "d",
    ];
    let mut rest = word;
    let mut pieces = 0;
    while !rest.is_empty() {
        let number_length = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_length == 0 || !rest[..number_length].starts_with(|c: char| c.is_ascii_digit()) {
            return false;
        }
        rest = &rest[number_length..];
        let unit_length = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if !UNITS.contains(&&rest[..unit_length]) {
            return false;
        }
        rest = &rest[unit_length..];
        pieces += 1;
    }
    pieces > 0
}

/// A decimal number: optional sign, digits, optional fraction and exponent, optional `%`.
fn is_number(word: &str) -> bool {
    let word = word.strip_suffix('%').unwrap_or(word);
    let word = word.strip_prefix(['-', '+']).unwrap_or(word);
    let (mantissa, exponent) = match word.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (word, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    all_digits(whole)
        && all_digits(fraction)
        && exponent.is_none_or(|e| all_digits(e.strip_prefix(['-', '+']).unwrap_or(e)))
}

/// `0x1f`, or a run of 6+ hex digits with at least one digit and one letter (commit
/// hashes, ids).
fn is_hex(word: &str) -> bool {
    if let Some(digits) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        return all_hex(digits);
    }
    word.len() >= 6
        && all_hex(word)
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

/// A `patterns` stage checked against the schema, with the stages that shape its table.
#[derive(Debug, Clone)]
pub struct PatternPlan {
    by: Option<FieldRef>,
    /// The fast column the `by` field is read from.
    by_column: Option<String>,
    unique: bool,
    shaping: Vec<Stage>,
}

/// Plans the query's `patterns` stage. The `by` field must be a fast (columnar) field of
/// `schema`, because the server reads it per line without opening the document.
pub fn plan_patterns(query: &Query, schema: &Schema) -> Result<PatternPlan, QueryError> {
    let Some(position) = query
        .stages
        .iter()
        .position(|stage| matches!(stage, Stage::Patterns { .. }))
    else {
        return Err(QueryError::new(
            query.stages.first().map_or(0..0, |s| s.span().clone()),
            "the query has no `patterns` stage",
        ));
    };
    let Stage::Patterns { by, unique, .. } = &query.stages[position] else {
        unreachable!("found by position")
    };
    let by_column = match by {
        Some(field) => {
            let fast = field.node.fixed_name().filter(|name| {
                schema
                    .get_field(name)
                    .is_ok_and(|f| schema.get_field_entry(f).is_fast())
            });
            match fast {
                Some(name) => Some(name.to_string()),
                None => {
                    return Err(QueryError::new(
                        field.span.clone(),
                        format!(
                            "`patterns by {}` needs a keyword field with a column, such as version, service, generation, instance, host or level",
                            field.node
                        ),
                    ));
                }
            }
        }
        None => None,
    };
    Ok(PatternPlan {
        by: by.as_ref().map(|field| field.node.clone()),
        by_column,
        unique: *unique,
        shaping: query.stages[position + 1..].to_vec(),
    })
}

impl PatternPlan {
    /// The fast column whose value groups the lines, if the stage has `by`.
    pub fn by_column(&self) -> Option<&str> {
        self.by_column.as_deref()
    }

    pub fn counter(&self) -> PatternCounter {
        PatternCounter::default()
    }

    /// The table of patterns: `[by,] pattern, count, example`, most lines first (then by
    /// group and pattern), only the patterns of one group when `unique`, then shaped by
    /// the stages after `patterns`.
    pub fn table(&self, counter: PatternCounter) -> AggregateTable {
        let mut groups_of_template: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (group, template) in counter.patterns.keys() {
            groups_of_template
                .entry(template.as_str())
                .or_default()
                .insert(group.as_str());
        }
        let mut rows: Vec<(u64, Vec<Cell>)> = Vec::new();
        for ((group, template), entry) in &counter.patterns {
            if self.unique && groups_of_template[template.as_str()].len() > 1 {
                continue;
            }
            let mut row = Vec::with_capacity(4);
            if self.by.is_some() {
                row.push(Cell::Text(group.clone()));
            }
            row.push(Cell::Text(template.clone()));
            row.push(Cell::Integer(
                i64::try_from(entry.count).unwrap_or(i64::MAX),
            ));
            row.push(Cell::Text(entry.example.clone()));
            rows.push((entry.count, row));
        }
        // Most lines first; the BTreeMap already ordered ties by group, then pattern.
        rows.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
        let mut columns = Vec::with_capacity(4);
        if let Some(by) = &self.by {
            columns.push(by.to_string());
        }
        columns.extend(["pattern", "count", "example"].map(str::to_string));
        let table = AggregateTable {
            columns,
            rows: rows.into_iter().map(|(_, row)| row).collect(),
        };
        shape(table, &self.shaping)
    }
}

/// Lines counted by (group, template), with the newest line of each as its example.
#[derive(Debug, Default)]
pub struct PatternCounter {
    patterns: BTreeMap<(String, String), PatternEntry>,
}

#[derive(Debug)]
struct PatternEntry {
    count: u64,
    example: String,
    /// The example's position: (timestamp, row), the newest wins.
    example_key: (i64, u64),
}

impl PatternCounter {
    /// Counts one line of `group` (the `by` field's value; `""` without `by`) at position
    /// `key` (timestamp, row).
    pub fn add(&mut self, group: &str, body: &str, key: (i64, u64)) {
        let template = message_template(body);
        match self
            .patterns
            .get_mut(&(group.to_string(), template.clone()))
        {
            Some(entry) => {
                entry.count += 1;
                if key > entry.example_key {
                    entry.example = body.to_string();
                    entry.example_key = key;
                }
            }
            None => {
                self.patterns.insert(
                    (group.to_string(), template),
                    PatternEntry {
                        count: 1,
                        example: body.to_string(),
                        example_key: key,
                    },
                );
            }
        }
    }

    /// Distinct (group, template) pairs so far.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::test_index;
    use crate::parse;

    #[test]
    fn variable_parts_are_masked() {
        let cases = [
            (
                "connection refused by 10.0.0.7:5432 after 250ms",
                "connection refused by <ip> after <duration>",
            ),
            (
                "user 42 logged in from fe80::1ff:fe23:4567:890a",
                "user <num> logged in from <ip>",
            ),
            (
                "request 550e8400-e29b-41d4-a716-446655440000 took 1.5s",
                "request <uuid> took <duration>",
            ),
            (
                "GET /api/users/123 HTTP/1.1 status=500",
                "GET /api/users/<num> HTTP/<num>.<num> status=<num>",
            ),
            (
                r#"failed to open "/var/lib/data 1.db": permission denied"#,
                "failed to open <str>: permission denied",
            ),
            ("it's 'quoted' here", "it's <str> here"),
            (
                "at 2026-11-26T10:00:00.25Z and 10:42:07 on 2026-11-26",
                "at <time> and <time> on <time>",
            ),
            (
                "commit 3f2a9c1b pointer 0x7ffd1234 ratio 99.5% of 1e9",
                "commit <hex> pointer <hex> ratio <num> of <num>",
            ),
            (
                "worker-7 retry #3 on req-42 (user42, v2) took 1h30m",
                "worker-<num> retry #<num> on req-<num> (<*>, <*>) took <duration>",
            ),
            ("Error: timeout.", "Error: timeout."),
            ("negative -3 and +4.25", "negative <num> and <num>"),
            ("", ""),
            ("  spaced\tout  ", "  spaced\tout  "),
            ("unclosed \"quote here 5", "unclosed \"quote here <num>"),
            ("subnet 10.0.0.0/8 ok", "subnet <ip> ok"),
            ("naïve café 3", "naïve café <num>"),
        ];
        for (message, template) in cases {
            assert_eq!(message_template(message), template, "{message}");
        }
    }

    #[test]
    fn templates_are_stable_and_never_panic_on_odd_input() {
        for message in [
            "\"",
            "'",
            "\\",
            "\"\\\"",
            "é\"",
            "0x",
            "1.2.3.4.5",
            ":::",
            "1e",
            "--",
            "%",
            "µs",
            "12µs",
            "🎉 3 🎉",
            "\u{0}1",
        ] {
            let once = message_template(message);
            assert_eq!(message_template(message), once, "{message:?}");
        }
        assert_eq!(message_template("took 12µs"), "took <duration>");
    }

    proptest::proptest! {
        /// Any text, quotes and odd characters included, gets a template, the same one
        /// every time, and a line without digits, quotes, `:` or `-` (which every mask
        /// needs: uuids and IPv6 addresses may be all letters) is its own template.
        #[test]
        fn any_message_gets_one_template(message in "(\\PC|[\"' 0-9.:/-]){0,60}") {
            let template = message_template(&message);
            proptest::prop_assert_eq!(message_template(&message), template.clone());
            if !message
                .chars()
                .any(|c| c.is_ascii_digit() || matches!(c, '"' | '\'' | ':' | '-'))
            {
                proptest::prop_assert_eq!(template, message);
            }
        }
    }

    fn plan(text: &str) -> PatternPlan {
        let index = test_index();
        plan_patterns(&parse(text).unwrap(), &index.schema).unwrap()
    }

    fn text(value: &str) -> Cell {
        Cell::Text(value.to_string())
    }

    #[test]
    fn lines_are_counted_by_template_with_the_newest_example() {
        let plan = plan("* | patterns");
        let mut counter = plan.counter();
        counter.add("", "user 1 logged in", (10, 0));
        counter.add("", "user 2 logged in", (30, 0));
        counter.add("", "user 3 logged in", (20, 0));
        counter.add("", "disk full", (5, 0));
        let table = plan.table(counter);
        assert_eq!(table.columns, ["pattern", "count", "example"]);
        assert_eq!(
            table.rows,
            [
                vec![
                    text("user <num> logged in"),
                    Cell::Integer(3),
                    text("user 2 logged in")
                ],
                vec![text("disk full"), Cell::Integer(1), text("disk full")],
            ]
        );
    }

    #[test]
    fn unique_keeps_what_only_one_group_logs() {
        let plan = plan("* | patterns unique by version | sort by version");
        let mut counter = plan.counter();
        for (version, message) in [
            ("v1", "started in 3s"),
            ("v2", "started in 5s"),
            ("v1", "cache miss for key 7"),
            ("v2", "schema migration 12 failed"),
            ("v2", "schema migration 13 failed"),
        ] {
            counter.add(version, message, (0, 0));
        }
        let table = plan.table(counter);
        assert_eq!(table.columns, ["version", "pattern", "count", "example"]);
        assert_eq!(
            table.rows,
            [
                vec![
                    text("v1"),
                    text("cache miss for key <num>"),
                    Cell::Integer(1),
                    text("cache miss for key 7")
                ],
                vec![
                    text("v2"),
                    text("schema migration <num> failed"),
                    Cell::Integer(2),
                    text("schema migration 12 failed")
                ],
            ]
        );
        // Without `unique`, the shared pattern is a row per version.
        let all = self::plan("* | patterns by version | limit 10");
        let mut counter = all.counter();
        counter.add("v1", "started in 3s", (0, 0));
        counter.add("v2", "started in 5s", (0, 0));
        assert_eq!(all.table(counter).rows.len(), 2);
    }

    #[test]
    fn by_must_be_a_column() {
        let index = test_index();
        let query = parse("* | patterns by trace_id").unwrap();
        let error = plan_patterns(&query, &index.schema).unwrap_err();
        assert_eq!(error.span, 16..24);
        assert_eq!(plan("* | patterns by level").by_column(), Some("level"));
    }
}
