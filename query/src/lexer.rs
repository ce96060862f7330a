//! Splits query text into tokens, one at a time, in the mode the parser asks for.
//!
//! The language is context-sensitive at the character level, as Lucene's is: after
//! `field:` a value may hold colons (`timestamp:>2026-11-26T10:00:00Z`) and may open a
//! range or a comparison, inside `[a TO b]` a word ends at the bracket, and after the
//! first `|` the words are stage keywords and field names. So instead of a token stream
//! fixed up front, the parser calls [`next_token`] with a [`Mode`] at its current byte
//! offset; lexing is a pure function of (input, offset, mode), which keeps peeking cheap
//! and the lexer testable on its own.
//!
//! Every token but [`TokenKind::End`] consumes at least one byte, and every span starts
//! and ends on a char boundary.

use crate::ast::{CompareOp, WildcardPart, WildcardPattern};
use crate::error::{QueryError, Span};
use crate::fields::{is_field_name_char, is_field_name_start};

/// What the parser expects at the current offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The start of a filter term: `field:` splits off, `AND`/`OR`/`NOT` are operators,
    /// a leading `-` excludes.
    Term,
    /// A term inside a field group `field:( ... )`: every word is a value of the group's
    /// field (colons included), and ranges and comparisons may open.
    GroupTerm,
    /// Right after `field:`: one value, a range, a comparison or a group.
    Value,
    /// Inside `[ ... ]` or after a comparison operator: a bound, `TO`, `*` or a closing
    /// bracket.
    Bound,
    /// After the first `|`: keywords, field names, numbers, durations and punctuation.
    Stage,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    End,
    LParen,
    RParen,
    Pipe,
    Comma,
    Equals,
    /// A `-` that starts a term: exclusion.
    Minus,
    And,
    Or,
    Not,
    To,
    /// A lone unescaped `*`.
    Star,
    /// `name:` with the name in field-name characters; the span covers the colon.
    Field(String),
    Word(Word),
    /// `"..."`, with escapes read.
    Quoted(String),
    /// `/.../`: the text between the slashes, `\/` read as `/`.
    Regex(String),
    RangeOpen {
        inclusive: bool,
    },
    RangeClose {
        inclusive: bool,
    },
    Compare(CompareOp),
}

/// A bare word.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Word {
    /// The word with backslash escapes read.
    pub text: String,
    /// Whether any character was escaped: an escaped word is never a keyword, a field
    /// name or an alias (`\AND`, `version:\latest`).
    pub escaped: bool,
    /// Set when the word has an unescaped `*` or `?` (in modes that read wildcards).
    pub wildcard: Option<WildcardPattern>,
}

/// The token at `offset` (after whitespace) in `mode`.
pub(crate) fn next_token(input: &str, offset: usize, mode: Mode) -> Result<Token, QueryError> {
    let start = skip_whitespace(input, offset);
    let Some(first) = input[start..].chars().next() else {
        return Ok(Token {
            kind: TokenKind::End,
            span: start..start,
        });
    };
    if mode == Mode::Stage {
        return lex_stage_token(input, start, first);
    }
    let single = |kind| {
        Ok(Token {
            kind,
            span: start..start + first.len_utf8(),
        })
    };
    let next = input[start + first.len_utf8()..].chars().next();
    match first {
        '(' => single(TokenKind::LParen),
        ')' => single(TokenKind::RParen),
        '|' => single(TokenKind::Pipe),
        '"' => lex_quoted(input, start),
        '/' if mode != Mode::Bound => lex_regex(input, start),
        '-' if matches!(mode, Mode::Term | Mode::GroupTerm)
            && next.is_some_and(|c| !c.is_whitespace() && c != ')' && c != '|') =>
        {
            single(TokenKind::Minus)
        }
        '[' | '{' if matches!(mode, Mode::GroupTerm | Mode::Value) => {
            single(TokenKind::RangeOpen {
                inclusive: first == '[',
            })
        }
        ']' | '}' if mode == Mode::Bound => single(TokenKind::RangeClose {
            inclusive: first == ']',
        }),
        '>' | '<' if matches!(mode, Mode::GroupTerm | Mode::Value) => {
            let (op, length) = match (first, next) {
                ('>', Some('=')) => (CompareOp::GreaterOrEqual, 2),
                ('>', _) => (CompareOp::Greater, 1),
                ('<', Some('=')) => (CompareOp::LessOrEqual, 2),
                _ => (CompareOp::Less, 1),
            };
            Ok(Token {
                kind: TokenKind::Compare(op),
                span: start..start + length,
            })
        }
        _ => lex_word(input, start, mode),
    }
}

/// The offset of the first non-whitespace char at or after `offset`.
pub(crate) fn skip_whitespace(input: &str, offset: usize) -> usize {
    let rest = &input[offset..];
    offset + (rest.len() - rest.trim_start().len())
}

fn ends_word(c: char, mode: Mode) -> bool {
    c.is_whitespace()
        || matches!(c, '(' | ')' | '|' | '"')
        || (mode == Mode::Bound && matches!(c, '[' | ']' | '{' | '}'))
}

pub(crate) fn is_field_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(is_field_name_start) && chars.all(is_field_name_char)
}

fn lex_word(input: &str, start: usize, mode: Mode) -> Result<Token, QueryError> {
    let reads_wildcards = matches!(mode, Mode::Term | Mode::GroupTerm | Mode::Value);
    let mut text = String::new();
    let mut escaped = false;
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut has_wildcard = false;
    let mut end = start;
    let mut chars = input[start..].char_indices();
    while let Some((relative, c)) = chars.next() {
        let at = start + relative;
        if c == '\\' {
            let Some((_, escaped_char)) = chars.next() else {
                return Err(QueryError::new(
                    at..at + 1,
                    "expected a character after the escaping \"\\\", found end of query",
                )
                .expecting(&["a character to escape"]));
            };
            escaped = true;
            text.push(escaped_char);
            literal.push(escaped_char);
            end = at + 1 + escaped_char.len_utf8();
            continue;
        }
        if ends_word(c, mode) {
            break;
        }
        if c == ':' && mode == Mode::Term && !escaped && is_field_name(&input[start..at]) {
            return Ok(Token {
                kind: TokenKind::Field(input[start..at].to_string()),
                span: start..at + 1,
            });
        }
        if reads_wildcards && (c == '*' || c == '?') {
            has_wildcard = true;
            if !literal.is_empty() {
                parts.push(WildcardPart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(if c == '*' {
                WildcardPart::AnyChars
            } else {
                WildcardPart::AnyChar
            });
        } else {
            literal.push(c);
        }
        text.push(c);
        end = at + c.len_utf8();
    }
    if end == start {
        // Only a char this mode does not accept anywhere (a bracket inside a range).
        let unexpected = input[start..].chars().next().unwrap_or(' ');
        return Err(QueryError::new(
            start..start + unexpected.len_utf8(),
            format!("unexpected {}", describe_char(unexpected)),
        ));
    }
    if !literal.is_empty() {
        parts.push(WildcardPart::Literal(literal));
    }
    let span = start..end;
    if !escaped {
        let keyword = match (mode, text.as_str()) {
            (Mode::Term | Mode::GroupTerm, "AND") => Some(TokenKind::And),
            (Mode::Term | Mode::GroupTerm, "OR") => Some(TokenKind::Or),
            (Mode::Term | Mode::GroupTerm, "NOT") => Some(TokenKind::Not),
            (Mode::Bound, "TO") => Some(TokenKind::To),
            (_, "*") => Some(TokenKind::Star),
            _ => None,
        };
        if let Some(kind) = keyword {
            return Ok(Token { kind, span });
        }
    }
    let wildcard = has_wildcard.then_some(WildcardPattern { parts });
    Ok(Token {
        kind: TokenKind::Word(Word {
            text,
            escaped,
            wildcard,
        }),
        span,
    })
}

fn lex_quoted(input: &str, start: usize) -> Result<Token, QueryError> {
    let mut text = String::new();
    let body_start = start + 1;
    let mut chars = input[body_start..].char_indices();
    while let Some((relative, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped_char)) => text.push(escaped_char),
                None => break,
            },
            '"' => {
                return Ok(Token {
                    kind: TokenKind::Quoted(text),
                    span: start..body_start + relative + 1,
                });
            }
            c => text.push(c),
        }
    }
    Err(QueryError::new(
        start..start + 1,
        "unclosed quote: expected a closing \" before the end of the query",
    )
    .expecting(&["\""]))
}

fn lex_regex(input: &str, start: usize) -> Result<Token, QueryError> {
    let mut pattern = String::new();
    let body_start = start + 1;
    let mut chars = input[body_start..].char_indices();
    while let Some((relative, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => pattern.push('/'),
                Some((_, escaped_char)) => {
                    pattern.push('\\');
                    pattern.push(escaped_char);
                }
                None => break,
            },
            '/' => {
                let end = body_start + relative + 1;
                if pattern.is_empty() {
                    return Err(QueryError::new(
                        start..end,
                        "empty regex: write a pattern between the slashes, or * for everything",
                    ));
                }
                if let Some(after) = input[end..].chars().next()
                    && !(after.is_whitespace() || after == ')' || after == '|')
                {
                    return Err(QueryError::new(
                        end..end + after.len_utf8(),
                        format!(
                            "expected a space, \")\" or \"|\" after the regex, found {}; \
                             to search for text with slashes (a path), quote it",
                            describe_char(after)
                        ),
                    )
                    .expecting(&["a space", ")", "|"]));
                }
                return Ok(Token {
                    kind: TokenKind::Regex(pattern),
                    span: start..end,
                });
            }
            c => pattern.push(c),
        }
    }
    Err(QueryError::new(
        start..start + 1,
        "unclosed regex: expected a closing / before the end of the query; \
         to search for text with slashes (a path), quote it",
    )
    .expecting(&["/"]))
}

fn lex_stage_token(input: &str, start: usize, first: char) -> Result<Token, QueryError> {
    let single = |kind| {
        Ok(Token {
            kind,
            span: start..start + first.len_utf8(),
        })
    };
    match first {
        '(' => single(TokenKind::LParen),
        ')' => single(TokenKind::RParen),
        ',' => single(TokenKind::Comma),
        '=' => single(TokenKind::Equals),
        '|' => single(TokenKind::Pipe),
        '*' => single(TokenKind::Star),
        c if is_field_name_char(c) => {
            let rest = &input[start..];
            let length = rest
                .find(|c: char| !is_field_name_char(c))
                .unwrap_or(rest.len());
            Ok(Token {
                kind: TokenKind::Word(Word {
                    text: rest[..length].to_string(),
                    escaped: false,
                    wildcard: None,
                }),
                span: start..start + length,
            })
        }
        other => Err(QueryError::new(
            start..start + other.len_utf8(),
            format!(
                "unexpected {} in a pipe stage; stages are made of names, numbers, \
                 durations, \"(\", \")\", \",\" and \"=\"",
                describe_char(other)
            ),
        )),
    }
}

/// `"x"` for a printable char, its escape for others, for messages.
pub(crate) fn describe_char(c: char) -> String {
    match c {
        '"' => "'\"'".to_string(),
        c if c.is_control() || c.is_whitespace() => format!("{:?}", c),
        c => format!("\"{c}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str, mode: Mode) -> Vec<TokenKind> {
        let mut offset = 0;
        let mut kinds = Vec::new();
        loop {
            let token = next_token(input, offset, mode).expect(input);
            if token.kind == TokenKind::End {
                return kinds;
            }
            offset = token.span.end;
            kinds.push(token.kind);
        }
    }

    fn word(text: &str) -> TokenKind {
        TokenKind::Word(Word {
            text: text.to_string(),
            escaped: false,
            wildcard: None,
        })
    }

    #[test]
    fn field_name_splits_off_only_at_term_start() {
        assert_eq!(
            kinds("service:web", Mode::Term),
            [TokenKind::Field("service".into()), word("web")]
        );
        // In a value, colons are text.
        assert_eq!(kinds("a:b", Mode::Value), [word("a:b")]);
        // Times are not fields: a field name starts with a letter.
        assert_eq!(kinds("10:00", Mode::Term), [word("10:00")]);
    }

    #[test]
    fn minus_excludes_only_before_a_term() {
        assert_eq!(kinds("-web", Mode::Term), [TokenKind::Minus, word("web")]);
        assert_eq!(kinds("- web", Mode::Term), [word("-"), word("web")]);
        assert_eq!(kinds("a-b", Mode::Term), [word("a-b")]);
        assert_eq!(kinds("-5", Mode::Value), [word("-5")]);
    }

    #[test]
    fn escaped_words_are_never_keywords() {
        assert_eq!(kinds("AND", Mode::Term), [TokenKind::And]);
        let escaped = kinds(r"\AND", Mode::Term);
        assert!(
            matches!(&escaped[..], [TokenKind::Word(Word { text, escaped: true, .. })] if text == "AND")
        );
    }

    #[test]
    fn range_words_end_at_brackets() {
        assert_eq!(
            kinds("9 TO 17]", Mode::Bound),
            [
                word("9"),
                TokenKind::To,
                word("17"),
                TokenKind::RangeClose { inclusive: true }
            ]
        );
    }

    #[test]
    fn regex_reads_escaped_slashes() {
        assert_eq!(
            kinds(r"/a\/b\d/", Mode::Term),
            [TokenKind::Regex(r"a/b\d".into())]
        );
    }

    #[test]
    fn dangling_backslash_is_an_error_not_a_panic() {
        let error = next_token("ab\\", 0, Mode::Term).unwrap_err();
        assert_eq!(error.span, 2..3);
    }
}
