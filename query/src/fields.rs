//! The fields a query can name, and what kind of value each holds.
//!
//! This table is the contract between the language, the engine and the server's index
//! schema: a name here is a name users type, and its [`FieldKind`] decides which filters
//! and pipe stages the parser accepts on it (no wildcard on a number, no range on full
//! text, no `sum` of a keyword). Attributes (`attrs.<dotted.key>`) are open-ended: any key
//! is allowed and its values are typed only when the engine reads them.

use std::fmt;

/// What an attribute reference starts with: `attrs.http.status` names the attribute key
/// `http.status`.
pub const ATTRIBUTE_PREFIX: &str = "attrs.";

/// How a field's values are indexed, which decides what a query may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// One exact value per line (service, version, level, ...): terms match the whole
    /// value; wildcards, regexes, ranges, grouping and sorting all apply.
    Keyword,
    /// Tokenized full text (the body): words and phrases; no ranges, no grouping.
    Text,
    /// A number (severity, a metric value): terms, ranges, comparisons and arithmetic
    /// aggregations.
    Number,
    /// A point in time (timestamp): ranges and comparisons over RFC 3339 times or
    /// `now-<duration>`.
    Time,
    /// Structured attributes whose value types are known only per document: every
    /// operation is allowed and the engine decides per value.
    Json,
}

impl FieldKind {
    /// The kind's name as documentation and error messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Keyword => "keyword",
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Time => "time",
            FieldKind::Json => "json",
        }
    }

    /// Whether `*`/`?` wildcards and `/regex/` apply (they match text, not numbers).
    pub fn allows_pattern_match(self) -> bool {
        matches!(self, FieldKind::Keyword | FieldKind::Text | FieldKind::Json)
    }

    /// Whether ranges and comparisons apply (not to tokenized full text).
    pub fn allows_range(self) -> bool {
        !matches!(self, FieldKind::Text)
    }

    /// Whether lines can be grouped by the field's value (`by`, `top`, `count_distinct`):
    /// not full text (that is what `patterns` is for) and not raw time (that is what
    /// `timechart` is for).
    pub fn allows_grouping(self) -> bool {
        matches!(
            self,
            FieldKind::Keyword | FieldKind::Number | FieldKind::Json
        )
    }

    /// Whether lines can be ordered by the field.
    pub fn allows_sorting(self) -> bool {
        !matches!(self, FieldKind::Text)
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The identity keys every line carries (DESIGN.md "Identity"), in the order the
/// server's schema declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityField {
    Service,
    Image,
    Version,
    ImageId,
    Generation,
    Instance,
    Host,
    Env,
    Region,
    Zone,
}

impl IdentityField {
    pub const ALL: [IdentityField; 10] = [
        IdentityField::Service,
        IdentityField::Image,
        IdentityField::Version,
        IdentityField::ImageId,
        IdentityField::Generation,
        IdentityField::Instance,
        IdentityField::Host,
        IdentityField::Env,
        IdentityField::Region,
        IdentityField::Zone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IdentityField::Service => "service",
            IdentityField::Image => "image",
            IdentityField::Version => "version",
            IdentityField::ImageId => "image_id",
            IdentityField::Generation => "generation",
            IdentityField::Instance => "instance",
            IdentityField::Host => "host",
            IdentityField::Env => "env",
            IdentityField::Region => "region",
            IdentityField::Zone => "zone",
        }
    }
}

/// A field a query names, resolved from its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldRef {
    Identity(IdentityField),
    /// The normalized level name (`error`, `warn`, ...).
    Level,
    /// Where the line came from (a file path, `stdout`, `journald`, ...).
    Source,
    /// The OTLP severity number (1–24).
    Severity,
    Timestamp,
    /// The log message, tokenized; bare words and phrases search it.
    Body,
    /// A metric's name (metrics are a later addition; the name is reserved now).
    Metric,
    /// A metric point's value (as in `stats p99(value)`).
    Value,
    TraceId,
    SpanId,
    /// `attrs.<key>`: the attribute key without the prefix, e.g. `http.status`.
    Attribute(String),
}

/// A named field of the fixed schema: the name users type and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub description: &'static str,
}

const fn keyword(name: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind: FieldKind::Keyword,
        description,
    }
}

/// Every fixed field, identity fields first. Attributes (`attrs.<key>`, kind
/// [`FieldKind::Json`]) come on top of these.
pub const FIELDS: [FieldSpec; 19] = [
    keyword("service", "the service name"),
    keyword("image", "the image name"),
    keyword(
        "version",
        "the image version (also `latest` and `previous`)",
    ),
    keyword("image_id", "the image digest"),
    keyword("generation", "the deployment generation"),
    keyword("instance", "the instance (host) id"),
    keyword("host", "the host name"),
    keyword("env", "the environment"),
    keyword("region", "the region"),
    keyword("zone", "the availability zone"),
    keyword(
        "level",
        "the normalized level name: trace, debug, info, warn, error, fatal",
    ),
    keyword(
        "source",
        "where the line was read from: a file path, stdout, journald",
    ),
    FieldSpec {
        name: "severity",
        kind: FieldKind::Number,
        description: "the OTLP severity number, 1 to 24",
    },
    FieldSpec {
        name: "timestamp",
        kind: FieldKind::Time,
        description: "when the line was logged",
    },
    FieldSpec {
        name: "body",
        kind: FieldKind::Text,
        description: "the message; bare words and phrases search it",
    },
    keyword("metric", "a metric's name"),
    FieldSpec {
        name: "value",
        kind: FieldKind::Number,
        description: "a metric point's value",
    },
    keyword("trace_id", "the trace id, hex"),
    keyword("span_id", "the span id, hex"),
];

/// The names of [`FIELDS`], in the same order.
pub const FIELD_NAMES: [&str; FIELDS.len()] = {
    let mut names = [""; FIELDS.len()];
    let mut index = 0;
    while index < FIELDS.len() {
        names[index] = FIELDS[index].name;
        index += 1;
    }
    names
};

impl FieldRef {
    /// Resolves a field name as users type it; `None` for unknown names and for malformed
    /// attribute references (`attrs.`, `attrs..x`, `attrs.x.`).
    pub fn from_name(name: &str) -> Option<FieldRef> {
        if let Some(key) = name.strip_prefix(ATTRIBUTE_PREFIX) {
            return is_valid_attribute_key(key).then(|| FieldRef::Attribute(key.to_string()));
        }
        let field = match name {
            "level" => FieldRef::Level,
            "source" => FieldRef::Source,
            "severity" => FieldRef::Severity,
            "timestamp" => FieldRef::Timestamp,
            "body" => FieldRef::Body,
            "metric" => FieldRef::Metric,
            "value" => FieldRef::Value,
            "trace_id" => FieldRef::TraceId,
            "span_id" => FieldRef::SpanId,
            _ => {
                let identity = IdentityField::ALL
                    .into_iter()
                    .find(|identity| identity.name() == name)?;
                FieldRef::Identity(identity)
            }
        };
        Some(field)
    }

    /// The kind of value the field holds.
    pub fn kind(&self) -> FieldKind {
        match self {
            FieldRef::Identity(_)
            | FieldRef::Level
            | FieldRef::Source
            | FieldRef::Metric
            | FieldRef::TraceId
            | FieldRef::SpanId => FieldKind::Keyword,
            FieldRef::Severity | FieldRef::Value => FieldKind::Number,
            FieldRef::Timestamp => FieldKind::Time,
            FieldRef::Body => FieldKind::Text,
            FieldRef::Attribute(_) => FieldKind::Json,
        }
    }

    /// The name of a fixed field; `None` for attributes (see the `Display` impl).
    pub fn fixed_name(&self) -> Option<&'static str> {
        let name = match self {
            FieldRef::Identity(identity) => identity.name(),
            FieldRef::Level => "level",
            FieldRef::Source => "source",
            FieldRef::Severity => "severity",
            FieldRef::Timestamp => "timestamp",
            FieldRef::Body => "body",
            FieldRef::Metric => "metric",
            FieldRef::Value => "value",
            FieldRef::TraceId => "trace_id",
            FieldRef::SpanId => "span_id",
            FieldRef::Attribute(_) => return None,
        };
        Some(name)
    }
}

impl fmt::Display for FieldRef {
    /// The name as users type it: `service`, `attrs.http.status`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::Attribute(key) => write!(formatter, "{ATTRIBUTE_PREFIX}{key}"),
            fixed => formatter.write_str(fixed.fixed_name().unwrap_or_default()),
        }
    }
}

/// Characters of a field name, in a filter (`name:`) and in a pipe stage alike.
pub(crate) fn is_field_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@')
}

/// A field name starts with a letter or `_`, so that times (`10:00`) and addresses in
/// bare words are not mistaken for `field:value`.
pub(crate) fn is_field_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// An attribute key: dot-separated, non-empty segments of field-name characters.
fn is_valid_attribute_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .split('.')
            .all(|segment| !segment.is_empty() && segment.chars().all(is_field_name_char))
}

/// A known field name close to `unknown`, for "did you mean" hints: the same name in
/// another case, a common misspelling of the attribute prefix, or a name at most two
/// edits away.
pub(crate) fn suggest_field_name(unknown: &str) -> Option<String> {
    for wrong_prefix in ["attr.", "attributes.", "attribute.", "Attrs."] {
        if let Some(key) = unknown.strip_prefix(wrong_prefix)
            && is_valid_attribute_key(key)
        {
            return Some(format!("{ATTRIBUTE_PREFIX}{key}"));
        }
    }
    suggest_from(unknown, FIELD_NAMES.iter().copied())
}

/// The candidate closest to `unknown` if it is the same word in another case or within
/// two edits (one for short words).
pub(crate) fn suggest_from<'a>(
    unknown: &str,
    candidates: impl Iterator<Item = &'a str> + Clone,
) -> Option<String> {
    let lowercase = unknown.to_lowercase();
    if let Some(same_but_case) = candidates
        .clone()
        .find(|candidate| candidate.to_lowercase() == lowercase)
    {
        return Some(same_but_case.to_string());
    }
    let allowed_edits = if unknown.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .map(|candidate| (edit_distance(&lowercase, candidate), candidate))
        .filter(|(distance, _)| *distance <= allowed_edits)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_string())
}

/// Levenshtein distance over chars; inputs are short names, so the quadratic table is
/// fine.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous_row: Vec<usize> = (0..=right.len()).collect();
    for (left_index, left_char) in left.chars().enumerate() {
        let mut row = Vec::with_capacity(right.len() + 1);
        row.push(left_index + 1);
        for (right_index, right_char) in right.iter().enumerate() {
            let substitution = previous_row[right_index] + usize::from(left_char != *right_char);
            let deletion = previous_row[right_index + 1] + 1;
            let insertion = row[right_index] + 1;
            row.push(substitution.min(deletion).min(insertion));
        }
        previous_row = row;
    }
    previous_row[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_field_resolves_to_a_ref_with_the_same_name_and_kind() {
        for spec in FIELDS {
            let field = FieldRef::from_name(spec.name).expect(spec.name);
            assert_eq!(field.to_string(), spec.name);
            assert_eq!(field.kind(), spec.kind, "{}", spec.name);
        }
    }

    #[test]
    fn identity_fields_are_listed_first_in_schema_order() {
        for (index, identity) in IdentityField::ALL.into_iter().enumerate() {
            assert_eq!(FIELD_NAMES[index], identity.name());
        }
    }

    #[test]
    fn attribute_keys_need_non_empty_segments() {
        assert_eq!(
            FieldRef::from_name("attrs.http.status"),
            Some(FieldRef::Attribute("http.status".into()))
        );
        assert_eq!(FieldRef::from_name("attrs."), None);
        assert_eq!(FieldRef::from_name("attrs..x"), None);
        assert_eq!(FieldRef::from_name("attrs.x."), None);
        assert_eq!(FieldRef::from_name("attrs"), None);
    }

    #[test]
    fn suggestions_catch_case_and_small_typos() {
        assert_eq!(suggest_field_name("Service").as_deref(), Some("service"));
        assert_eq!(suggest_field_name("servce").as_deref(), Some("service"));
        assert_eq!(suggest_field_name("attr.x").as_deref(), Some("attrs.x"));
        assert_eq!(suggest_field_name("path"), None);
    }
}
