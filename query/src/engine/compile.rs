//! Filter → tantivy query, node by node.
//!
//! Boolean structure maps one to one onto `BooleanQuery`; a conjunction made only of
//! exclusions gets an `AllQuery` to subtract from, because tantivy's boolean query with
//! nothing required matches nothing. Field matches dispatch on the field's kind (see the
//! module docs of [`super`]).

use std::collections::BTreeSet;
use std::ops::Bound as RangeBound;

use tantivy::DateTime;
use tantivy::json_utils::convert_to_fast_value_and_append_to_json_term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, InvertedIndexRangeQuery, Occur, PhraseQuery,
    Query, RangeQuery, RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Schema, Term};
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};

use super::EngineContext;
use super::prune::required_identity;
use crate::ast::{Bound, CompareOp, Filter, TimePoint, TypedValue, Value, VersionAlias};
use crate::error::{QueryError, Span};
use crate::fields::{FieldKind, FieldRef, IdentityField};

/// The schema field attributes live in, as a JSON object.
pub(super) const ATTRIBUTES_FIELD: &str = "attrs";

/// tantivy's `default` analyzer, which the body and attribute values are indexed with.
pub(super) fn default_analyzer() -> TextAnalyzer {
    TokenizerManager::default()
        .get("default")
        .expect("tantivy's default tokenizer manager always has `default`")
}

/// The schema field a field reference reads (`attrs` for every attribute), or an error at
/// `span` when the index has no such field.
pub(super) fn schema_field(
    schema: &Schema,
    field: &FieldRef,
    span: &Span,
) -> Result<Field, QueryError> {
    let name = match field {
        FieldRef::Attribute(_) => ATTRIBUTES_FIELD,
        fixed => fixed.fixed_name().unwrap_or_default(),
    };
    schema.get_field(name).map_err(|_| {
        QueryError::new(
            span.clone(),
            format!("field `{field}` is not in this index (logs have no `{name}`)"),
        )
    })
}

/// The tokens `analyzer` makes of `text`, as the index holds them.
pub(super) fn tokens_of(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut stream = analyzer.token_stream(text);
    stream.process(&mut |token| tokens.push(token.text.clone()));
    tokens
}

/// Turns a parsed filter into a tantivy query over the log schema.
pub fn compile_filter(
    filter: &Filter,
    context: &EngineContext<'_>,
) -> Result<Box<dyn Query>, QueryError> {
    let analyzer = default_analyzer();
    let mut compiler = Compiler {
        context,
        analyzer,
        root: filter,
    };
    compiler.compile(filter)
}

struct Compiler<'c, 'a> {
    context: &'c EngineContext<'a>,
    /// Tokenizes body and attribute values the way they were indexed.
    analyzer: TextAnalyzer,
    /// The whole filter: `version:latest` looks at it for the services it constrains.
    root: &'c Filter,
}

impl Compiler<'_, '_> {
    fn schema(&self) -> &Schema {
        self.context.schema
    }

    fn compile(&mut self, filter: &Filter) -> Result<Box<dyn Query>, QueryError> {
        match filter {
            Filter::All { .. } => Ok(Box::new(AllQuery)),
            Filter::And { operands, .. } => self.conjunction(operands),
            Filter::Or { operands, .. } => {
                let mut clauses = Vec::with_capacity(operands.len());
                for operand in operands {
                    clauses.push((Occur::Should, self.compile(operand)?));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Filter::Not { operand, .. } => {
                let excluded = self.compile(operand)?;
                Ok(Box::new(BooleanQuery::new(vec![
                    (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                    (Occur::MustNot, excluded),
                ])))
            }
            Filter::Term { field, value, span } => self.term(field.as_ref(), value, span),
            Filter::Phrase { field, text, span } => self.phrase(field.as_ref(), text, span),
            Filter::Wildcard {
                field,
                pattern,
                span,
            } => self.regex(field.as_ref(), &pattern.to_regex(), true, span),
            Filter::Regex {
                field,
                pattern,
                span,
            } => self.regex(field.as_ref(), pattern, false, span),
            Filter::Exists { field, span } => self.exists(field, span),
            Filter::Range {
                field,
                lower,
                upper,
                span,
            } => self.range(field, lower, upper, span),
            Filter::Compare {
                field,
                op,
                value,
                span,
            } => {
                let (lower, upper) = match op {
                    CompareOp::Greater => (Bound::Excluded(value.clone()), Bound::Unbounded),
                    CompareOp::GreaterOrEqual => (Bound::Included(value.clone()), Bound::Unbounded),
                    CompareOp::Less => (Bound::Unbounded, Bound::Excluded(value.clone())),
                    CompareOp::LessOrEqual => (Bound::Unbounded, Bound::Included(value.clone())),
                };
                self.range(field, &lower, &upper, span)
            }
            Filter::VersionAlias { alias, span } => self.version_alias(*alias, span),
        }
    }

    fn conjunction(&mut self, operands: &[Filter]) -> Result<Box<dyn Query>, QueryError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(operands.len() + 1);
        for operand in operands {
            match operand {
                Filter::Not { operand: inner, .. } => {
                    clauses.push((Occur::MustNot, self.compile(inner)?));
                }
                other => clauses.push((Occur::Must, self.compile(other)?)),
            }
        }
        if !clauses.iter().any(|(occur, _)| *occur == Occur::Must) {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// The schema field a query field is stored in.
    fn field(&self, field: &FieldRef, span: &Span) -> Result<Field, QueryError> {
        schema_field(self.schema(), field, span)
    }

    fn tokens(&mut self, text: &str) -> Vec<String> {
        tokens_of(&mut self.analyzer, text)
    }

    fn term(
        &mut self,
        field: Option<&FieldRef>,
        value: &Value,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let field_ref = field.unwrap_or(&FieldRef::Body);
        match field_ref.kind() {
            FieldKind::Keyword => {
                let field = self.field(field_ref, span)?;
                Ok(term_query(Term::from_field_text(field, &value.text)))
            }
            FieldKind::Text => self.body_words(field_ref, &value.text, span),
            FieldKind::Number | FieldKind::Time => {
                // Equality is the range [value, value], which uses the fast column and
                // so the full precision of the value.
                let bound = Bound::Included(value.clone());
                self.range(field_ref, &bound, &bound, span)
            }
            FieldKind::Json => {
                let FieldRef::Attribute(key) = field_ref else {
                    unreachable!("only attributes are json")
                };
                self.attribute_value(key, value, span)
            }
        }
    }

    fn phrase(
        &mut self,
        field: Option<&FieldRef>,
        text: &str,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let field_ref = field.unwrap_or(&FieldRef::Body);
        match field_ref {
            FieldRef::Attribute(key) => self.attribute_words(key, text, span),
            _ => self.body_words(field_ref, text, span),
        }
    }

    /// Words of the body: one is a term, several a phrase.
    fn body_words(
        &mut self,
        field_ref: &FieldRef,
        text: &str,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let field = self.field(field_ref, span)?;
        let tokens = self.tokens(text);
        let mut terms: Vec<Term> = tokens
            .iter()
            .map(|token| Term::from_field_text(field, token))
            .collect();
        match terms.len() {
            0 => Err(QueryError::new(
                span.clone(),
                format!("`{text}` has no words to search for (only punctuation or spaces)"),
            )),
            1 => Ok(term_query(terms.pop().expect("one term"))),
            _ => Ok(Box::new(PhraseQuery::new(terms))),
        }
    }

    /// `attrs.key:value`: the value's words under the key, or the value as a number.
    fn attribute_value(
        &mut self,
        key: &str,
        value: &Value,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let field = self.field(&FieldRef::Attribute(key.to_string()), span)?;
        let as_text = self.attribute_words(key, &value.text, span);
        let as_number = match value.typed {
            TypedValue::Integer(_) | TypedValue::Float(_) => {
                convert_to_fast_value_and_append_to_json_term(
                    &json_path_term(field, key),
                    &value.text,
                    false,
                )
                .map(term_query)
            }
            TypedValue::Text | TypedValue::Time(_) => None,
        };
        match (as_text, as_number) {
            (Ok(text), Some(number)) => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Should, text),
                (Occur::Should, number),
            ]))),
            (Ok(text), None) => Ok(text),
            (Err(_), Some(number)) => Ok(number),
            (Err(error), None) => Err(error),
        }
    }

    /// Words under an attribute key. Attributes keep no positions, so several words
    /// match lines whose attribute holds all of them, in any order.
    fn attribute_words(
        &mut self,
        key: &str,
        text: &str,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let field = self.field(&FieldRef::Attribute(key.to_string()), span)?;
        let tokens = self.tokens(text);
        if tokens.is_empty() {
            return Err(QueryError::new(
                span.clone(),
                format!("`{text}` has no words to search for (only punctuation or spaces)"),
            ));
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(tokens.len());
        for token in &tokens {
            let mut term = json_path_term(field, key);
            term.append_type_and_str(token);
            clauses.push((Occur::Must, term_query(term)));
        }
        if clauses.len() == 1 {
            return Ok(clauses.pop().expect("one clause").1);
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn regex(
        &mut self,
        field: Option<&FieldRef>,
        pattern: &str,
        from_wildcard: bool,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let field_ref = field.unwrap_or(&FieldRef::Body);
        let pattern = match field_ref.kind() {
            FieldKind::Keyword => pattern.to_string(),
            // Body tokens are lowercased: a wildcard's literal text is lowercased with
            // them, a regex is made case-insensitive.
            FieldKind::Text if from_wildcard => pattern.to_lowercase(),
            FieldKind::Text => format!("(?i:{pattern})"),
            FieldKind::Json => {
                return Err(QueryError::new(
                    span.clone(),
                    format!(
                        "wildcards and regexes on attributes (`{field_ref}`) are not supported yet; \
                         match a whole word instead"
                    ),
                ));
            }
            FieldKind::Number | FieldKind::Time => {
                return Err(QueryError::new(
                    span.clone(),
                    format!(
                        "`{field_ref}` holds {}s, which wildcards and regexes cannot match",
                        field_ref.kind()
                    ),
                ));
            }
        };
        let field = self.field(field_ref, span)?;
        let query = RegexQuery::from_pattern(&pattern, field).map_err(|error| {
            QueryError::new(span.clone(), format!("the pattern cannot run: {error}"))
        })?;
        Ok(Box::new(query))
    }

    fn exists(&mut self, field_ref: &FieldRef, span: &Span) -> Result<Box<dyn Query>, QueryError> {
        let field = self.field(field_ref, span)?;
        match field_ref.kind() {
            // A metric point's value is in one of two columns.
            FieldKind::Number
                if *field_ref == FieldRef::Value
                    && self.schema().get_field(INTEGER_VALUE_FIELD).is_ok() =>
            {
                let exists = |name: &str| -> Box<dyn Query> {
                    Box::new(ExistsQuery::new(name.to_string(), false))
                };
                Ok(Box::new(BooleanQuery::new(vec![
                    (Occur::Should, exists(self.schema().get_field_name(field))),
                    (Occur::Should, exists(INTEGER_VALUE_FIELD)),
                ])))
            }
            // Every line has a severity and a timestamp; their fast columns say so.
            FieldKind::Number | FieldKind::Time => Ok(Box::new(ExistsQuery::new(
                self.schema().get_field_name(field).to_string(),
                false,
            ))),
            // A non-empty value: lines without a service are stored with an empty one.
            FieldKind::Keyword | FieldKind::Text => Ok(Box::new(InvertedIndexRangeQuery::new(
                RangeBound::Excluded(Term::from_field_text(field, "")),
                RangeBound::Unbounded,
            ))),
            FieldKind::Json => {
                let FieldRef::Attribute(key) = field_ref else {
                    unreachable!("only attributes are json")
                };
                // Every term of the key sorts between `path\0` and `path\x01`: values
                // follow the end-of-path byte 0, and deeper keys continue with the
                // segment separator 1 — which is excluded.
                let lower = json_path_term(field, key);
                let mut upper = lower.clone();
                upper.truncate_value_bytes(upper.len_bytes() - 1);
                upper.append_bytes(&[1]);
                Ok(Box::new(InvertedIndexRangeQuery::new(
                    RangeBound::Included(lower),
                    RangeBound::Excluded(upper),
                )))
            }
        }
    }

    fn range(
        &mut self,
        field_ref: &FieldRef,
        lower: &Bound,
        upper: &Bound,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        if matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded)) {
            return self.exists(field_ref, span);
        }
        let field = self.field(field_ref, span)?;
        match field_ref.kind() {
            FieldKind::Keyword => {
                let to_term = |value: &Value| Term::from_field_text(field, &value.text);
                Ok(Box::new(InvertedIndexRangeQuery::new(
                    map_bound(lower, to_term),
                    map_bound(upper, to_term),
                )))
            }
            FieldKind::Number if *field_ref == FieldRef::Value => {
                self.value_range(field, lower, upper)
            }
            FieldKind::Number => {
                let lower = integer_bound(lower, field_ref)?;
                let upper = integer_bound(upper, field_ref)?;
                // The schema's numbers are unsigned (severity): clamp the bounds into
                // u64, and match nothing when the whole range is negative.
                let below_zero = |bound: &RangeBound<i64>| match bound {
                    RangeBound::Included(value) => *value < 0,
                    RangeBound::Excluded(value) => *value < 0,
                    RangeBound::Unbounded => false,
                };
                if below_zero(&upper) {
                    return Ok(Box::new(EmptyQuery));
                }
                let lower = match lower {
                    RangeBound::Included(value) | RangeBound::Excluded(value) if value < 0 => {
                        RangeBound::Unbounded
                    }
                    other => other,
                };
                let to_term = |value: &i64| Term::from_field_u64(field, *value as u64);
                if matches!(
                    (&lower, &upper),
                    (RangeBound::Unbounded, RangeBound::Unbounded)
                ) {
                    return self.exists(field_ref, span);
                }
                Ok(Box::new(RangeQuery::new(
                    std_map_bound(&lower, to_term),
                    std_map_bound(&upper, to_term),
                )))
            }
            FieldKind::Time => {
                let lower = self.time_bound(lower)?;
                let upper = self.time_bound(upper)?;
                Ok(Box::new(time_range_query(
                    self.schema(),
                    field,
                    &lower,
                    &upper,
                )))
            }
            FieldKind::Json => {
                let FieldRef::Attribute(key) = field_ref else {
                    unreachable!("only attributes are json")
                };
                self.attribute_range(field, key, lower, upper)
            }
            FieldKind::Text => Err(QueryError::new(
                span.clone(),
                format!("`{field_ref}` is full text, which has no order to compare"),
            )),
        }
    }

    /// A numeric range under an attribute key, over the inverted index: numbers are
    /// indexed as i64 when whole and f64 otherwise (u64 only above i64::MAX), so the
    /// range runs over each encoding and the results are united.
    fn attribute_range(
        &mut self,
        field: Field,
        key: &str,
        lower: &Bound,
        upper: &Bound,
    ) -> Result<Box<dyn Query>, QueryError> {
        let not_a_number = |text: &str| {
            format!(
                "ranges on attributes compare numbers; `{text}` is not one (text ranges on attributes are not supported yet)"
            )
        };
        let lower = number_bound(lower, not_a_number)?;
        let upper = number_bound(upper, not_a_number)?;
        let path = json_path_term(field, key);
        let typed_term = |append: &dyn Fn(&mut Term)| {
            let mut term = path.clone();
            append(&mut term);
            term
        };
        let (integer_lower, integer_upper) = integer_bounds(lower, upper);
        let float_lower = match lower {
            RangeBound::Unbounded => RangeBound::Included(f64::NEG_INFINITY),
            other => other,
        };
        let float_upper = match upper {
            RangeBound::Unbounded => RangeBound::Included(f64::INFINITY),
            other => other,
        };
        let as_integer = InvertedIndexRangeQuery::new(
            std_map_bound(&integer_lower, |value: &i64| {
                typed_term(&|term| term.append_type_and_fast_value(*value))
            }),
            std_map_bound(&integer_upper, |value: &i64| {
                typed_term(&|term| term.append_type_and_fast_value(*value))
            }),
        );
        let as_float = InvertedIndexRangeQuery::new(
            std_map_bound(&float_lower, |value: &f64| {
                typed_term(&|term| term.append_type_and_fast_value(*value))
            }),
            std_map_bound(&float_upper, |value: &f64| {
                typed_term(&|term| term.append_type_and_fast_value(*value))
            }),
        );
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Should, Box::new(as_integer) as Box<dyn Query>),
            (Occur::Should, Box::new(as_float)),
        ])))
    }

    /// A range over a metric point's value, on its columns: `value` holds the values
    /// sent as doubles, and `value_int` (where the schema has it) those sent as integers.
    fn value_range(
        &mut self,
        field: Field,
        lower: &Bound,
        upper: &Bound,
    ) -> Result<Box<dyn Query>, QueryError> {
        let not_a_number = |text: &str| format!("`value` is a number; `{text}` is not one");
        let lower = number_bound(lower, not_a_number)?;
        let upper = number_bound(upper, not_a_number)?;
        let as_float = RangeQuery::new(
            std_map_bound(&lower, |value: &f64| Term::from_field_f64(field, *value)),
            std_map_bound(&upper, |value: &f64| Term::from_field_f64(field, *value)),
        );
        let mut either = vec![(Occur::Should, Box::new(as_float) as Box<dyn Query>)];
        if let Ok(integer_field) = self.schema().get_field(INTEGER_VALUE_FIELD) {
            let (integer_lower, integer_upper) = integer_bounds(lower, upper);
            let to_term = |value: &i64| Term::from_field_i64(integer_field, *value);
            either.push((
                Occur::Should,
                Box::new(RangeQuery::new(
                    std_map_bound(&integer_lower, to_term),
                    std_map_bound(&integer_upper, to_term),
                )),
            ));
        }
        Ok(Box::new(BooleanQuery::new(either)))
    }

    fn time_bound(&self, bound: &Bound) -> Result<RangeBound<i64>, QueryError> {
        let nanos = |value: &Value| match value.typed {
            TypedValue::Time(TimePoint::Absolute { unix_nanos }) => Ok(unix_nanos),
            TypedValue::Time(TimePoint::BeforeNow(ago)) => Ok(self
                .context
                .now_nanos
                .saturating_sub(i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX))),
            _ => Err(QueryError::new(
                value.span.clone(),
                format!("`{}` is not a time", value.text),
            )),
        };
        Ok(match bound {
            Bound::Included(value) => RangeBound::Included(nanos(value)?),
            Bound::Excluded(value) => RangeBound::Excluded(nanos(value)?),
            Bound::Unbounded => RangeBound::Unbounded,
        })
    }

    /// `version:latest`: `(service:S AND version:V) OR ...` over what the resolver says,
    /// for the services the rest of the filter requires (all services otherwise).
    fn version_alias(
        &mut self,
        alias: VersionAlias,
        span: &Span,
    ) -> Result<Box<dyn Query>, QueryError> {
        let services = required_identity(self.root).services;
        let pairs = self.context.versions.resolve(alias, services.as_ref());
        let service_field = self.field(&FieldRef::Identity(IdentityField::Service), span)?;
        let version_field = self.field(&FieldRef::Identity(IdentityField::Version), span)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(pairs.len());
        let mut seen = BTreeSet::new();
        for (service, version) in pairs {
            if !seen.insert((service.clone(), version.clone())) {
                continue;
            }
            let both: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                (
                    Occur::Must,
                    term_query(Term::from_field_text(service_field, &service)),
                ),
                (
                    Occur::Must,
                    term_query(Term::from_field_text(version_field, &version)),
                ),
            ]));
            clauses.push((Occur::Should, both));
        }
        if clauses.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// The term of an attribute key with no value yet (`attrs` is indexed with expanded
/// dots, so `http.status` addresses both `{"http": {"status": _}}` and
/// `{"http.status": _}`).
fn json_path_term(field: Field, key: &str) -> Term {
    Term::from_field_json_path(field, key, true)
}

fn map_bound(bound: &Bound, to_term: impl Fn(&Value) -> Term) -> RangeBound<Term> {
    match bound {
        Bound::Included(value) => RangeBound::Included(to_term(value)),
        Bound::Excluded(value) => RangeBound::Excluded(to_term(value)),
        Bound::Unbounded => RangeBound::Unbounded,
    }
}

/// The column of a metric point's value when it was sent as an integer.
pub const INTEGER_VALUE_FIELD: &str = "value_int";

/// A range bound as a number; `not_a_number` words the error for a value that is none.
fn number_bound(
    bound: &Bound,
    not_a_number: impl Fn(&str) -> String,
) -> Result<RangeBound<f64>, QueryError> {
    let value = match bound {
        Bound::Unbounded => return Ok(RangeBound::Unbounded),
        Bound::Included(value) | Bound::Excluded(value) => value,
    };
    let number = match value.typed {
        TypedValue::Integer(integer) => integer as f64,
        TypedValue::Float(float) => float,
        TypedValue::Text | TypedValue::Time(_) => {
            return Err(QueryError::new(
                value.span.clone(),
                not_a_number(&value.text),
            ));
        }
    };
    Ok(match bound {
        Bound::Included(_) => RangeBound::Included(number),
        _ => RangeBound::Excluded(number),
    })
}

/// Number bounds for an i64 encoding, which covers whole numbers: rounded inwards, and
/// open ends as the ends of i64.
fn integer_bounds(
    lower: RangeBound<f64>,
    upper: RangeBound<f64>,
) -> (RangeBound<i64>, RangeBound<i64>) {
    let lower = match lower {
        RangeBound::Unbounded => RangeBound::Included(i64::MIN),
        RangeBound::Included(value) => RangeBound::Included(value.ceil() as i64),
        RangeBound::Excluded(value) if value.fract() == 0.0 => RangeBound::Excluded(value as i64),
        RangeBound::Excluded(value) => RangeBound::Included(value.ceil() as i64),
    };
    let upper = match upper {
        RangeBound::Unbounded => RangeBound::Included(i64::MAX),
        RangeBound::Included(value) => RangeBound::Included(value.floor() as i64),
        RangeBound::Excluded(value) if value.fract() == 0.0 => RangeBound::Excluded(value as i64),
        RangeBound::Excluded(value) => RangeBound::Included(value.floor() as i64),
    };
    (lower, upper)
}

/// Nanoseconds in a millisecond: metric points' `timestamp` column holds milliseconds.
pub const NANOS_PER_MILLI: i64 = 1_000_000;

/// A range over a time column given in Unix nanoseconds. A date column holds nanoseconds;
/// an `i64` column holds milliseconds (metric points' time), and the bounds are rounded
/// so that a point is in the range exactly when its millisecond, as nanoseconds, is.
pub fn time_range_query(
    schema: &Schema,
    field: Field,
    lower: &RangeBound<i64>,
    upper: &RangeBound<i64>,
) -> RangeQuery {
    if schema.get_field_entry(field).field_type().value_type() == tantivy::schema::Type::I64 {
        let floor = |nanos: i64| nanos.div_euclid(NANOS_PER_MILLI);
        let ceil = |nanos: i64| -(-nanos).div_euclid(NANOS_PER_MILLI);
        let term = |millis: i64| Term::from_field_i64(field, millis);
        let lower = match *lower {
            RangeBound::Included(nanos) => RangeBound::Included(term(ceil(nanos))),
            RangeBound::Excluded(nanos) => RangeBound::Excluded(term(floor(nanos))),
            RangeBound::Unbounded => RangeBound::Unbounded,
        };
        let upper = match *upper {
            RangeBound::Included(nanos) => RangeBound::Included(term(floor(nanos))),
            RangeBound::Excluded(nanos) => RangeBound::Excluded(term(ceil(nanos))),
            RangeBound::Unbounded => RangeBound::Unbounded,
        };
        return RangeQuery::new(lower, upper);
    }
    let to_term =
        |nanos: &i64| Term::from_field_date(field, DateTime::from_timestamp_nanos(*nanos));
    RangeQuery::new(std_map_bound(lower, to_term), std_map_bound(upper, to_term))
}

fn std_map_bound<T>(bound: &RangeBound<T>, to_term: impl Fn(&T) -> Term) -> RangeBound<Term> {
    match bound {
        RangeBound::Included(value) => RangeBound::Included(to_term(value)),
        RangeBound::Excluded(value) => RangeBound::Excluded(to_term(value)),
        RangeBound::Unbounded => RangeBound::Unbounded,
    }
}

fn integer_bound(bound: &Bound, field_ref: &FieldRef) -> Result<RangeBound<i64>, QueryError> {
    let integer = |value: &Value| match value.typed {
        TypedValue::Integer(integer) => Ok(integer),
        _ => Err(QueryError::new(
            value.span.clone(),
            format!(
                "`{field_ref}` holds whole numbers; `{}` is not one",
                value.text
            ),
        )),
    };
    Ok(match bound {
        Bound::Included(value) => RangeBound::Included(integer(value)?),
        Bound::Excluded(value) => RangeBound::Excluded(integer(value)?),
        Bound::Unbounded => RangeBound::Unbounded,
    })
}
