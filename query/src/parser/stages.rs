//! The pipe stages:
//!
//! ```text
//! stage       := stats | timechart | top | fields | sort | limit | patterns
//! stats       := "stats" aggregation ("," aggregation)* ["by" field ("," field)*]
//! timechart   := "timechart" "span" "=" duration aggregation ("," aggregation)* ["by" field]
//! top         := "top" N field
//! fields      := "fields" column ("," column)*
//! sort        := "sort" ["by"] column ["asc" | "desc"] ("," column ["asc" | "desc"])*
//! limit       := "limit" N
//! patterns    := "patterns" ["unique"] ["by" field]     (unique needs by)
//! aggregation := function "(" [field | "*"] ")" ["as" name]
//! column      := field | output name | function "(" [field] ")"
//! ```
//!
//! Keywords and function names are case-insensitive; field names are not. The parser
//! tracks the [`Shape`] of what each stage produces so that a column named by `fields`
//! or `sort` is checked against what really exists at that point.

use crate::ast::{
    AggregateFunction, Aggregation, Column, SortKey, SortOrder, Spanned, Stage, default_output_name,
};
use crate::error::QueryError;
use crate::fields::{FieldKind, FieldRef, suggest_from};
use crate::lexer::{Mode, Token, TokenKind};

use super::Parser;
use super::literals::{DURATION_FORMS, parse_duration, quote};

const STAGE_KEYWORDS: [&str; 7] = [
    "stats",
    "timechart",
    "top",
    "fields",
    "sort",
    "limit",
    "patterns",
];

/// Words that cannot name an aggregation's output, because they would read as syntax.
const RESERVED_NAMES: [&str; 4] = ["by", "as", "asc", "desc"];

/// What the stages so far produce.
enum Shape {
    /// Log lines: every field, or only those a `fields` stage kept.
    Lines { kept: Option<Vec<FieldRef>> },
    /// Rows made by an aggregation (`stats`, `top`, `patterns`), possibly narrowed by
    /// `fields`.
    Table {
        made_by: &'static str,
        columns: Vec<Column>,
    },
    /// A `timechart` series: nothing may follow.
    Series,
}

impl Parser<'_> {
    pub(super) fn parse_stages(&mut self) -> Result<Vec<Stage>, QueryError> {
        let mut stages: Vec<Stage> = Vec::new();
        let mut shape = Shape::Lines { kept: None };
        loop {
            let token = self.peek(Mode::Stage)?;
            match token.kind {
                TokenKind::End => return Ok(stages),
                TokenKind::Pipe => self.advance_past(&token),
                _ => {
                    let last = stages.last();
                    let after = last.map_or("the filter".to_string(), |stage| {
                        format!("the {} stage", stage.keyword())
                    });
                    let mut expected: Vec<&str> = last.map_or(&[][..], continuations).to_vec();
                    expected.extend(["|", "end of query"]);
                    return Err(self.unexpected(&token, &after, &expected));
                }
            }
            let stage = self.parse_stage(&mut shape, stages.is_empty())?;
            stages.push(stage);
        }
    }

    fn parse_stage(&mut self, shape: &mut Shape, is_first: bool) -> Result<Stage, QueryError> {
        let keyword_token = self.next(Mode::Stage)?;
        let TokenKind::Word(word) = &keyword_token.kind else {
            let mut error = self.unexpected(&keyword_token, "\"|\"", &["a stage"]);
            error
                .message
                .push_str(&format!("; stages are {}", STAGE_KEYWORDS.join(", ")));
            error.expected = STAGE_KEYWORDS.iter().map(|s| s.to_string()).collect();
            return Err(error);
        };
        let keyword = word.text.to_ascii_lowercase();
        let Some(keyword) = STAGE_KEYWORDS.iter().find(|known| **known == keyword) else {
            let suggestion = suggest_from(&word.text, STAGE_KEYWORDS.iter().copied())
                .map(|known| format!(" (did you mean {}?)", quote(&known)))
                .unwrap_or_default();
            return Err(QueryError::new(
                keyword_token.span.clone(),
                format!(
                    "unknown stage {}{suggestion}; stages are {}",
                    quote(&word.text),
                    STAGE_KEYWORDS.join(", ")
                ),
            )
            .expecting(&STAGE_KEYWORDS));
        };
        let start = keyword_token.span.start;
        if let Shape::Series = shape {
            return Err(QueryError::new(
                keyword_token.span.clone(),
                format!("nothing can follow timechart, found a {keyword} stage"),
            ));
        }
        let aggregates = matches!(*keyword, "stats" | "timechart" | "top" | "patterns");
        if aggregates && !is_first {
            let message = match shape {
                Shape::Table { made_by, .. } => format!(
                    "a query has one aggregating stage (stats, timechart, top or patterns) \
                     and this one already has {made_by}"
                ),
                _ => format!(
                    "{keyword} must come right after the filter: it aggregates the \
                     matching lines"
                ),
            };
            return Err(QueryError::new(keyword_token.span.clone(), message));
        }
        match *keyword {
            "stats" => self.parse_stats(start, shape),
            "timechart" => self.parse_timechart(start, shape),
            "top" => self.parse_top(start, shape),
            "fields" => self.parse_fields(start, shape),
            "sort" => self.parse_sort(start, shape),
            "limit" => self.parse_limit(start),
            _ => self.parse_patterns(start, &keyword_token, shape),
        }
    }

    fn parse_stats(&mut self, start: usize, shape: &mut Shape) -> Result<Stage, QueryError> {
        let aggregations = self.parse_aggregations("\"stats\"")?;
        let mut end = aggregations.last().map_or(start, |last| last.span.end);
        let mut by = Vec::new();
        if let Some(by_token) = self.peek_keyword("by")? {
            self.advance_past(&by_token);
            let mut after = "\"by\"";
            loop {
                let field = self.parse_group_field(after)?;
                if by
                    .iter()
                    .any(|known: &Spanned<FieldRef>| known.node == field.node)
                {
                    return Err(QueryError::new(
                        field.span,
                        format!(
                            "{} is already a group-by field",
                            quote(&field.node.to_string())
                        ),
                    ));
                }
                end = field.span.end;
                by.push(field);
                let Some(comma) = self.peek_comma()? else {
                    break;
                };
                self.advance_past(&comma);
                after = "\",\"";
            }
        }
        let mut columns: Vec<Column> = by
            .iter()
            .map(|field| Column::Field(field.node.clone()))
            .collect();
        for aggregation in &aggregations {
            let name = aggregation.output_name();
            if columns.iter().any(|column| column.name() == name) {
                let span = aggregation
                    .alias
                    .as_ref()
                    .map_or(aggregation.span.clone(), |alias| alias.span.clone());
                return Err(QueryError::new(
                    span,
                    format!(
                        "two columns are named {}: name one with \"as\"",
                        quote(&name)
                    ),
                ));
            }
            columns.push(Column::Output(name));
        }
        *shape = Shape::Table {
            made_by: "stats",
            columns,
        };
        Ok(Stage::Stats {
            aggregations,
            by,
            span: start..end,
        })
    }

    fn parse_timechart(&mut self, start: usize, shape: &mut Shape) -> Result<Stage, QueryError> {
        let span_keyword = self.next(Mode::Stage)?;
        let is_span = matches!(&span_keyword.kind, TokenKind::Word(word) if word.text.eq_ignore_ascii_case("span"));
        if !is_span {
            return Err(QueryError::new(
                span_keyword.span.clone(),
                format!(
                    "timechart needs span=<duration> first, as in \"timechart span=1m count()\", found {}",
                    self.describe(&span_keyword)
                ),
            )
            .expecting(&["span="]));
        }
        let equals = self.next(Mode::Stage)?;
        if equals.kind != TokenKind::Equals {
            return Err(self.unexpected(&equals, "\"span\"", &["="]));
        }
        let duration_token = self.next(Mode::Stage)?;
        let bucket = match &duration_token.kind {
            TokenKind::Word(word) => parse_duration(&word.text),
            _ => None,
        };
        let Some(bucket) = bucket else {
            return Err(QueryError::new(
                duration_token.span.clone(),
                format!(
                    "span= needs a positive duration, {DURATION_FORMS}; found {}",
                    self.describe(&duration_token)
                ),
            )
            .expecting(&["a duration"]));
        };
        let aggregations = self.parse_aggregations("\"span=\"")?;
        let mut end = aggregations.last().map_or(start, |last| last.span.end);
        let mut by = None;
        if let Some(by_token) = self.peek_keyword("by")? {
            self.advance_past(&by_token);
            let field = self.parse_group_field("\"by\"")?;
            end = field.span.end;
            if let Some(comma) = self.peek_comma()? {
                return Err(QueryError::new(
                    comma.span,
                    "timechart splits series by one field; use stats to group by several",
                ));
            }
            by = Some(field);
        }
        *shape = Shape::Series;
        Ok(Stage::Timechart {
            bucket,
            aggregations,
            by,
            span: start..end,
        })
    }

    fn parse_top(&mut self, start: usize, shape: &mut Shape) -> Result<Stage, QueryError> {
        let n = self.parse_positive_count(
            "top needs a count of at least 1 before the field, as in \"top 10 version\"",
        )?;
        let field = self.parse_group_field(&format!("\"top {n}\""))?;
        *shape = Shape::Table {
            made_by: "top",
            columns: vec![
                Column::Field(field.node.clone()),
                Column::Output("count".to_string()),
            ],
        };
        Ok(Stage::Top {
            n,
            span: start..field.span.end,
            field,
        })
    }

    fn parse_fields(&mut self, start: usize, shape: &mut Shape) -> Result<Stage, QueryError> {
        let mut columns: Vec<Spanned<Column>> = Vec::new();
        let mut after = "\"fields\"";
        loop {
            let column = self.parse_column(shape, after)?;
            if columns.iter().any(|known| known.node == column.node) {
                return Err(QueryError::new(
                    column.span,
                    format!("{} is listed twice", quote(&column.node.name())),
                ));
            }
            columns.push(column);
            let Some(comma) = self.peek_comma()? else {
                break;
            };
            self.advance_past(&comma);
            after = "\",\"";
        }
        let end = columns.last().map_or(start, |last| last.span.end);
        let kept: Vec<Column> = columns.iter().map(|column| column.node.clone()).collect();
        match shape {
            Shape::Table { columns, .. } => *columns = kept,
            _ => {
                let fields = kept
                    .into_iter()
                    .filter_map(|column| match column {
                        Column::Field(field) => Some(field),
                        Column::Output(_) => None,
                    })
                    .collect();
                *shape = Shape::Lines { kept: Some(fields) };
            }
        }
        Ok(Stage::Fields {
            columns,
            span: start..end,
        })
    }

    fn parse_sort(&mut self, start: usize, shape: &Shape) -> Result<Stage, QueryError> {
        let mut after = "\"sort\"";
        if let Some(by_token) = self.peek_keyword("by")? {
            self.advance_past(&by_token);
            after = "\"sort by\"";
        }
        let mut keys = Vec::new();
        loop {
            let column = self.parse_column(shape, after)?;
            if let Column::Field(field) = &column.node
                && !field.kind().allows_sorting()
            {
                return Err(QueryError::new(
                    column.span,
                    format!("cannot sort by {field}: it is full text"),
                ));
            }
            let mut order = SortOrder::Ascending;
            let mut end = column.span.end;
            for (keyword, keyword_order) in [
                ("asc", SortOrder::Ascending),
                ("desc", SortOrder::Descending),
            ] {
                if let Some(order_token) = self.peek_keyword(keyword)? {
                    self.advance_past(&order_token);
                    order = keyword_order;
                    end = order_token.span.end;
                }
            }
            keys.push(SortKey {
                column: column.node,
                order,
                span: column.span.start..end,
            });
            let Some(comma) = self.peek_comma()? else {
                break;
            };
            self.advance_past(&comma);
            after = "\",\"";
        }
        let end = keys.last().map_or(start, |last| last.span.end);
        Ok(Stage::Sort {
            keys,
            span: start..end,
        })
    }

    fn parse_limit(&mut self, start: usize) -> Result<Stage, QueryError> {
        let n = self
            .parse_positive_count("limit needs a whole number of at least 1, as in \"limit 20\"")?;
        Ok(Stage::Limit {
            n,
            span: start..self.position,
        })
    }

    fn parse_patterns(
        &mut self,
        start: usize,
        keyword_token: &Token,
        shape: &mut Shape,
    ) -> Result<Stage, QueryError> {
        let mut by = None;
        let mut end = keyword_token.span.end;
        let unique = self.peek_keyword("unique")?;
        if let Some(unique_token) = &unique {
            self.advance_past(unique_token);
            end = unique_token.span.end;
        }
        if let Some(by_token) = self.peek_keyword("by")? {
            self.advance_past(&by_token);
            let field = self.parse_group_field("\"by\"")?;
            end = field.span.end;
            by = Some(field);
        }
        if let Some(unique_token) = &unique
            && by.is_none()
        {
            let after = self.peek(Mode::Stage)?;
            let mut error = self.unexpected(&after, "\"unique\"", &["by"]);
            error.message.push_str(&format!(
                "; `patterns unique` (at {}) keeps the patterns seen under only one value of a field",
                unique_token.span.start
            ));
            return Err(error);
        }
        let mut columns: Vec<Column> = by
            .iter()
            .map(|field| Column::Field(field.node.clone()))
            .collect();
        columns
            .extend(["pattern", "count", "example"].map(|name| Column::Output(name.to_string())));
        *shape = Shape::Table {
            made_by: "patterns",
            columns,
        };
        Ok(Stage::Patterns {
            by,
            unique: unique.is_some(),
            span: start..end,
        })
    }

    /// `fn(field) [as name]` separated by commas; at least one.
    fn parse_aggregations(&mut self, after: &str) -> Result<Vec<Aggregation>, QueryError> {
        let mut aggregations = vec![self.parse_aggregation(after)?];
        while let Some(comma) = self.peek_comma()? {
            self.advance_past(&comma);
            aggregations.push(self.parse_aggregation("\",\"")?);
        }
        Ok(aggregations)
    }

    fn parse_aggregation(&mut self, after: &str) -> Result<Aggregation, QueryError> {
        let function_token = self.next(Mode::Stage)?;
        let TokenKind::Word(word) = &function_token.kind else {
            return Err(self.unexpected(
                &function_token,
                after,
                &["an aggregation such as count()"],
            ));
        };
        let function_names = AggregateFunction::ALL.map(AggregateFunction::name);
        let Some(function) = AggregateFunction::from_name(&word.text) else {
            let suggestion = suggest_from(&word.text, function_names.iter().copied())
                .map(|known| format!(" (did you mean {}?)", quote(&known)))
                .unwrap_or_default();
            return Err(QueryError::new(
                function_token.span.clone(),
                format!(
                    "unknown function {}{suggestion}; functions are {}",
                    quote(&word.text),
                    function_names.join(", ")
                ),
            )
            .expecting(&function_names));
        };
        let function_text = format!("\"{}\"", function.name());
        let open = self.next(Mode::Stage)?;
        if open.kind != TokenKind::LParen {
            return Err(self.unexpected(&open, &function_text, &["("]));
        }
        let call_text = format!("\"{}(\"", function.name());
        let argument = self.next(Mode::Stage)?;
        let (field, close) = match argument.kind {
            TokenKind::RParen => (None, argument),
            TokenKind::Star if !function.requires_field() => {
                let close = self.expect_close_paren(&call_text)?;
                (None, close)
            }
            TokenKind::Word(ref word) => {
                let field = self.resolve_field(&word.text, argument.span.clone(), "")?;
                let close = self.expect_close_paren(&format!("the field of {call_text}"))?;
                (Some(Spanned::new(field, argument.span.clone())), close)
            }
            _ => return Err(self.unexpected(&argument, &call_text, &["a field name", ")"])),
        };
        let call_span = function_token.span.start..close.span.end;
        match &field {
            None if function.requires_field() => {
                return Err(QueryError::new(
                    call_span,
                    format!(
                        "{} needs a field, as in {}(value)",
                        function.name(),
                        function.name()
                    ),
                )
                .expecting(&["a field name"]));
            }
            None => {}
            Some(field) => check_aggregated_field(function, field)?,
        }
        let mut alias = None;
        let mut end = call_span.end;
        if let Some(as_token) = self.peek_keyword("as")? {
            self.advance_past(&as_token);
            let name_token = self.next(Mode::Stage)?;
            let name = match &name_token.kind {
                TokenKind::Word(word) if is_output_name(&word.text) => word.text.clone(),
                _ => {
                    let mut error = self.unexpected(&name_token, "\"as\"", &["a name"]);
                    error
                        .message
                        .push_str("; names are letters, digits and _, and not by, as, asc or desc");
                    return Err(error);
                }
            };
            end = name_token.span.end;
            alias = Some(Spanned::new(name, name_token.span));
        }
        Ok(Aggregation {
            function,
            field,
            alias,
            span: function_token.span.start..end,
        })
    }

    fn expect_close_paren(&mut self, after: &str) -> Result<Token, QueryError> {
        let close = self.next(Mode::Stage)?;
        if close.kind != TokenKind::RParen {
            return Err(self.unexpected(&close, after, &[")"]));
        }
        Ok(close)
    }

    /// A field to group by (`by`, `top`): known, and neither full text nor raw time.
    fn parse_group_field(&mut self, after: &str) -> Result<Spanned<FieldRef>, QueryError> {
        let token = self.next(Mode::Stage)?;
        let TokenKind::Word(word) = &token.kind else {
            return Err(self.unexpected(&token, after, &["a field name"]));
        };
        let field = self.resolve_field(&word.text, token.span.clone(), "")?;
        match field.kind() {
            FieldKind::Text => Err(QueryError::new(
                token.span,
                format!(
                    "cannot group by {field}: it is full text; \"patterns\" groups lines by message"
                ),
            )),
            FieldKind::Time => Err(QueryError::new(
                token.span,
                format!(
                    "cannot group by {field}: \"timechart span=<duration>\" buckets lines by time"
                ),
            )),
            _ => Ok(Spanned::new(field, token.span)),
        }
    }

    /// A column of what the stages so far produce: a field of the lines, or a column of
    /// the aggregation's table (by name, or by the `fn(field)` that made it).
    fn parse_column(&mut self, shape: &Shape, after: &str) -> Result<Spanned<Column>, QueryError> {
        let token = self.next(Mode::Stage)?;
        let TokenKind::Word(word) = &token.kind else {
            return Err(self.unexpected(&token, after, &["a column name"]));
        };
        let mut name = word.text.clone();
        let mut span = token.span.clone();
        let mut is_call = false;
        if let Some(function) = AggregateFunction::from_name(&word.text) {
            let open = self.peek(Mode::Stage)?;
            if open.kind == TokenKind::LParen {
                self.advance_past(&open);
                let call_text = format!("\"{}(\"", function.name());
                let argument = self.next(Mode::Stage)?;
                let (field, close) = match argument.kind {
                    TokenKind::RParen => (None, argument),
                    TokenKind::Star => (None, self.expect_close_paren(&call_text)?),
                    TokenKind::Word(ref word) => {
                        let field = self.resolve_field(&word.text, argument.span.clone(), "")?;
                        (Some(field), self.expect_close_paren(&call_text)?)
                    }
                    _ => {
                        return Err(self.unexpected(&argument, &call_text, &["a field name", ")"]));
                    }
                };
                name = default_output_name(function, field.as_ref());
                span = token.span.start..close.span.end;
                is_call = true;
            }
        }
        let column = match shape {
            Shape::Lines { kept } => {
                let names_an_output = AggregateFunction::from_name(&name).is_some()
                    || matches!(name.as_str(), "pattern" | "example");
                if is_call || (names_an_output && FieldRef::from_name(&name).is_none()) {
                    return Err(QueryError::new(
                        span,
                        format!(
                            "{} is not a field, and no aggregation (stats, top or patterns) \
                             comes before this stage to make it",
                            quote(&name)
                        ),
                    ));
                }
                let field = self.resolve_field(&name, span.clone(), "")?;
                if let Some(kept) = kept
                    && !kept.contains(&field)
                {
                    let kept_names: Vec<String> = kept.iter().map(ToString::to_string).collect();
                    return Err(QueryError::new(
                        span,
                        format!(
                            "no column {} here: the fields stage before keeps only {}",
                            quote(&name),
                            kept_names.join(", ")
                        ),
                    )
                    .expecting(&kept_names.iter().map(String::as_str).collect::<Vec<_>>()));
                }
                Column::Field(field)
            }
            Shape::Table { made_by, columns } => {
                let Some(column) = columns.iter().find(|column| column.name() == name) else {
                    let names: Vec<String> = columns.iter().map(Column::name).collect();
                    let suggestion = suggest_from(&name, names.iter().map(String::as_str))
                        .map(|known| format!(" (did you mean {}?)", quote(&known)))
                        .unwrap_or_default();
                    return Err(QueryError::new(
                        span,
                        format!(
                            "no column {}{suggestion} here: the {made_by} stage before makes {}",
                            quote(&name),
                            names.join(", ")
                        ),
                    )
                    .expecting(&names.iter().map(String::as_str).collect::<Vec<_>>()));
                };
                column.clone()
            }
            Shape::Series => {
                return Err(QueryError::new(span, "nothing can follow timechart"));
            }
        };
        Ok(Spanned::new(column, span))
    }

    fn parse_positive_count(&mut self, requirement: &str) -> Result<u64, QueryError> {
        let token = self.next(Mode::Stage)?;
        if let TokenKind::Word(word) = &token.kind
            && let Ok(n) = word.text.parse::<u64>()
            && n >= 1
        {
            return Ok(n);
        }
        Err(QueryError::new(
            token.span.clone(),
            format!("{requirement}, found {}", self.describe(&token)),
        )
        .expecting(&["a whole number"]))
    }

    /// The next token if it is the (case-insensitive) keyword.
    fn peek_keyword(&self, keyword: &str) -> Result<Option<Token>, QueryError> {
        let token = self.peek(Mode::Stage)?;
        let matches =
            matches!(&token.kind, TokenKind::Word(word) if word.text.eq_ignore_ascii_case(keyword));
        Ok(matches.then_some(token))
    }

    fn peek_comma(&self) -> Result<Option<Token>, QueryError> {
        let token = self.peek(Mode::Stage)?;
        Ok((token.kind == TokenKind::Comma).then_some(token))
    }
}

/// What could have continued a stage, for the "expected" list when something else came.
fn continuations(stage: &Stage) -> &'static [&'static str] {
    match stage {
        Stage::Stats { by, .. } if by.is_empty() => &[",", "as", "by"],
        Stage::Stats { .. } | Stage::Fields { .. } => &[","],
        Stage::Timechart { by: None, .. } => &[",", "as", "by"],
        Stage::Sort { .. } => &[",", "asc", "desc"],
        Stage::Patterns {
            by: None,
            unique: false,
            ..
        } => &["unique", "by"],
        Stage::Patterns { by: None, .. } => &["by"],
        Stage::Timechart { .. }
        | Stage::Top { .. }
        | Stage::Limit { .. }
        | Stage::Patterns { .. } => &[],
    }
}

/// Which kinds of field each function can aggregate.
fn check_aggregated_field(
    function: AggregateFunction,
    field: &Spanned<FieldRef>,
) -> Result<(), QueryError> {
    let kind = field.node.kind();
    let (allowed, needs) = match function {
        AggregateFunction::Count => (true, ""),
        AggregateFunction::CountDistinct => (
            kind.allows_grouping(),
            "a keyword, number or attribute field",
        ),
        AggregateFunction::Min | AggregateFunction::Max => (
            matches!(kind, FieldKind::Number | FieldKind::Time | FieldKind::Json),
            "a number, time or attribute field",
        ),
        AggregateFunction::Sum
        | AggregateFunction::Avg
        | AggregateFunction::P50
        | AggregateFunction::P90
        | AggregateFunction::P95
        | AggregateFunction::P99
        | AggregateFunction::Rate
        | AggregateFunction::Increase => (
            matches!(kind, FieldKind::Number | FieldKind::Json),
            "a number or attribute field",
        ),
    };
    if allowed {
        return Ok(());
    }
    Err(QueryError::new(
        field.span.clone(),
        format!(
            "{} needs {needs}, and {} is a {kind} field",
            function.name(),
            field.node
        ),
    ))
}

/// An alias: an identifier that cannot be mistaken for syntax.
fn is_output_name(text: &str) -> bool {
    let mut chars = text.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    well_formed
        && !RESERVED_NAMES
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(text))
}
