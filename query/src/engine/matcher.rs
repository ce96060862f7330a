//! A filter evaluated over one document in memory, for lines that are not in an index
//! yet: the live tail matches every freshly ingested line against each subscriber's
//! filter without waiting for a commit.
//!
//! The matcher answers what [`compile_filter`](super::compile_filter)'s tantivy query
//! would answer for the same document once indexed, because it reads the document the way
//! the index does:
//!
//! - keyword fields compare whole values (an empty value is a value: `service:*` wants a
//!   non-empty one, as the compiled range over terms above `""` does);
//! - text fields (the body) are tokenized with tantivy's own `default` analyzer, positions
//!   included, so one word is a token match, several words a phrase over consecutive
//!   positions, and a token the analyzer drops (40 bytes or longer) breaks a phrase as it
//!   does in the index; wildcards and regexes run over single tokens, lowercased /
//!   case-insensitively;
//! - attributes are flattened to dotted paths (`{"http": {"status": 500}}` and
//!   `{"http.status": 500}` are both `http.status`, as the index expands dots); their
//!   strings match by tokens in any order, their numbers by value after tantivy's
//!   normalization (an integral float is an integer), ranges cover integers and floats
//!   but not unsigned values above `i64::MAX`, which the index files under another type;
//! - `severity` and `timestamp` compare numbers and nanoseconds.
//!
//! [`Matcher::new`] compiles the filter with the engine first, so a filter a search
//! rejects is rejected here too, with the same error.
//! `now-15m` is resolved against the `now_nanos` each [`Matcher::matches`] call passes, so
//! a tail that runs for hours keeps a sliding window.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeSet;
use std::ops::Bound as RangeBound;
use std::rc::Rc;

use regex::Regex;
use tantivy::TantivyDocument;
use tantivy::columnar::NumericalValue;
use tantivy::schema::{Field, OwnedValue, Value as _};
use tantivy::tokenizer::TextAnalyzer;

use super::compile::{ATTRIBUTES_FIELD, default_analyzer, schema_field, tokens_of};
use super::prune::required_identity;
use super::{EngineContext, compile_filter};
use crate::ast::{Bound, CompareOp, Filter, TimePoint, TypedValue, Value, VersionAlias};
use crate::error::{QueryError, Span};
use crate::fields::{FieldKind, FieldRef, IdentityField};

/// A filter ready to be evaluated over documents of the log schema.
pub struct Matcher {
    plan: Plan,
    /// Where attributes live in the schema, if it has them.
    attributes_field: Option<Field>,
    /// Tokenizes text the way the index does; cloned per document because tantivy's
    /// token streams borrow it mutably.
    analyzer: TextAnalyzer,
}

/// The filter with fields resolved, values typed and patterns compiled.
enum Plan {
    All,
    Nothing,
    And(Vec<Plan>),
    Or(Vec<Plan>),
    Not(Box<Plan>),
    /// A keyword value equal to this text.
    KeywordIs {
        field: Field,
        text: String,
    },
    /// A keyword value the anchored regex matches in full.
    KeywordPattern {
        field: Field,
        regex: Regex,
    },
    KeywordRange {
        field: Field,
        lower: RangeBound<String>,
        upper: RangeBound<String>,
    },
    /// A non-empty keyword value.
    KeywordPresent {
        field: Field,
    },
    /// Tokens of a text field: one is a token match, several a phrase.
    Words {
        field: Field,
        tokens: Vec<String>,
    },
    /// A token of a text field the anchored regex matches in full.
    TokenPattern {
        field: Field,
        regex: Regex,
    },
    /// A text field with at least one token.
    TokensPresent {
        field: Field,
    },
    NumberRange {
        field: Field,
        lower: RangeBound<i64>,
        upper: RangeBound<i64>,
    },
    TimeRange {
        field: Field,
        lower: RangeBound<TimePoint>,
        upper: RangeBound<TimePoint>,
    },
    /// Any value at all (numbers and times, which every line has).
    ValuePresent {
        field: Field,
    },
    /// Every token among the string tokens under an attribute path.
    AttributeWords {
        path: String,
        tokens: Vec<String>,
    },
    /// A number under an attribute path, equal after normalization.
    AttributeNumber {
        path: String,
        number: NumericalValue,
    },
    /// A number under an attribute path within the range: integers against the bounds
    /// rounded inwards, other floats against the bounds as they are.
    AttributeRange {
        path: String,
        integer: (RangeBound<i64>, RangeBound<i64>),
        float: (RangeBound<f64>, RangeBound<f64>),
    },
    /// Any indexed leaf value directly at the attribute path.
    AttributePresent {
        path: String,
    },
}

impl Matcher {
    /// Prepares `filter` for matching. Fails when
    /// [`compile_filter`](super::compile_filter) fails on it, with the same error.
    pub fn new(filter: &Filter, context: &EngineContext<'_>) -> Result<Matcher, QueryError> {
        compile_filter(filter, context)?;
        let analyzer = default_analyzer();
        let mut builder = PlanBuilder {
            context,
            analyzer: analyzer.clone(),
            root: filter,
        };
        let plan = builder.build(filter)?;
        Ok(Matcher {
            plan,
            attributes_field: context.schema.get_field(ATTRIBUTES_FIELD).ok(),
            analyzer,
        })
    }

    /// Whether `document` (built with the log schema's field names) matches; `now_nanos`
    /// resolves `now-<duration>` in the filter.
    pub fn matches(&self, document: &TantivyDocument, now_nanos: i64) -> bool {
        let view = DocumentView {
            document,
            attributes_field: self.attributes_field,
            analyzer: self.analyzer.clone(),
            tokens: Default::default(),
            attributes: OnceCell::new(),
            now_nanos,
        };
        view.matches(&self.plan)
    }
}

struct PlanBuilder<'c, 'a> {
    context: &'c EngineContext<'a>,
    analyzer: TextAnalyzer,
    root: &'c Filter,
}

impl PlanBuilder<'_, '_> {
    fn build(&mut self, filter: &Filter) -> Result<Plan, QueryError> {
        Ok(match filter {
            Filter::All { .. } => Plan::All,
            Filter::And { operands, .. } => Plan::And(self.build_all(operands)?),
            Filter::Or { operands, .. } => Plan::Or(self.build_all(operands)?),
            Filter::Not { operand, .. } => Plan::Not(Box::new(self.build(operand)?)),
            Filter::Term { field, value, span } => self.term(field.as_ref(), value, span)?,
            Filter::Phrase { field, text, span } => {
                let field_ref = field.as_ref().unwrap_or(&FieldRef::Body);
                match field_ref {
                    FieldRef::Attribute(key) => self.attribute_words(key, text, span)?,
                    _ => self.words(field_ref, text, span)?,
                }
            }
            Filter::Wildcard {
                field,
                pattern,
                span,
            } => self.pattern(field.as_ref(), &pattern.to_regex(), true, span)?,
            Filter::Regex {
                field,
                pattern,
                span,
            } => self.pattern(field.as_ref(), pattern, false, span)?,
            Filter::Exists { field, span } => self.present(field, span)?,
            Filter::Range {
                field,
                lower,
                upper,
                span,
            } => self.range(field, lower, upper, span)?,
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
                self.range(field, &lower, &upper, span)?
            }
            Filter::VersionAlias { alias, span } => self.version_alias(*alias, span)?,
        })
    }

    fn build_all(&mut self, filters: &[Filter]) -> Result<Vec<Plan>, QueryError> {
        filters.iter().map(|filter| self.build(filter)).collect()
    }

    fn field(&self, field: &FieldRef, span: &Span) -> Result<Field, QueryError> {
        schema_field(self.context.schema, field, span)
    }

    fn tokens(&mut self, text: &str) -> Vec<String> {
        tokens_of(&mut self.analyzer, text)
    }

    fn term(
        &mut self,
        field: Option<&FieldRef>,
        value: &Value,
        span: &Span,
    ) -> Result<Plan, QueryError> {
        let field_ref = field.unwrap_or(&FieldRef::Body);
        match field_ref.kind() {
            FieldKind::Keyword => Ok(Plan::KeywordIs {
                field: self.field(field_ref, span)?,
                text: value.text.clone(),
            }),
            FieldKind::Text => self.words(field_ref, &value.text, span),
            FieldKind::Number | FieldKind::Time => {
                let bound = Bound::Included(value.clone());
                self.range(field_ref, &bound, &bound, span)
            }
            FieldKind::Json => {
                let FieldRef::Attribute(key) = field_ref else {
                    unreachable!("only attributes are json")
                };
                let as_text = self.attribute_words(key, &value.text, span);
                let as_number = match value.typed {
                    TypedValue::Integer(_) | TypedValue::Float(_) => {
                        value.text.parse::<NumericalValue>().ok().map(|number| {
                            Plan::AttributeNumber {
                                path: key.clone(),
                                number: number.normalize(),
                            }
                        })
                    }
                    TypedValue::Text | TypedValue::Time(_) => None,
                };
                match (as_text, as_number) {
                    (Ok(text), Some(number)) => Ok(Plan::Or(vec![text, number])),
                    (Ok(text), None) => Ok(text),
                    (Err(_), Some(number)) => Ok(number),
                    (Err(error), None) => Err(error),
                }
            }
        }
    }

    fn words(&mut self, field_ref: &FieldRef, text: &str, span: &Span) -> Result<Plan, QueryError> {
        let field = self.field(field_ref, span)?;
        let tokens = match field_ref.kind() {
            FieldKind::Text => self.tokens(text),
            // Phrases on keywords are read as terms by the parser; kept whole here too.
            _ => vec![text.to_string()],
        };
        if tokens.is_empty() {
            return Err(no_words(text, span));
        }
        Ok(Plan::Words { field, tokens })
    }

    fn attribute_words(&mut self, key: &str, text: &str, span: &Span) -> Result<Plan, QueryError> {
        self.field(&FieldRef::Attribute(key.to_string()), span)?;
        let tokens = self.tokens(text);
        if tokens.is_empty() {
            return Err(no_words(text, span));
        }
        Ok(Plan::AttributeWords {
            path: key.to_string(),
            tokens,
        })
    }

    fn pattern(
        &mut self,
        field: Option<&FieldRef>,
        pattern: &str,
        from_wildcard: bool,
        span: &Span,
    ) -> Result<Plan, QueryError> {
        let field_ref = field.unwrap_or(&FieldRef::Body);
        let field = self.field(field_ref, span)?;
        let (pattern, on_tokens) = match field_ref.kind() {
            FieldKind::Keyword => (pattern.to_string(), false),
            FieldKind::Text if from_wildcard => (pattern.to_lowercase(), true),
            FieldKind::Text => (format!("(?i:{pattern})"), true),
            // The engine rejects patterns on the other kinds; `compile_filter` has run.
            FieldKind::Json | FieldKind::Number | FieldKind::Time => {
                return Err(QueryError::new(
                    span.clone(),
                    format!("`{field_ref}` cannot be matched by a pattern"),
                ));
            }
        };
        // tantivy's regex queries match whole terms: anchor at both ends.
        let regex = Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|error| {
            QueryError::new(span.clone(), format!("the pattern cannot run: {error}"))
        })?;
        Ok(if on_tokens {
            Plan::TokenPattern { field, regex }
        } else {
            Plan::KeywordPattern { field, regex }
        })
    }

    fn present(&mut self, field_ref: &FieldRef, span: &Span) -> Result<Plan, QueryError> {
        let field = self.field(field_ref, span)?;
        Ok(match field_ref {
            FieldRef::Attribute(key) => Plan::AttributePresent { path: key.clone() },
            _ => match field_ref.kind() {
                FieldKind::Number | FieldKind::Time => Plan::ValuePresent { field },
                FieldKind::Text => Plan::TokensPresent { field },
                FieldKind::Keyword | FieldKind::Json => Plan::KeywordPresent { field },
            },
        })
    }

    fn range(
        &mut self,
        field_ref: &FieldRef,
        lower: &Bound,
        upper: &Bound,
        span: &Span,
    ) -> Result<Plan, QueryError> {
        if matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded)) {
            return self.present(field_ref, span);
        }
        let field = self.field(field_ref, span)?;
        match field_ref.kind() {
            FieldKind::Keyword => Ok(Plan::KeywordRange {
                field,
                lower: map_bound(lower, |value| Ok(value.text.clone()))?,
                upper: map_bound(upper, |value| Ok(value.text.clone()))?,
            }),
            FieldKind::Number => {
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
                Ok(Plan::NumberRange {
                    field,
                    lower: map_bound(lower, integer)?,
                    upper: map_bound(upper, integer)?,
                })
            }
            FieldKind::Time => {
                let time = |value: &Value| match value.typed {
                    TypedValue::Time(point) => Ok(point),
                    _ => Err(QueryError::new(
                        value.span.clone(),
                        format!("`{}` is not a time", value.text),
                    )),
                };
                Ok(Plan::TimeRange {
                    field,
                    lower: map_bound(lower, time)?,
                    upper: map_bound(upper, time)?,
                })
            }
            FieldKind::Json => {
                let FieldRef::Attribute(key) = field_ref else {
                    unreachable!("only attributes are json")
                };
                attribute_range(key, lower, upper)
            }
            FieldKind::Text => Err(QueryError::new(
                span.clone(),
                format!("`{field_ref}` is full text, which has no order to compare"),
            )),
        }
    }

    fn version_alias(&mut self, alias: VersionAlias, span: &Span) -> Result<Plan, QueryError> {
        let services = required_identity(self.root).services;
        let pairs = self.context.versions.resolve(alias, services.as_ref());
        let service_field = self.field(&FieldRef::Identity(IdentityField::Service), span)?;
        let version_field = self.field(&FieldRef::Identity(IdentityField::Version), span)?;
        let unique: BTreeSet<(String, String)> = pairs.into_iter().collect();
        if unique.is_empty() {
            return Ok(Plan::Nothing);
        }
        let mut alternatives = Vec::with_capacity(unique.len());
        for (service, version) in unique {
            alternatives.push(Plan::And(vec![
                Plan::KeywordIs {
                    field: service_field,
                    text: service,
                },
                Plan::KeywordIs {
                    field: version_field,
                    text: version,
                },
            ]));
        }
        Ok(Plan::Or(alternatives))
    }
}

fn no_words(text: &str, span: &Span) -> QueryError {
    QueryError::new(
        span.clone(),
        format!("`{text}` has no words to search for (only punctuation or spaces)"),
    )
}

fn map_bound<T>(
    bound: &Bound,
    convert: impl Fn(&Value) -> Result<T, QueryError>,
) -> Result<RangeBound<T>, QueryError> {
    Ok(match bound {
        Bound::Included(value) => RangeBound::Included(convert(value)?),
        Bound::Excluded(value) => RangeBound::Excluded(convert(value)?),
        Bound::Unbounded => RangeBound::Unbounded,
    })
}

/// The integer and float halves of a numeric attribute range, as the compiled query
/// splits it over the two encodings.
fn attribute_range(key: &str, lower: &Bound, upper: &Bound) -> Result<Plan, QueryError> {
    let number = |value: &Value| match value.typed {
        TypedValue::Integer(integer) => Ok(integer as f64),
        TypedValue::Float(float) => Ok(float),
        TypedValue::Text | TypedValue::Time(_) => Err(QueryError::new(
            value.span.clone(),
            format!(
                "ranges on attributes compare numbers; `{}` is not one",
                value.text
            ),
        )),
    };
    let lower = map_bound(lower, number)?;
    let upper = map_bound(upper, number)?;
    let integer_lower = match lower {
        RangeBound::Unbounded => RangeBound::Unbounded,
        RangeBound::Included(value) => RangeBound::Included(value.ceil() as i64),
        RangeBound::Excluded(value) if value.fract() == 0.0 => RangeBound::Excluded(value as i64),
        RangeBound::Excluded(value) => RangeBound::Included(value.ceil() as i64),
    };
    let integer_upper = match upper {
        RangeBound::Unbounded => RangeBound::Unbounded,
        RangeBound::Included(value) => RangeBound::Included(value.floor() as i64),
        RangeBound::Excluded(value) if value.fract() == 0.0 => RangeBound::Excluded(value as i64),
        RangeBound::Excluded(value) => RangeBound::Included(value.floor() as i64),
    };
    Ok(Plan::AttributeRange {
        path: key.to_string(),
        integer: (integer_lower, integer_upper),
        float: (lower, upper),
    })
}

fn in_range<T: PartialOrd>(value: &T, lower: &RangeBound<T>, upper: &RangeBound<T>) -> bool {
    let above = match lower {
        RangeBound::Included(bound) => value >= bound,
        RangeBound::Excluded(bound) => value > bound,
        RangeBound::Unbounded => true,
    };
    let below = match upper {
        RangeBound::Included(bound) => value <= bound,
        RangeBound::Excluded(bound) => value < bound,
        RangeBound::Unbounded => true,
    };
    above && below
}

fn resolve_time(point: TimePoint, now_nanos: i64) -> i64 {
    match point {
        TimePoint::Absolute { unix_nanos } => unix_nanos,
        TimePoint::BeforeNow(ago) => {
            now_nanos.saturating_sub(i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX))
        }
    }
}

/// The tokens of each value of one text field.
type ValueTokens = Vec<Vec<Token>>;

/// A token of a text value: its text and position, as the index records them.
struct Token {
    text: String,
    position: usize,
}

/// One leaf value of the attributes, under its dotted path.
struct AttributeLeaf {
    path: String,
    value: OwnedValue,
}

/// One document during one match: tokens and flattened attributes are computed on first
/// use and shared by every node of the plan.
struct DocumentView<'d> {
    document: &'d TantivyDocument,
    attributes_field: Option<Field>,
    analyzer: TextAnalyzer,
    /// Per text field, the tokens of each of its values.
    tokens: RefCell<Vec<(Field, Rc<ValueTokens>)>>,
    attributes: OnceCell<Vec<AttributeLeaf>>,
    now_nanos: i64,
}

impl DocumentView<'_> {
    fn matches(&self, plan: &Plan) -> bool {
        match plan {
            Plan::All => true,
            Plan::Nothing => false,
            Plan::And(plans) => plans.iter().all(|plan| self.matches(plan)),
            Plan::Or(plans) => plans.iter().any(|plan| self.matches(plan)),
            Plan::Not(plan) => !self.matches(plan),
            Plan::KeywordIs { field, text } => self.texts(*field).any(|value| value == text),
            Plan::KeywordPattern { field, regex } => {
                self.texts(*field).any(|value| regex.is_match(value))
            }
            Plan::KeywordRange {
                field,
                lower,
                upper,
            } => self
                .texts(*field)
                .any(|value| in_range(&value.to_string(), lower, upper)),
            Plan::KeywordPresent { field } => self.texts(*field).any(|value| !value.is_empty()),
            Plan::Words { field, tokens } => self
                .tokens_of(*field)
                .iter()
                .any(|value_tokens| contains_phrase(value_tokens, tokens)),
            Plan::TokenPattern { field, regex } => self
                .tokens_of(*field)
                .iter()
                .flatten()
                .any(|token| regex.is_match(&token.text)),
            Plan::TokensPresent { field } => self
                .tokens_of(*field)
                .iter()
                .any(|value_tokens| !value_tokens.is_empty()),
            Plan::NumberRange {
                field,
                lower,
                upper,
            } => {
                let lower = widen(lower);
                let upper = widen(upper);
                self.document.get_all(*field).any(|value| {
                    let number = match (value.as_u64(), value.as_i64()) {
                        (Some(unsigned), _) => i128::from(unsigned),
                        (None, Some(signed)) => i128::from(signed),
                        (None, None) => return false,
                    };
                    in_range(&number, &lower, &upper)
                })
            }
            Plan::TimeRange {
                field,
                lower,
                upper,
            } => {
                let resolve = |bound: &RangeBound<TimePoint>| match bound {
                    RangeBound::Included(point) => {
                        RangeBound::Included(resolve_time(*point, self.now_nanos))
                    }
                    RangeBound::Excluded(point) => {
                        RangeBound::Excluded(resolve_time(*point, self.now_nanos))
                    }
                    RangeBound::Unbounded => RangeBound::Unbounded,
                };
                let (lower, upper) = (resolve(lower), resolve(upper));
                self.document.get_all(*field).any(|value| {
                    value
                        .as_datetime()
                        .is_some_and(|time| in_range(&time.into_timestamp_nanos(), &lower, &upper))
                })
            }
            Plan::ValuePresent { field } => self.document.get_first(*field).is_some(),
            Plan::AttributeWords { path, tokens } => {
                let mut analyzer = self.analyzer.clone();
                let mut found = vec![false; tokens.len()];
                for leaf in self.attributes_at(path) {
                    let OwnedValue::Str(text) = &leaf.value else {
                        continue;
                    };
                    let mut stream = analyzer.token_stream(text);
                    stream.process(&mut |token| {
                        for (wanted, seen) in tokens.iter().zip(found.iter_mut()) {
                            if *wanted == token.text {
                                *seen = true;
                            }
                        }
                    });
                }
                found.iter().all(|seen| *seen)
            }
            Plan::AttributeNumber { path, number } => self
                .attributes_at(path)
                .any(|leaf| indexed_number(&leaf.value).is_some_and(|own| same(&own, number))),
            Plan::AttributeRange {
                path,
                integer,
                float,
            } => self.attributes_at(path).any(|leaf| {
                match indexed_number(&leaf.value) {
                    Some(NumericalValue::I64(value)) => in_range(&value, &integer.0, &integer.1),
                    Some(NumericalValue::F64(value)) => in_range(&value, &float.0, &float.1),
                    // Filed under the u64 type, which the compiled range does not cover.
                    Some(NumericalValue::U64(_)) | None => false,
                }
            }),
            Plan::AttributePresent { path } => {
                let mut analyzer = self.analyzer.clone();
                self.attributes_at(path).any(|leaf| match &leaf.value {
                    // A string is indexed only through its tokens.
                    OwnedValue::Str(text) => {
                        let mut any = false;
                        analyzer.token_stream(text).process(&mut |_| any = true);
                        any
                    }
                    OwnedValue::F64(value) => value.is_finite(),
                    OwnedValue::Null => false,
                    _ => true,
                })
            }
        }
    }

    fn texts(&self, field: Field) -> impl Iterator<Item = &str> {
        self.document
            .get_all(field)
            .filter_map(|value| value.as_str())
    }

    /// Tokens of each value of a text field, tokenized once per document.
    fn tokens_of(&self, field: Field) -> Rc<ValueTokens> {
        if let Some((_, tokens)) = self.tokens.borrow().iter().find(|(f, _)| *f == field) {
            return tokens.clone();
        }
        let mut analyzer = self.analyzer.clone();
        let mut per_value = Vec::new();
        for text in self.texts(field) {
            let mut tokens = Vec::new();
            analyzer.token_stream(text).process(&mut |token| {
                tokens.push(Token {
                    text: token.text.clone(),
                    position: token.position,
                })
            });
            per_value.push(tokens);
        }
        let per_value = Rc::new(per_value);
        self.tokens.borrow_mut().push((field, per_value.clone()));
        per_value
    }

    fn attributes_at<'s>(&'s self, path: &'s str) -> impl Iterator<Item = &'s AttributeLeaf> {
        self.attributes
            .get_or_init(|| {
                let mut leaves = Vec::new();
                let Some(field) = self.attributes_field else {
                    return leaves;
                };
                for value in self.document.get_all(field) {
                    if let OwnedValue::Object(entries) = OwnedValue::from(value) {
                        flatten_object("", entries, &mut leaves);
                    }
                }
                leaves
            })
            .iter()
            .filter(move |leaf| leaf.path == path)
    }
}

/// Flattens an object into leaves under dotted paths; arrays put each element under the
/// array's own path, as tantivy indexes them.
fn flatten_object(
    prefix: &str,
    entries: Vec<(String, OwnedValue)>,
    leaves: &mut Vec<AttributeLeaf>,
) {
    for (key, value) in entries {
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        flatten_value(path, value, leaves);
    }
}

fn flatten_value(path: String, value: OwnedValue, leaves: &mut Vec<AttributeLeaf>) {
    match value {
        OwnedValue::Object(entries) => flatten_object(&path, entries, leaves),
        OwnedValue::Array(elements) => {
            for element in elements {
                flatten_value(path.clone(), element, leaves);
            }
        }
        leaf => leaves.push(AttributeLeaf { path, value: leaf }),
    }
}

/// A JSON leaf's number as the index files it: normalized, finite floats only.
fn indexed_number(value: &OwnedValue) -> Option<NumericalValue> {
    let number = match value {
        OwnedValue::I64(value) => NumericalValue::I64(*value),
        OwnedValue::U64(value) => NumericalValue::U64(*value),
        OwnedValue::F64(value) if value.is_finite() => NumericalValue::F64(*value),
        _ => return None,
    };
    Some(number.normalize())
}

fn same(left: &NumericalValue, right: &NumericalValue) -> bool {
    match (left, right) {
        (NumericalValue::I64(a), NumericalValue::I64(b)) => a == b,
        (NumericalValue::U64(a), NumericalValue::U64(b)) => a == b,
        (NumericalValue::F64(a), NumericalValue::F64(b)) => a == b,
        _ => false,
    }
}

fn widen(bound: &RangeBound<i64>) -> RangeBound<i128> {
    match bound {
        RangeBound::Included(value) => RangeBound::Included(i128::from(*value)),
        RangeBound::Excluded(value) => RangeBound::Excluded(i128::from(*value)),
        RangeBound::Unbounded => RangeBound::Unbounded,
    }
}

/// Whether `wanted` occurs at consecutive positions among `tokens` (one wanted token:
/// anywhere).
fn contains_phrase(tokens: &[Token], wanted: &[String]) -> bool {
    let Some(first) = wanted.first() else {
        return false;
    };
    tokens.iter().enumerate().any(|(start, token)| {
        if token.text != *first {
            return false;
        }
        let mut index = start;
        for (offset, next) in wanted.iter().enumerate().skip(1) {
            // Positions ascend; a dropped token leaves a gap that breaks the phrase.
            index += 1;
            match tokens.get(index) {
                Some(candidate)
                    if candidate.position == token.position + offset && candidate.text == *next => {
                }
                _ => return false,
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tantivy::collector::DocSetCollector;
    use tantivy::schema::{
        DateOptions, DateTimePrecision, IndexRecordOption, JsonObjectOptions, NumericOptions,
        Schema, TextFieldIndexing, TextOptions,
    };
    use tantivy::{DateTime, Index};

    use super::*;
    use crate::engine::{NoVersions, VersionResolver};
    use crate::parse;

    const SECOND: i64 = 1_000_000_000;
    /// The "now" of every test: documents are timestamped in the hour before it.
    const NOW: i64 = 10_000 * SECOND;

    /// The server's log schema, field for field (this crate does not depend on it).
    fn log_schema() -> Schema {
        let keyword = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            )
            .set_stored()
            .set_fast("raw");
        let mut builder = Schema::builder();
        builder.add_date_field(
            "timestamp",
            DateOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored()
                .set_precision(DateTimePrecision::Nanoseconds),
        );
        for name in [
            "service",
            "image",
            "version",
            "image_id",
            "generation",
            "instance",
            "host",
            "env",
            "region",
            "zone",
            "level",
            "source",
            "scope",
        ] {
            builder.add_text_field(name, keyword.clone());
        }
        builder.add_u64_field(
            "severity",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        );
        builder.add_text_field(
            "body",
            TextOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                        .set_fieldnorms(false),
                )
                .set_stored(),
        );
        builder.add_json_field(
            "attrs",
            JsonObjectOptions::default()
                .set_stored()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqs)
                        .set_fieldnorms(false),
                )
                .set_expand_dots_enabled(),
        );
        builder.add_u64_field("_row", NumericOptions::default().set_fast().set_stored());
        builder.build()
    }

    struct Line {
        service: &'static str,
        version: &'static str,
        level: &'static str,
        severity: u64,
        seconds_ago: i64,
        body: Option<&'static str>,
        attrs: Vec<(&'static str, OwnedValue)>,
    }

    fn line(service: &'static str, version: &'static str, body: &'static str) -> Line {
        Line {
            service,
            version,
            level: "info",
            severity: 9,
            seconds_ago: 60,
            body: Some(body),
            attrs: Vec::new(),
        }
    }

    /// Lines chosen for the corners where an in-memory reading could drift from the
    /// index: punctuation and case in the body, a dropped long token inside a phrase,
    /// empty keywords, a missing body, nested and dotted attribute keys, arrays, strings
    /// that look like numbers, integral floats, huge unsigned numbers and booleans.
    fn lines() -> Vec<Line> {
        vec![
            Line {
                level: "error",
                severity: 17,
                attrs: vec![
                    ("http.status", OwnedValue::I64(500)),
                    ("url", OwnedValue::Str("/api/Users".into())),
                ],
                ..line("web", "v1", "Connection REFUSED by 10.0.0.7:5432")
            },
            Line {
                attrs: vec![
                    (
                        "http",
                        OwnedValue::Object(vec![("status".into(), OwnedValue::I64(200))]),
                    ),
                    ("duration_ms", OwnedValue::F64(12.5)),
                ],
                seconds_ago: 3_000,
                ..line("web", "v2", "request served; refused later")
            },
            Line {
                level: "warn",
                severity: 13,
                attrs: vec![
                    ("duration_ms", OwnedValue::F64(300.0)),
                    (
                        "tags",
                        OwnedValue::Array(vec![
                            OwnedValue::Str("blue".into()),
                            OwnedValue::Str("canary build".into()),
                        ]),
                    ),
                ],
                ..line("api", "a1", "Timeout talking to db-primary")
            },
            Line {
                level: "debug",
                severity: 5,
                seconds_ago: 7_000,
                attrs: vec![
                    ("code", OwnedValue::Str("500".into())),
                    ("big", OwnedValue::U64(u64::MAX)),
                    ("flag", OwnedValue::Bool(true)),
                    ("empty", OwnedValue::Str("".into())),
                    ("nothing", OwnedValue::Null),
                ],
                ..line("api", "a2", "cache warm")
            },
            // A token of 40+ bytes is dropped by the analyzer: "connection ... refused"
            // around it is not a phrase.
            Line {
                ..line(
                    "batch",
                    "b1",
                    "connection abcdefghijabcdefghijabcdefghijabcdefghijxyz refused",
                )
            },
            Line {
                body: None,
                level: "",
                severity: 0,
                ..line("", "", "")
            },
            Line {
                ..line("web-canary", "v2", "!!! ---")
            },
        ]
    }

    fn document(schema: &Schema, row: usize, line: &Line) -> TantivyDocument {
        let field = |name: &str| schema.get_field(name).unwrap();
        let mut document = TantivyDocument::new();
        document.add_date(
            field("timestamp"),
            DateTime::from_timestamp_nanos(NOW - line.seconds_ago * SECOND),
        );
        document.add_text(field("service"), line.service);
        document.add_text(field("version"), line.version);
        document.add_text(field("instance"), format!("i-{row}"));
        document.add_text(field("level"), line.level);
        document.add_text(field("source"), "/var/log/app.log");
        document.add_u64(field("severity"), line.severity);
        if let Some(body) = line.body {
            document.add_text(field("body"), body);
        }
        if !line.attrs.is_empty() {
            let attrs = line
                .attrs
                .iter()
                .map(|(key, value)| (key.to_string(), value.clone()))
                .collect::<std::collections::BTreeMap<_, _>>();
            document.add_object(field("attrs"), attrs);
        }
        document.add_u64(field("_row"), row as u64);
        document
    }

    struct Versions;

    impl VersionResolver for Versions {
        fn resolve(
            &self,
            alias: VersionAlias,
            services: Option<&BTreeSet<String>>,
        ) -> Vec<(String, String)> {
            let known = [("web", "v2", "v1"), ("api", "a2", "a1")];
            known
                .iter()
                .filter(|(service, ..)| services.is_none_or(|s| s.contains(*service)))
                .map(|(service, latest, previous)| {
                    let version = match alias {
                        VersionAlias::Latest => latest,
                        VersionAlias::Previous => previous,
                    };
                    (service.to_string(), version.to_string())
                })
                .collect()
        }
    }

    /// Rows the compiled tantivy query finds and rows the matcher accepts, for one query.
    fn both_ways(query: &str) -> (BTreeSet<usize>, BTreeSet<usize>) {
        let schema = log_schema();
        let documents: Vec<TantivyDocument> = lines()
            .iter()
            .enumerate()
            .map(|(row, line)| document(&schema, row, line))
            .collect();
        let index = Index::create_in_ram(schema.clone());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for document in &documents {
            writer.add_document(document.clone()).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let context = EngineContext {
            schema: &schema,
            versions: &Versions,
            now_nanos: NOW,
        };
        let filter = parse(query)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .filter;
        let compiled = compile_filter(&filter, &context).unwrap_or_else(|e| panic!("{query}: {e}"));
        let row_field = schema.get_field("_row").unwrap();
        let indexed: BTreeSet<usize> = searcher
            .search(compiled.as_ref(), &DocSetCollector)
            .unwrap()
            .into_iter()
            .map(|address| {
                let stored: TantivyDocument = searcher.doc(address).unwrap();
                stored.get_first(row_field).unwrap().as_u64().unwrap() as usize
            })
            .collect();
        let matcher = Matcher::new(&filter, &context).unwrap();
        let matched: BTreeSet<usize> = documents
            .iter()
            .enumerate()
            .filter(|(_, document)| matcher.matches(document, NOW))
            .map(|(row, _)| row)
            .collect();
        (indexed, matched)
    }

    /// Queries with the rows they must match, so that agreement with the index is not
    /// agreement on nothing.
    const EXPECTED: &[(&str, &[usize])] = &[
        ("*", &[0, 1, 2, 3, 4, 5, 6]),
        ("", &[0, 1, 2, 3, 4, 5, 6]),
        ("refused", &[0, 1, 4]),
        ("REFUSED", &[0, 1, 4]),
        ("\"connection refused\"", &[0]),
        ("\"refused by 10.0.0.7\"", &[0]),
        ("10.0.0.7", &[0]),
        ("db-primary", &[2]),
        ("\"primary talking\"", &[]),
        ("service:web", &[0, 1]),
        ("service:Web", &[]),
        ("service:web*", &[0, 1, 6]),
        ("service:/w.b/", &[0, 1]),
        ("service:*", &[0, 1, 2, 3, 4, 6]),
        ("-service:*", &[5]),
        ("service:[a TO c]", &[2, 3, 4]),
        ("service:{api TO web}", &[4]),
        ("level:error OR level:warn", &[0, 2]),
        ("NOT level:info", &[0, 2, 3, 5]),
        ("-level:info -service:api", &[0, 5]),
        ("refused AND NOT service:batch", &[0, 1]),
        ("(service:web OR service:api) level:info", &[1]),
        ("time*", &[2]),
        ("Conn?ction", &[0, 4]),
        ("/tim.*/", &[2]),
        ("/TIMEOUT/", &[2]),
        ("body:*", &[0, 1, 2, 3, 4]),
        ("severity:>=13", &[0, 2]),
        ("severity:<9", &[3, 5]),
        ("severity:[5 TO 13}", &[1, 3, 4, 6]),
        ("severity:9", &[1, 4, 6]),
        ("timestamp:>now-10m", &[0, 2, 4, 5, 6]),
        ("timestamp:<now-1h", &[3]),
        ("attrs.http.status:500", &[0]),
        ("attrs.http.status:200", &[1]),
        ("attrs.http.status:>=200", &[0, 1]),
        ("attrs.http.status:[201 TO 500}", &[]),
        ("attrs.duration_ms:>12", &[1, 2]),
        ("attrs.duration_ms:300", &[2]),
        ("attrs.duration_ms:12.5", &[1]),
        ("attrs.duration_ms:[12.6 TO 300]", &[2]),
        ("attrs.code:500", &[3]),
        ("attrs.code:>100", &[]),
        ("attrs.big:>0", &[]),
        ("attrs.url:users", &[0]),
        ("attrs.url:\"users api\"", &[0]),
        ("attrs.tags:canary", &[2]),
        ("attrs.tags:\"build canary\"", &[2]),
        ("attrs.flag:true", &[]),
        ("attrs.http:*", &[]),
        ("attrs.http.status:*", &[0, 1]),
        ("attrs.empty:*", &[]),
        ("attrs.nothing:*", &[]),
        ("attrs.flag:*", &[3]),
        ("attrs.big:*", &[3]),
        ("version:latest", &[1, 3]),
        ("version:previous service:api", &[2]),
        ("\"connection refused\" OR version:latest", &[0, 1, 3]),
    ];

    #[test]
    fn matcher_agrees_with_the_compiled_query_on_every_line() {
        for (query, expected) in EXPECTED {
            let (indexed, matched) = both_ways(query);
            let expected: BTreeSet<usize> = expected.iter().copied().collect();
            assert_eq!(indexed, expected, "index for {query:?}");
            assert_eq!(matched, indexed, "matcher against the index for {query:?}");
        }
    }

    #[test]
    fn filters_the_engine_rejects_are_rejected_with_the_same_error() {
        let schema = log_schema();
        let context = EngineContext {
            schema: &schema,
            versions: &NoVersions,
            now_nanos: NOW,
        };
        // Each parses, and fails only when compiled.
        for query in ["attrs.url:/x.*/", "\"!!!\"", "attrs.url:[a TO b]"] {
            let parsed = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
            let compiled = compile_filter(&parsed.filter, &context).err();
            let matched = Matcher::new(&parsed.filter, &context).err();
            assert!(compiled.is_some(), "{query} compiles");
            assert_eq!(matched, compiled, "{query}");
        }
    }

    #[test]
    fn relative_times_slide_with_the_now_of_each_call() {
        let schema = log_schema();
        let context = EngineContext {
            schema: &schema,
            versions: &NoVersions,
            now_nanos: NOW,
        };
        let filter = parse("timestamp:>now-5m").unwrap().filter;
        let matcher = Matcher::new(&filter, &context).unwrap();
        let fresh = document(&schema, 0, &line("web", "v1", "hello"));
        assert!(matcher.matches(&fresh, NOW));
        assert!(!matcher.matches(&fresh, NOW + 10 * 60 * SECOND));
    }
}
