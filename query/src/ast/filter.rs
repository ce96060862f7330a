//! The filter half of a query: which lines match.
//!
//! Every node keeps the exact text the user typed for its values (the engine decides
//! tokenization) next to the typed reading the parser already checked (a number for
//! `severity`, a time for `timestamp`), and its byte span for error messages.

use std::time::Duration;

use crate::error::Span;
use crate::fields::FieldRef;

/// A boolean combination of field matches.
///
/// `field: None` means the default search field, which is the log body: bare words,
/// bare phrases and bare regexes. The engine maps it to the schema's default fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every line: the empty filter and `*`.
    All { span: Span },
    /// One value, matched as the field's index reads it: the whole value for keyword,
    /// number and time fields, the value's tokens for the body and attributes.
    Term {
        field: Option<FieldRef>,
        value: Value,
        span: Span,
    },
    /// `"..."` on the body or an attribute: the words in this order. (A quoted value on a
    /// keyword, number or time field is a [`Filter::Term`]: quotes only protect special
    /// characters there.)
    Phrase {
        field: Option<FieldRef>,
        text: String,
        span: Span,
    },
    /// `web-*`, `conn?ction`: a pattern over whole values (or body tokens).
    Wildcard {
        field: Option<FieldRef>,
        pattern: WildcardPattern,
        span: Span,
    },
    /// `/.*nginx.*/`: a regex over whole values (or body tokens), already checked to
    /// compile. `pattern` is the text between the slashes with `\/` read as `/`.
    Regex {
        field: Option<FieldRef>,
        pattern: String,
        span: Span,
    },
    /// `field:*`: lines that have the field at all.
    Exists { field: FieldRef, span: Span },
    /// `field:[a TO b]`, `field:{a TO *]`.
    Range {
        field: FieldRef,
        lower: Bound,
        upper: Bound,
        span: Span,
    },
    /// `field:>=13`, `timestamp:>now-1h`.
    Compare {
        field: FieldRef,
        op: CompareOp,
        value: Value,
        span: Span,
    },
    /// `version:latest` / `version:previous`: resolved by the engine to a service's
    /// newest / second-newest image version by first seen. (`version:"latest"` is the
    /// literal version string.)
    VersionAlias { alias: VersionAlias, span: Span },
    /// All operands match; explicit `AND` and juxtaposition alike. At least two operands.
    And { operands: Vec<Filter>, span: Span },
    /// Any operand matches. At least two operands.
    Or { operands: Vec<Filter>, span: Span },
    /// `NOT x`, `-x`. A filter made only of exclusions means "every line except".
    Not { operand: Box<Filter>, span: Span },
}

impl Filter {
    /// The bytes of the query this node was read from (for a field match, from the field
    /// name to the end of the value).
    pub fn span(&self) -> &Span {
        match self {
            Filter::All { span }
            | Filter::Term { span, .. }
            | Filter::Phrase { span, .. }
            | Filter::Wildcard { span, .. }
            | Filter::Regex { span, .. }
            | Filter::Exists { span, .. }
            | Filter::Range { span, .. }
            | Filter::Compare { span, .. }
            | Filter::VersionAlias { span, .. }
            | Filter::And { span, .. }
            | Filter::Or { span, .. }
            | Filter::Not { span, .. } => span,
        }
    }

    pub(crate) fn span_mut(&mut self) -> &mut Span {
        match self {
            Filter::All { span }
            | Filter::Term { span, .. }
            | Filter::Phrase { span, .. }
            | Filter::Wildcard { span, .. }
            | Filter::Regex { span, .. }
            | Filter::Exists { span, .. }
            | Filter::Range { span, .. }
            | Filter::Compare { span, .. }
            | Filter::VersionAlias { span, .. }
            | Filter::And { span, .. }
            | Filter::Or { span, .. }
            | Filter::Not { span, .. } => span,
        }
    }
}

/// A value as typed, with the reading the field's kind gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Exactly what the user meant, quotes and escapes removed.
    pub text: String,
    pub typed: TypedValue,
    pub span: Span,
}

/// The parser's reading of a value, by the field's kind: keyword and text fields read
/// [`TypedValue::Text`]; `severity` an integer; `value` a number; `timestamp` a time;
/// attributes a number when the text is one, text otherwise (the engine may try both).
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Text,
    Integer(i64),
    Float(f64),
    Time(TimePoint),
}

/// A time as a query names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimePoint {
    /// RFC 3339 (`2026-11-26T10:00:00Z`, `2026-11-26T11:00:00+01:00`), or a date
    /// (`2026-11-26`, midnight UTC), as nanoseconds since the Unix epoch.
    Absolute { unix_nanos: i64 },
    /// `now` (zero) or `now-15m`: resolved by the engine when the query runs, which is
    /// what alert rules need.
    BeforeNow(Duration),
}

/// One end of a range.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// `[` or `]`.
    Included(Value),
    /// `{` or `}`.
    Excluded(Value),
    /// `*`.
    Unbounded,
}

/// The operator of a [`Filter::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
        }
    }
}

/// Which image version `version:latest` / `version:previous` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionAlias {
    /// The newest image version of a service, by first seen.
    Latest,
    /// The second-newest image version of a service, by first seen.
    Previous,
}

impl VersionAlias {
    pub fn name(self) -> &'static str {
        match self {
            VersionAlias::Latest => "latest",
            VersionAlias::Previous => "previous",
        }
    }
}

/// A wildcard pattern: literal text, `*` and `?`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WildcardPattern {
    pub parts: Vec<WildcardPart>,
}

/// A piece of a [`WildcardPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WildcardPart {
    /// Text matched as is (escaped `\*` and `\?` land here).
    Literal(String),
    /// `*`: any run of characters, possibly empty.
    AnyChars,
    /// `?`: exactly one character.
    AnyChar,
}

impl WildcardPattern {
    /// The pattern as a regex over a whole value, the form tantivy's `RegexQuery`
    /// takes (its regexes are anchored at both ends already).
    pub fn to_regex(&self) -> String {
        let mut regex = String::new();
        for part in &self.parts {
            match part {
                WildcardPart::Literal(text) => regex.push_str(&regex_syntax::escape(text)),
                WildcardPart::AnyChars => regex.push_str(".*"),
                WildcardPart::AnyChar => regex.push('.'),
            }
        }
        regex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_regex_escapes_literal_text() {
        let pattern = WildcardPattern {
            parts: vec![
                WildcardPart::Literal("web.".into()),
                WildcardPart::AnyChars,
                WildcardPart::Literal("(1)".into()),
                WildcardPart::AnyChar,
            ],
        };
        assert_eq!(pattern.to_regex(), r"web\..*\(1\).");
    }
}
