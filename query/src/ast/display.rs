//! The canonical text of a query: one space between terms, implicit AND, `-` for NOT,
//! field groups expanded (`service:(a OR b)` prints `service:a OR service:b`), values
//! quoted or escaped only where the lexer needs it, stage keywords lowercase, `sort`
//! orders explicit. Parsing the canonical text gives back the same tree, spans aside
//! (a property test holds this to account).

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::ast::{
    Aggregation, Bound, Column, Filter, Query, SortOrder, Stage, Value, WildcardPart,
    WildcardPattern,
};
use crate::fields::{FieldKind, FieldRef, IdentityField};
use crate::parser::DURATION_UNITS;

impl fmt::Display for Query {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.filter)?;
        for stage in &self.stages {
            write!(formatter, " | {stage}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(formatter, self, Parent::Top)
    }
}

/// Where a filter is printed, which decides whether it needs parentheses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parent {
    Top,
    And,
    Or,
    Not,
}

fn write_filter(out: &mut fmt::Formatter<'_>, filter: &Filter, parent: Parent) -> fmt::Result {
    match filter {
        Filter::And { operands, .. } => {
            // AND binds tighter than OR, so only a nested AND or a NOT needs parentheses
            // (a nested AND keeps its own node when parsed back).
            let parenthesize = matches!(parent, Parent::And | Parent::Not);
            write_operands(out, operands, " ", Parent::And, parenthesize)
        }
        Filter::Or { operands, .. } => {
            let parenthesize = parent != Parent::Top;
            write_operands(out, operands, " OR ", Parent::Or, parenthesize)
        }
        Filter::Not { operand, .. } => {
            out.write_char('-')?;
            write_filter(out, operand, Parent::Not)
        }
        Filter::All { .. } => out.write_char('*'),
        Filter::Term { field, value, .. } => {
            write_field_prefix(out, field.as_ref())?;
            match field {
                None => out.write_str(&escape_word(&value.text, Context::Term)),
                Some(field) => out.write_str(&field_value_text(field, &value.text)),
            }
        }
        Filter::Phrase { field, text, .. } => {
            write_field_prefix(out, field.as_ref())?;
            out.write_str(&quoted(text))
        }
        Filter::Wildcard { field, pattern, .. } => {
            write_field_prefix(out, field.as_ref())?;
            let context = if field.is_some() {
                Context::Value
            } else {
                Context::Term
            };
            out.write_str(&wildcard_text(pattern, context))
        }
        Filter::Regex { field, pattern, .. } => {
            write_field_prefix(out, field.as_ref())?;
            out.write_char('/')?;
            out.write_str(&escape_regex_slashes(pattern))?;
            out.write_char('/')
        }
        Filter::Exists { field, .. } => write!(out, "{field}:*"),
        Filter::Range {
            field,
            lower,
            upper,
            ..
        } => {
            let open = if matches!(lower, Bound::Excluded(_)) {
                '{'
            } else {
                '['
            };
            let close = if matches!(upper, Bound::Excluded(_)) {
                '}'
            } else {
                ']'
            };
            write!(
                out,
                "{field}:{open}{} TO {}{close}",
                bound_text(lower),
                bound_text(upper)
            )
        }
        Filter::Compare {
            field, op, value, ..
        } => write!(out, "{field}:{}{}", op.symbol(), bound_value_text(value)),
        Filter::VersionAlias { alias, .. } => write!(out, "version:{}", alias.name()),
    }
}

fn write_operands(
    out: &mut fmt::Formatter<'_>,
    operands: &[Filter],
    separator: &str,
    parent: Parent,
    parenthesize: bool,
) -> fmt::Result {
    if parenthesize {
        out.write_char('(')?;
    }
    for (index, operand) in operands.iter().enumerate() {
        if index > 0 {
            out.write_str(separator)?;
        }
        write_filter(out, operand, parent)?;
    }
    if parenthesize {
        out.write_char(')')?;
    }
    Ok(())
}

fn write_field_prefix(out: &mut fmt::Formatter<'_>, field: Option<&FieldRef>) -> fmt::Result {
    match field {
        Some(field) => write!(out, "{field}:"),
        None => Ok(()),
    }
}

/// Where a bare word is printed: at the start of a term (where `field:`, keywords and a
/// leading `-` mean something) or right after `field:`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Term,
    Value,
}

/// Characters a bare word must escape anywhere in it.
fn must_escape(c: char, context: Context) -> bool {
    c.is_whitespace()
        || matches!(c, '(' | ')' | '|' | '"' | '\\' | '*' | '?')
        // An unescaped colon after a name would split the word into `field:value`.
        || (context == Context::Term && c == ':')
}

/// Characters a bare word must escape when it starts with them.
fn must_escape_first(c: char, context: Context) -> bool {
    match context {
        Context::Term => matches!(c, '-' | '/'),
        Context::Value => matches!(c, '/' | '[' | '{' | '>' | '<'),
    }
}

/// A literal text as a bare word that lexes back to exactly this text.
fn escape_word(text: &str, context: Context) -> String {
    let mut escaped = String::with_capacity(text.len());
    let is_keyword = context == Context::Term && matches!(text, "AND" | "OR" | "NOT");
    for (index, c) in text.chars().enumerate() {
        let first = index == 0;
        if must_escape(c, context) || (first && (must_escape_first(c, context) || is_keyword)) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn wildcard_text(pattern: &WildcardPattern, context: Context) -> String {
    let mut text = String::new();
    for part in &pattern.parts {
        match part {
            WildcardPart::AnyChars => text.push('*'),
            WildcardPart::AnyChar => text.push('?'),
            WildcardPart::Literal(literal) if text.is_empty() => {
                text.push_str(&escape_word(literal, context));
            }
            WildcardPart::Literal(literal) => {
                for c in literal.chars() {
                    if must_escape(c, context) {
                        text.push('\\');
                    }
                    text.push(c);
                }
            }
        }
    }
    text
}

/// A term value after `field:`. Keyword, number and time fields take quotes where the
/// bare form would not do (quotes mean nothing more there); on the body and attributes
/// quotes would make a phrase, so those escape instead.
fn field_value_text(field: &FieldRef, text: &str) -> String {
    if matches!(field.kind(), FieldKind::Text | FieldKind::Json) {
        return escape_word(text, Context::Value);
    }
    let is_alias_word = *field == FieldRef::Identity(IdentityField::Version)
        && matches!(text, "latest" | "previous");
    if text.is_empty() || is_alias_word || escape_word(text, Context::Value) != text {
        quoted(text)
    } else {
        text.to_string()
    }
}

fn bound_text(bound: &Bound) -> String {
    match bound {
        Bound::Unbounded => "*".to_string(),
        Bound::Included(value) | Bound::Excluded(value) => bound_value_text(value),
    }
}

/// A range bound or comparison value: bare unless it would read as syntax there.
fn bound_value_text(value: &Value) -> String {
    let text = value.text.as_str();
    let needs_quotes = text.is_empty()
        || text == "*"
        || text == "TO"
        // After `>` a leading `=` would read as `>=`.
        || text.starts_with('=')
        || text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '|' | '"' | '\\' | '[' | ']' | '{' | '}'));
    if needs_quotes {
        quoted(text)
    } else {
        text.to_string()
    }
}

fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The regex with its slashes escaped; the lexer's other escapes are kept verbatim in the
/// pattern, so a backslash always pairs with the char after it.
fn escape_regex_slashes(pattern: &str) -> String {
    let mut escaped = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                escaped.push('\\');
                if let Some(next) = chars.next() {
                    escaped.push(next);
                }
            }
            '/' => escaped.push_str("\\/"),
            c => escaped.push(c),
        }
    }
    escaped
}

impl fmt::Display for Stage {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Stats {
                aggregations, by, ..
            } => {
                out.write_str("stats ")?;
                write_aggregations(out, aggregations)?;
                if !by.is_empty() {
                    let names: Vec<String> =
                        by.iter().map(|field| field.node.to_string()).collect();
                    write!(out, " by {}", names.join(", "))?;
                }
                Ok(())
            }
            Stage::Timechart {
                bucket,
                aggregations,
                by,
                ..
            } => {
                write!(out, "timechart span={} ", format_duration(*bucket))?;
                write_aggregations(out, aggregations)?;
                if let Some(field) = by {
                    write!(out, " by {}", field.node)?;
                }
                Ok(())
            }
            Stage::Top { n, field, .. } => write!(out, "top {n} {}", field.node),
            Stage::Fields { columns, .. } => {
                let names: Vec<String> = columns.iter().map(|column| column.node.name()).collect();
                write!(out, "fields {}", names.join(", "))
            }
            Stage::Sort { keys, .. } => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|key| {
                        let order = match key.order {
                            SortOrder::Ascending => "asc",
                            SortOrder::Descending => "desc",
                        };
                        format!("{} {order}", key.column.name())
                    })
                    .collect();
                write!(out, "sort by {}", keys.join(", "))
            }
            Stage::Limit { n, .. } => write!(out, "limit {n}"),
            Stage::Patterns { by, unique, .. } => {
                out.write_str("patterns")?;
                if *unique {
                    out.write_str(" unique")?;
                }
                match by {
                    Some(field) => write!(out, " by {}", field.node),
                    None => Ok(()),
                }
            }
        }
    }
}

fn write_aggregations(out: &mut fmt::Formatter<'_>, aggregations: &[Aggregation]) -> fmt::Result {
    for (index, aggregation) in aggregations.iter().enumerate() {
        if index > 0 {
            out.write_str(", ")?;
        }
        write!(out, "{aggregation}")?;
    }
    Ok(())
}

impl fmt::Display for Aggregation {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(self.function.name())?;
        match &self.field {
            Some(field) => write!(out, "({})", field.node)?,
            None => out.write_str("()")?,
        }
        if let Some(alias) = &self.alias {
            write!(out, " as {}", alias.node)?;
        }
        Ok(())
    }
}

impl fmt::Display for Column {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(&self.name())
    }
}

/// The largest unit that divides the duration exactly: `60s` prints `1m`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, unit_millis) in DURATION_UNITS {
        let unit_millis = u128::from(unit_millis);
        if millis > 0 && millis.is_multiple_of(unit_millis) {
            return format!("{}{unit}", millis / unit_millis);
        }
    }
    // Durations come from the parser, which only makes whole positive milliseconds.
    format!("{millis}ms")
}
