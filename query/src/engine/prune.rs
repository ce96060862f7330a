//! Split pruning: the identity values a matching line must have.
//!
//! A split's metadata lists every service, version, generation and instance it holds. If
//! the filter says a matching line's service is one of `{a, b}` and a split holds neither,
//! no line of that split can match and it is never opened.
//!
//! The derivation is deliberately narrow so that it is always sound: only exact terms on
//! those four fields count, combined through AND (a line must satisfy every operand, so
//! the sets intersect) and OR (a line satisfies some operand, so the sets unite — and only
//! when every operand constrains the field). Everything else — negations, wildcards,
//! regexes, ranges, `version:latest` — says nothing, which never prunes.
//!
//! [`required_time_range`] does the same for `timestamp` comparisons, ranges and terms,
//! against a split's time range.

use std::collections::BTreeSet;

use crate::ast::{Bound, CompareOp, Filter, TimePoint, TypedValue, Value};
use crate::fields::{FieldRef, IdentityField};

/// For each identity set kept in split metadata, the values a matching line must have
/// one of; `None` when the filter does not constrain the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredIdentity {
    pub services: Option<BTreeSet<String>>,
    pub versions: Option<BTreeSet<String>>,
    pub generations: Option<BTreeSet<String>>,
    pub instances: Option<BTreeSet<String>>,
}

impl RequiredIdentity {
    /// Whether a split holding these values may hold a matching line: false only when a
    /// constrained field's required set shares no value with the split's.
    pub fn may_match(
        &self,
        services: &BTreeSet<String>,
        versions: &BTreeSet<String>,
        generations: &BTreeSet<String>,
        instances: &BTreeSet<String>,
    ) -> bool {
        let overlaps = |required: &Option<BTreeSet<String>>, present: &BTreeSet<String>| {
            required
                .as_ref()
                .is_none_or(|required| !required.is_disjoint(present))
        };
        overlaps(&self.services, services)
            && overlaps(&self.versions, versions)
            && overlaps(&self.generations, generations)
            && overlaps(&self.instances, instances)
    }

    fn slot(&mut self, field: IdentityField) -> Option<&mut Option<BTreeSet<String>>> {
        match field {
            IdentityField::Service => Some(&mut self.services),
            IdentityField::Version => Some(&mut self.versions),
            IdentityField::Generation => Some(&mut self.generations),
            IdentityField::Instance => Some(&mut self.instances),
            _ => None,
        }
    }

    fn slots(&mut self) -> [&mut Option<BTreeSet<String>>; 4] {
        [
            &mut self.services,
            &mut self.versions,
            &mut self.generations,
            &mut self.instances,
        ]
    }
}

/// The identity values a line matching `filter` must have (see the module docs).
pub fn required_identity(filter: &Filter) -> RequiredIdentity {
    let mut required = RequiredIdentity::default();
    match filter {
        Filter::Term {
            field: Some(FieldRef::Identity(field)),
            value,
            ..
        } => {
            if let Some(slot) = required.slot(*field) {
                *slot = Some(BTreeSet::from([value.text.clone()]));
            }
        }
        Filter::And { operands, .. } => {
            for operand in operands {
                let mut operand = required_identity(operand);
                for (slot, from_operand) in required.slots().into_iter().zip(operand.slots()) {
                    *slot = match (slot.take(), from_operand.take()) {
                        (Some(kept), Some(more)) => {
                            Some(kept.intersection(&more).cloned().collect())
                        }
                        (kept, more) => kept.or(more),
                    };
                }
            }
        }
        Filter::Or { operands, .. } => {
            let mut operands = operands.iter().map(required_identity);
            let Some(first) = operands.next() else {
                return required;
            };
            required = first;
            for mut operand in operands {
                for (slot, from_operand) in required.slots().into_iter().zip(operand.slots()) {
                    *slot = match (slot.take(), from_operand.take()) {
                        (Some(mut kept), Some(more)) => {
                            kept.extend(more);
                            Some(kept)
                        }
                        // One operand leaves the field free: so does the disjunction.
                        _ => None,
                    };
                }
            }
        }
        _ => {}
    }
    required
}

/// The times (nanoseconds, both ends inclusive) a matching line's timestamp must fall in;
/// `None` for an open end. Exclusive bounds are kept as inclusive ones: a slightly wider
/// range never prunes a split that could match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequiredTimeRange {
    pub start_nanos: Option<i64>,
    pub end_nanos: Option<i64>,
}

/// The time range a line matching `filter` must be in: from `timestamp` terms, ranges
/// and comparisons, ANDed (the ranges intersect) or ORed (their hull, when every operand
/// bounds that end). `now` is the query's now, for `now-15m`.
pub fn required_time_range(filter: &Filter, now_nanos: i64) -> RequiredTimeRange {
    let time = |value: &Value| match value.typed {
        TypedValue::Time(TimePoint::Absolute { unix_nanos }) => Some(unix_nanos),
        TypedValue::Time(TimePoint::BeforeNow(ago)) => {
            Some(now_nanos.saturating_sub(i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX)))
        }
        _ => None,
    };
    let bound = |bound: &Bound| match bound {
        Bound::Included(value) | Bound::Excluded(value) => time(value),
        Bound::Unbounded => None,
    };
    match filter {
        Filter::Term {
            field: Some(FieldRef::Timestamp),
            value,
            ..
        } => RequiredTimeRange {
            start_nanos: time(value),
            end_nanos: time(value),
        },
        Filter::Range {
            field: FieldRef::Timestamp,
            lower,
            upper,
            ..
        } => RequiredTimeRange {
            start_nanos: bound(lower),
            end_nanos: bound(upper),
        },
        Filter::Compare {
            field: FieldRef::Timestamp,
            op,
            value,
            ..
        } => match op {
            CompareOp::Greater | CompareOp::GreaterOrEqual => RequiredTimeRange {
                start_nanos: time(value),
                end_nanos: None,
            },
            CompareOp::Less | CompareOp::LessOrEqual => RequiredTimeRange {
                start_nanos: None,
                end_nanos: time(value),
            },
        },
        Filter::And { operands, .. } => {
            let mut range = RequiredTimeRange::default();
            for operand in operands {
                let operand = required_time_range(operand, now_nanos);
                range.start_nanos = match (range.start_nanos, operand.start_nanos) {
                    (Some(kept), Some(more)) => Some(kept.max(more)),
                    (kept, more) => kept.or(more),
                };
                range.end_nanos = match (range.end_nanos, operand.end_nanos) {
                    (Some(kept), Some(more)) => Some(kept.min(more)),
                    (kept, more) => kept.or(more),
                };
            }
            range
        }
        Filter::Or { operands, .. } => {
            let mut ranges = operands
                .iter()
                .map(|operand| required_time_range(operand, now_nanos));
            let Some(mut range) = ranges.next() else {
                return RequiredTimeRange::default();
            };
            for operand in ranges {
                range.start_nanos = range
                    .start_nanos
                    .zip(operand.start_nanos)
                    .map(|(kept, more)| kept.min(more));
                range.end_nanos = range
                    .end_nanos
                    .zip(operand.end_nanos)
                    .map(|(kept, more)| kept.max(more));
            }
            range
        }
        _ => RequiredTimeRange::default(),
    }
}
