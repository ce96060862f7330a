//! The filter grammar, loosest binding first:
//!
//! ```text
//! filter   := or
//! or       := and ("OR" and)*
//! and      := unary (["AND"] unary)*          juxtaposition is AND
//! unary    := ("NOT" | "-") unary | primary
//! primary  := "(" or ")" | "*" | word | "phrase" | /regex/ | field ":" value
//! value    := word | "quoted" | /regex/ | "*" | range | compare | "(" or ")"
//! range    := ("[" | "{") bound "TO" bound ("]" | "}")      bound := value | "*"
//! compare  := (">" | ">=" | "<" | "<=") value
//! ```
//!
//! So `a b OR c` is `(a AND b) OR c`, as in SQL and most boolean syntaxes. Inside a field
//! group `field:( ... )` every word, phrase, regex, range and comparison applies to that
//! field.

use crate::ast::{Bound, CompareOp, Filter, TimePoint, TypedValue, Value, VersionAlias};
use crate::error::{QueryError, Span};
use crate::fields::{FieldKind, FieldRef, IdentityField};
use crate::lexer::{Mode, Token, TokenKind, Word};

use super::Parser;
use super::literals::typed_value;

const TERM_EXPECTED: [&str; 5] = ["a word", "a \"phrase\"", "field:value", "(", "*"];

/// Hint for unknown fields in a filter, where `http://x` is read as field `http`.
const COLON_HINT: &str = "; to search the body for text with a colon, quote it";

impl Parser<'_> {
    pub(super) fn parse_filter(&mut self) -> Result<Filter, QueryError> {
        self.parse_or(None)
    }

    fn term_mode(group: Option<&FieldRef>) -> Mode {
        if group.is_some() {
            Mode::GroupTerm
        } else {
            Mode::Term
        }
    }

    fn starts_term(kind: &TokenKind) -> bool {
        matches!(
            kind,
            TokenKind::Word(_)
                | TokenKind::Field(_)
                | TokenKind::Quoted(_)
                | TokenKind::Regex(_)
                | TokenKind::Minus
                | TokenKind::Not
                | TokenKind::LParen
                | TokenKind::Star
                | TokenKind::RangeOpen { .. }
                | TokenKind::Compare(_)
        )
    }

    /// Consumes `operator` and checks a term follows it.
    fn expect_term_after(&mut self, operator: &Token, mode: Mode) -> Result<(), QueryError> {
        self.advance_past(operator);
        let next = self.peek(mode)?;
        if Self::starts_term(&next.kind) {
            return Ok(());
        }
        let after = format!("\"{}\"", &self.input[operator.span.clone()]);
        Err(self.unexpected(&next, &after, &TERM_EXPECTED))
    }

    fn parse_or(&mut self, group: Option<&FieldRef>) -> Result<Filter, QueryError> {
        let mode = Self::term_mode(group);
        let mut operands = vec![self.parse_and(group)?];
        loop {
            let token = self.peek(mode)?;
            if token.kind != TokenKind::Or {
                break;
            }
            self.expect_term_after(&token, mode)?;
            operands.push(self.parse_and(group)?);
        }
        Ok(combine(operands, |operands, span| Filter::Or {
            operands,
            span,
        }))
    }

    fn parse_and(&mut self, group: Option<&FieldRef>) -> Result<Filter, QueryError> {
        let mode = Self::term_mode(group);
        let mut operands = vec![self.parse_unary(group)?];
        loop {
            let token = self.peek(mode)?;
            if token.kind == TokenKind::And {
                self.expect_term_after(&token, mode)?;
            } else if !Self::starts_term(&token.kind) {
                break;
            }
            operands.push(self.parse_unary(group)?);
        }
        Ok(combine(operands, |operands, span| Filter::And {
            operands,
            span,
        }))
    }

    fn parse_unary(&mut self, group: Option<&FieldRef>) -> Result<Filter, QueryError> {
        let mode = Self::term_mode(group);
        let token = self.peek(mode)?;
        if !matches!(token.kind, TokenKind::Not | TokenKind::Minus) {
            return self.parse_primary(group);
        }
        self.expect_term_after(&token, mode)?;
        self.nest(&token.span)?;
        let operand = self.parse_unary(group)?;
        self.unnest();
        let span = token.span.start..operand.span().end;
        Ok(Filter::Not {
            operand: Box::new(operand),
            span,
        })
    }

    fn parse_primary(&mut self, group: Option<&FieldRef>) -> Result<Filter, QueryError> {
        let mode = Self::term_mode(group);
        let token = self.next(mode)?;
        let span = token.span.clone();
        match token.kind {
            TokenKind::LParen => self.parse_parenthesized(&token, group),
            TokenKind::Star => Ok(match group {
                Some(field) => Filter::Exists {
                    field: field.clone(),
                    span,
                },
                None => Filter::All { span },
            }),
            TokenKind::Word(word) => self.word_filter(group, word, span.clone(), span),
            TokenKind::Quoted(text) => quoted_filter(group, text, span.clone(), span),
            TokenKind::Regex(pattern) => regex_filter(group, pattern, span.clone(), span),
            TokenKind::RangeOpen { inclusive } => {
                let field = group_field(group, &span)?;
                self.parse_range(field, span.start, inclusive, &span)
            }
            TokenKind::Compare(op) => {
                let field = group_field(group, &span)?;
                self.parse_compare(field, span.start, op, &token)
            }
            TokenKind::Field(name) => {
                let name_span = span.start..span.end - 1;
                let field = self.resolve_field(&name, name_span, COLON_HINT)?;
                self.parse_field_value(field, span)
            }
            TokenKind::And | TokenKind::Or => Err(QueryError::new(
                span.clone(),
                format!("expected a term before \"{}\"", &self.input[span]),
            )
            .expecting(&TERM_EXPECTED)),
            _ => Err(QueryError::new(
                span,
                format!(
                    "expected a term (a word, a \"phrase\", field:value, \"(\" or \"*\"), found {}",
                    self.describe(&token)
                ),
            )
            .expecting(&TERM_EXPECTED)),
        }
    }

    /// After `(`: the inside, then `)`.
    fn parse_parenthesized(
        &mut self,
        open: &Token,
        group: Option<&FieldRef>,
    ) -> Result<Filter, QueryError> {
        let mode = Self::term_mode(group);
        let first = self.peek(mode)?;
        if first.kind == TokenKind::RParen {
            return Err(QueryError::new(
                open.span.start..first.span.end,
                "empty parentheses: expected a term inside",
            )
            .expecting(&TERM_EXPECTED));
        }
        self.nest(&open.span)?;
        let inner = self.parse_or(group)?;
        self.unnest();
        let close = self.next(mode)?;
        if close.kind != TokenKind::RParen {
            return Err(QueryError::new(
                open.span.clone(),
                format!(
                    "expected \")\" to close this \"(\", found {}",
                    self.describe(&close)
                ),
            )
            .expecting(&[")"]));
        }
        Ok(inner)
    }

    /// After `field:`: the value must follow without a space.
    fn parse_field_value(
        &mut self,
        field: FieldRef,
        field_span: Span,
    ) -> Result<Filter, QueryError> {
        let field_start = field_span.start;
        let field_text = &self.input[field_span];
        let token = self.peek(Mode::Value)?;
        if token.span.start != self.position || token.kind == TokenKind::End {
            let found = if token.kind == TokenKind::End {
                "end of query".to_string()
            } else {
                "a space".to_string()
            };
            return Err(QueryError::new(
                self.position..token.span.start.max(self.position),
                format!("expected a value right after \"{field_text}\", found {found}"),
            )
            .expecting(&["a value"]));
        }
        let value_span = token.span.clone();
        let span = field_start..value_span.end;
        match token.kind {
            TokenKind::LParen => {
                self.advance_past(&token);
                self.parse_parenthesized(&token, Some(&field))
            }
            TokenKind::Word(word) => {
                self.position = value_span.end;
                self.word_filter(Some(&field), word, value_span, span)
            }
            TokenKind::Quoted(text) => {
                self.position = value_span.end;
                quoted_filter(Some(&field), text, value_span, span)
            }
            TokenKind::Regex(pattern) => {
                self.position = value_span.end;
                regex_filter(Some(&field), pattern, value_span, span)
            }
            TokenKind::Star => {
                self.advance_past(&token);
                Ok(Filter::Exists { field, span })
            }
            TokenKind::RangeOpen { inclusive } => {
                self.advance_past(&token);
                self.parse_range(field, field_start, inclusive, &value_span)
            }
            TokenKind::Compare(op) => {
                self.advance_past(&token);
                self.parse_compare(field, field_start, op, &token)
            }
            _ => Err(self.unexpected(
                &token,
                &format!("\"{field_text}\""),
                &["a value", "\"", "[", ">", "("],
            )),
        }
    }

    fn word_filter(
        &self,
        field: Option<&FieldRef>,
        word: Word,
        value_span: Span,
        span: Span,
    ) -> Result<Filter, QueryError> {
        if let Some(pattern) = word.wildcard {
            check_kind(field, FieldKind::allows_pattern_match, "wildcards", &span)?;
            return Ok(Filter::Wildcard {
                field: field.cloned(),
                pattern,
                span,
            });
        }
        if field == Some(&FieldRef::Identity(IdentityField::Version)) && !word.escaped {
            let alias = match word.text.as_str() {
                "latest" => Some(VersionAlias::Latest),
                "previous" => Some(VersionAlias::Previous),
                _ => None,
            };
            if let Some(alias) = alias {
                return Ok(Filter::VersionAlias { alias, span });
            }
        }
        let value = typed_value(field, &word.text, value_span)?;
        Ok(Filter::Term {
            field: field.cloned(),
            value,
            span,
        })
    }

    /// After `[` or `{`: `bound TO bound` and the closing bracket.
    fn parse_range(
        &mut self,
        field: FieldRef,
        start: usize,
        lower_inclusive: bool,
        open_span: &Span,
    ) -> Result<Filter, QueryError> {
        check_kind(Some(&field), FieldKind::allows_range, "ranges", open_span)?;
        let open_text = format!("\"{}\"", &self.input[open_span.clone()]);
        let lower = self.parse_bound(&field, &open_text)?;
        let to = self.next(Mode::Bound)?;
        if to.kind != TokenKind::To {
            return Err(self.unexpected(&to, "the lower bound", &["TO"]));
        }
        let upper = self.parse_bound(&field, "\"TO\"")?;
        let close = self.next(Mode::Bound)?;
        let TokenKind::RangeClose {
            inclusive: upper_inclusive,
        } = close.kind
        else {
            return Err(self.unexpected(&close, "the upper bound", &["]", "}"]));
        };
        let span = start..close.span.end;
        let lower = make_bound(lower, lower_inclusive);
        let upper = make_bound(upper, upper_inclusive);
        check_range_order(&lower, &upper, &span)?;
        Ok(Filter::Range {
            field,
            lower,
            upper,
            span,
        })
    }

    /// A range bound: a value, or `None` for `*`.
    fn parse_bound(&mut self, field: &FieldRef, after: &str) -> Result<Option<Value>, QueryError> {
        let token = self.next(Mode::Bound)?;
        let text = match token.kind {
            TokenKind::Star => return Ok(None),
            TokenKind::Word(word) => word.text,
            TokenKind::Quoted(text) => text,
            _ => return Err(self.unexpected(&token, after, &["a value", "*"])),
        };
        typed_value(Some(field), &text, token.span).map(Some)
    }

    /// After `>`, `>=`, `<`, `<=`: the value, right after the operator.
    fn parse_compare(
        &mut self,
        field: FieldRef,
        start: usize,
        op: CompareOp,
        op_token: &Token,
    ) -> Result<Filter, QueryError> {
        check_kind(
            Some(&field),
            FieldKind::allows_range,
            "comparisons",
            &op_token.span,
        )?;
        let token = self.peek(Mode::Bound)?;
        let value_span = token.span.clone();
        let text = match token.kind {
            TokenKind::Word(word) if token.span.start == self.position => word.text,
            TokenKind::Quoted(text) if token.span.start == self.position => text,
            _ => {
                let after = format!("\"{}\"", op.symbol());
                let mut error = self.unexpected(&token, &after, &["a value"]);
                if token.span.start != self.position && token.kind != TokenKind::End {
                    error.span = self.position..token.span.start;
                    error.message = format!("expected a value right after {after}, found a space");
                }
                return Err(error);
            }
        };
        self.position = value_span.end;
        let value = typed_value(Some(&field), &text, value_span.clone())?;
        Ok(Filter::Compare {
            field,
            op,
            value,
            span: start..value_span.end,
        })
    }
}

fn make_bound(value: Option<Value>, inclusive: bool) -> Bound {
    match value {
        None => Bound::Unbounded,
        Some(value) if inclusive => Bound::Included(value),
        Some(value) => Bound::Excluded(value),
    }
}

/// One operand as is; several as the n-ary node `make` builds, spanning them all.
fn combine(mut operands: Vec<Filter>, make: fn(Vec<Filter>, Span) -> Filter) -> Filter {
    if operands.len() == 1 {
        return operands.remove(0);
    }
    let start = operands.first().map_or(0, |first| first.span().start);
    let end = operands.last().map_or(start, |last| last.span().end);
    make(operands, start..end)
}

/// A quoted value: a phrase on the body and attributes, an exact term elsewhere.
fn quoted_filter(
    field: Option<&FieldRef>,
    text: String,
    value_span: Span,
    span: Span,
) -> Result<Filter, QueryError> {
    let kind = field.map_or(FieldKind::Text, FieldRef::kind);
    if matches!(kind, FieldKind::Text | FieldKind::Json) {
        if text.is_empty() {
            return Err(QueryError::new(
                value_span,
                "empty phrase: put words between the quotes",
            ));
        }
        return Ok(Filter::Phrase {
            field: field.cloned(),
            text,
            span,
        });
    }
    let value = typed_value(field, &text, value_span)?;
    Ok(Filter::Term {
        field: field.cloned(),
        value,
        span,
    })
}

fn regex_filter(
    field: Option<&FieldRef>,
    pattern: String,
    value_span: Span,
    span: Span,
) -> Result<Filter, QueryError> {
    check_kind(field, FieldKind::allows_pattern_match, "regexes", &span)?;
    if let Err(error) = regex_syntax::Parser::new().parse(&pattern) {
        let reason = match &error {
            regex_syntax::Error::Parse(error) => error.kind().to_string(),
            regex_syntax::Error::Translate(error) => error.kind().to_string(),
            other => other.to_string(),
        };
        return Err(QueryError::new(
            value_span,
            format!("invalid regex: {reason}"),
        ));
    }
    Ok(Filter::Regex {
        field: field.cloned(),
        pattern,
        span,
    })
}

/// The field of the enclosing group, for a range or comparison written inside one.
fn group_field(group: Option<&FieldRef>, span: &Span) -> Result<FieldRef, QueryError> {
    group.cloned().ok_or_else(|| {
        // Unreachable through the lexer (brackets and operators are word characters
        // outside groups), kept as an error rather than a panic.
        QueryError::new(
            span.clone(),
            "a range or comparison needs a field: field:[a TO b]",
        )
    })
}

fn check_kind(
    field: Option<&FieldRef>,
    allowed: fn(FieldKind) -> bool,
    what: &str,
    span: &Span,
) -> Result<(), QueryError> {
    let kind = field.map_or(FieldKind::Text, FieldRef::kind);
    if allowed(kind) {
        return Ok(());
    }
    let field_name = field.map_or("body".to_string(), ToString::to_string);
    let works_on: Vec<&str> = [
        FieldKind::Keyword,
        FieldKind::Text,
        FieldKind::Number,
        FieldKind::Time,
    ]
    .into_iter()
    .filter(|kind| allowed(*kind))
    .map(FieldKind::name)
    .collect();
    Err(QueryError::new(
        span.clone(),
        format!(
            "{what} work on {} and attribute fields, and {field_name} is a {kind} field",
            works_on.join(", ")
        ),
    ))
}

/// Rejects ranges that can match nothing because their bounds are out of order.
fn check_range_order(lower: &Bound, upper: &Bound, span: &Span) -> Result<(), QueryError> {
    let (lower_value, lower_inclusive) = match lower {
        Bound::Included(value) => (value, true),
        Bound::Excluded(value) => (value, false),
        Bound::Unbounded => return Ok(()),
    };
    let (upper_value, upper_inclusive) = match upper {
        Bound::Included(value) => (value, true),
        Bound::Excluded(value) => (value, false),
        Bound::Unbounded => return Ok(()),
    };
    let ordering = match (&lower_value.typed, &upper_value.typed) {
        (TypedValue::Integer(low), TypedValue::Integer(high)) => low.partial_cmp(high),
        (
            TypedValue::Integer(_) | TypedValue::Float(_),
            TypedValue::Integer(_) | TypedValue::Float(_),
        ) => as_f64(&lower_value.typed).partial_cmp(&as_f64(&upper_value.typed)),
        (
            TypedValue::Time(TimePoint::Absolute { unix_nanos: low }),
            TypedValue::Time(TimePoint::Absolute { unix_nanos: high }),
        ) => low.partial_cmp(high),
        _ => None,
    };
    let empty = match ordering {
        Some(std::cmp::Ordering::Greater) => true,
        Some(std::cmp::Ordering::Equal) => !(lower_inclusive && upper_inclusive),
        _ => false,
    };
    if empty {
        return Err(QueryError::new(
            span.clone(),
            format!(
                "empty range: nothing lies between {} and {}",
                lower_value.text, upper_value.text
            ),
        ));
    }
    Ok(())
}

fn as_f64(value: &TypedValue) -> f64 {
    match value {
        TypedValue::Integer(integer) => *integer as f64,
        TypedValue::Float(float) => *float,
        _ => f64::NAN,
    }
}
