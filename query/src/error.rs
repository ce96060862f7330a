//! The one error type of the language: where in the query, what went wrong, and what
//! would have been accepted there.
//!
//! Spans are byte offsets into the query text, always on char boundaries, so a caller can
//! slice the input with them; [`QueryError::render`] turns one into the query with a caret
//! line under the offending part, which is what the CLI prints.

use std::fmt::Write as _;
use std::ops::Range;

/// A byte range into the query text.
pub type Span = Range<usize>;

/// A syntax or type error in a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {}: {message}", span.start)]
pub struct QueryError {
    /// The offending bytes of the query (empty at the end of the query when something is
    /// missing there).
    pub span: Span,
    /// Lowercase, no trailing period; usually "expected X, found Y".
    pub message: String,
    /// What would have been accepted at `span.start`, for completion in the UI; empty
    /// when the error is about a value rather than the shape of the query.
    pub expected: Vec<String>,
}

impl QueryError {
    pub fn new(span: Span, message: impl Into<String>) -> QueryError {
        QueryError {
            span,
            message: message.into(),
            expected: Vec::new(),
        }
    }

    pub(crate) fn expecting(mut self, expected: &[&str]) -> QueryError {
        self.expected = expected.iter().map(|item| item.to_string()).collect();
        self
    }

    /// The query line holding the error, a caret line under the span, and the message:
    ///
    /// ```text
    /// level:error | stats count() by |
    ///                                ^
    /// at 31: expected a field name after "by", found "|"
    /// ```
    ///
    /// Columns count chars, not bytes, so the caret lines up under non-ASCII text in a
    /// terminal (wide characters such as CJK may still shift it).
    pub fn render(&self, input: &str) -> String {
        let start = floor_char_boundary(input, self.span.start);
        let end = floor_char_boundary(input, self.span.end.max(start));
        let line_start = input[..start].rfind('\n').map_or(0, |newline| newline + 1);
        let line_end = input[start..]
            .find('\n')
            .map_or(input.len(), |newline| start + newline);
        let line = &input[line_start..line_end];

        let mut rendered = String::new();
        rendered.push_str(line);
        rendered.push('\n');
        // Keep tabs as tabs so the caret lines up however the terminal expands them.
        for c in input[line_start..start].chars() {
            rendered.push(if c == '\t' { '\t' } else { ' ' });
        }
        let underlined_chars = input[start..end.min(line_end)].chars().count().max(1);
        rendered.push_str(&"^".repeat(underlined_chars));
        rendered.push('\n');
        let _ = write!(rendered, "{self}");
        rendered
    }
}

/// The largest char boundary at or below `index`, clamped to the input; spans built by
/// the parser are on boundaries already, this keeps `render` safe for any span.
fn floor_char_boundary(input: &str, index: usize) -> usize {
    let mut index = index.min(input.len());
    while !input.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_the_caret_under_the_span() {
        let error = QueryError::new(4..7, "unknown field \"foo\"");
        let rendered = error.render("abc foo:1");
        assert_eq!(rendered, "abc foo:1\n    ^^^\nat 4: unknown field \"foo\"");
    }

    #[test]
    fn render_counts_chars_not_bytes_and_survives_bad_spans() {
        let error = QueryError::new(3..4, "x");
        // "é" is two bytes: byte 3 is the start of "x" after "é" and a space.
        assert!(error.render("é x").starts_with("é x\n  ^\n"));
        let past_the_end = QueryError::new(40..50, "x");
        assert!(past_the_end.render("short").contains("     ^"));
        let inside_a_char = QueryError::new(1..1, "x");
        assert!(inside_a_char.render("é").starts_with("é\n^"));
    }

    #[test]
    fn render_shows_only_the_line_with_the_error() {
        let input = "service:web\n| stats count() by";
        let error = QueryError::new(input.len()..input.len(), "expected a field name");
        assert_eq!(
            error.render(input).lines().take(2).collect::<Vec<_>>(),
            ["| stats count() by", "                  ^"]
        );
    }
}
