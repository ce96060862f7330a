//! A recursive-descent parser over the lexer's on-demand tokens.
//!
//! Hand-written rather than generated so that every error can say, in the user's terms,
//! what was expected at which byte and what was found instead, and so that type checks
//! (a number for `severity`, a field for `sum`, a positive `span=`) happen where the
//! offending token is still at hand. Nesting is capped at [`MAX_NESTING`] so no input can
//! exhaust the stack.

mod filter;
mod literals;
mod stages;

use crate::ast::Query;
use crate::error::{QueryError, Span};
use crate::fields::{ATTRIBUTE_PREFIX, FIELD_NAMES, FieldRef, suggest_field_name};
use crate::lexer::{self, Mode, Token, TokenKind};

pub(crate) use literals::{DURATION_UNITS, quote};

/// How deep parentheses, field groups and `NOT`s may nest. Far beyond any real query;
/// it bounds the recursion of the parser, of `Display` and of dropping the tree.
pub const MAX_NESTING: usize = 64;

/// Parses a query: `FILTER [| STAGE]...`. Never panics; every problem is a
/// [`QueryError`] pointing into `input`.
pub fn parse(input: &str) -> Result<Query, QueryError> {
    Parser {
        input,
        position: 0,
        nesting: 0,
    }
    .parse_query()
}

pub(crate) struct Parser<'a> {
    input: &'a str,
    /// Byte offset of the next unread char.
    position: usize,
    nesting: usize,
}

impl<'a> Parser<'a> {
    fn parse_query(mut self) -> Result<Query, QueryError> {
        let first = self.peek(Mode::Term)?;
        let filter = match first.kind {
            TokenKind::End | TokenKind::Pipe => crate::ast::Filter::All {
                span: first.span.start..first.span.start,
            },
            _ => self.parse_filter()?,
        };
        let after_filter = self.peek(Mode::Term)?;
        match after_filter.kind {
            TokenKind::End | TokenKind::Pipe => {}
            TokenKind::RParen => {
                return Err(QueryError::new(
                    after_filter.span,
                    "unmatched \")\": no \"(\" before it is still open",
                ));
            }
            _ => {
                return Err(self.unexpected(&after_filter, "the filter", &["|", "end of query"]));
            }
        }
        let stages = self.parse_stages()?;
        let start = lexer::skip_whitespace(self.input, 0);
        let end = self.input.trim_end().len().max(start);
        Ok(Query {
            filter,
            stages,
            span: start..end,
        })
    }

    fn peek(&self, mode: Mode) -> Result<Token, QueryError> {
        lexer::next_token(self.input, self.position, mode)
    }

    fn advance_past(&mut self, token: &Token) {
        debug_assert!(
            token.span.end >= self.position,
            "the parser never moves back"
        );
        self.position = token.span.end;
    }

    fn next(&mut self, mode: Mode) -> Result<Token, QueryError> {
        let token = self.peek(mode)?;
        self.advance_past(&token);
        Ok(token)
    }

    /// Enters one level of nesting at `span` (a parenthesis, a group, a `NOT`).
    fn nest(&mut self, span: &Span) -> Result<(), QueryError> {
        if self.nesting >= MAX_NESTING {
            return Err(QueryError::new(
                span.clone(),
                format!("the query nests deeper than {MAX_NESTING} levels"),
            ));
        }
        self.nesting += 1;
        Ok(())
    }

    fn unnest(&mut self) {
        debug_assert!(self.nesting > 0);
        self.nesting -= 1;
    }

    /// How a token reads in a message: its text in quotes, or "end of query".
    fn describe(&self, token: &Token) -> String {
        match token.kind {
            TokenKind::End => "end of query".to_string(),
            _ => quote(&self.input[token.span.clone()]),
        }
    }

    /// "expected X after Y, found Z".
    fn unexpected(&self, found: &Token, after: &str, expected: &[&str]) -> QueryError {
        let expected_text = match expected {
            [] => "more".to_string(),
            [only] => quote_expected(only),
            [init @ .., last] => format!(
                "{} or {}",
                init.iter()
                    .map(|item| quote_expected(item))
                    .collect::<Vec<_>>()
                    .join(", "),
                quote_expected(last)
            ),
        };
        QueryError::new(
            found.span.clone(),
            format!(
                "expected {expected_text} after {after}, found {}",
                self.describe(found)
            ),
        )
        .expecting(expected)
    }

    /// Resolves a field name or explains why it is not one; `hint` is added to the
    /// unknown-field message.
    fn resolve_field(&self, name: &str, span: Span, hint: &str) -> Result<FieldRef, QueryError> {
        if let Some(field) = FieldRef::from_name(name) {
            return Ok(field);
        }
        if name == "attrs" || name.starts_with(ATTRIBUTE_PREFIX) {
            return Err(QueryError::new(
                span,
                format!(
                    "attributes are named attrs.<key>, with a key of non-empty dot-separated \
                     parts (attrs.http.status), found {}",
                    quote(name)
                ),
            )
            .expecting(&["attrs.<key>"]));
        }
        let suggestion = suggest_field_name(name)
            .map(|known| format!(" (did you mean {}?)", quote(&known)))
            .unwrap_or_default();
        let mut expected: Vec<&str> = FIELD_NAMES.to_vec();
        expected.push("attrs.<key>");
        Err(QueryError::new(
            span,
            format!(
                "unknown field {}{suggestion}; known fields are {}, attrs.<key>{hint}",
                quote(name),
                FIELD_NAMES.join(", ")
            ),
        )
        .expecting(&expected))
    }
}

/// Keeps descriptive expectations ("a field name") bare and quotes literal tokens.
fn quote_expected(item: &str) -> String {
    let descriptive = item.starts_with("a ") || item.starts_with("an ") || item == "end of query";
    if descriptive {
        item.to_string()
    } else {
        quote(item)
    }
}
