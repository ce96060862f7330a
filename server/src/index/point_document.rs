//! A metric data point's document, as tantivy indexes it.
//!
//! tantivy indexes any type that implements its `Document` trait. A point's document is a
//! handful of numbers, so this one keeps them inline: building one allocates nothing but
//! a histogram's or summary's buckets, where tantivy's own document allocates its values
//! on the indexer thread and frees them on an indexing thread, once per point.

use tantivy::Document;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
use tantivy::schema::{Field, Value};

/// The most numbers a point has: timestamp, start timestamp and series, then a
/// histogram's count, sum, min and max.
const MAX_NUMBERS: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    I64(i64),
    U64(u64),
    F64(f64),
}

/// One point's values by field; each field at most once.
#[derive(Debug, Clone, PartialEq)]
pub struct PointDocument {
    numbers: [(Field, Number); MAX_NUMBERS],
    len: usize,
    buckets: Option<(Field, Vec<u8>)>,
}

impl Default for PointDocument {
    fn default() -> Self {
        PointDocument {
            numbers: [(Field::from_field_id(0), Number::U64(0)); MAX_NUMBERS],
            len: 0,
            buckets: None,
        }
    }
}

impl PointDocument {
    pub fn add_i64(&mut self, field: Field, value: i64) {
        self.push(field, Number::I64(value));
    }

    pub fn add_u64(&mut self, field: Field, value: u64) {
        self.push(field, Number::U64(value));
    }

    pub fn add_f64(&mut self, field: Field, value: f64) {
        self.push(field, Number::F64(value));
    }

    pub fn add_optional_f64(&mut self, field: Field, value: Option<f64>) {
        if let Some(value) = value {
            self.add_f64(field, value);
        }
    }

    pub fn set_bytes(&mut self, field: Field, bytes: Vec<u8>) {
        self.buckets = Some((field, bytes));
    }

    fn push(&mut self, field: Field, number: Number) {
        assert!(
            self.len < MAX_NUMBERS,
            "a point document holds at most {MAX_NUMBERS} numbers"
        );
        self.numbers[self.len] = (field, number);
        self.len += 1;
    }

    /// The first `u64` value of `field`.
    #[cfg(test)]
    pub fn u64_value(&self, field: Field) -> Option<u64> {
        self.numbers[..self.len]
            .iter()
            .find_map(|(f, number)| match number {
                Number::U64(value) if *f == field => Some(*value),
                _ => None,
            })
    }
}

/// A value of a [`PointDocument`]: always a leaf.
#[derive(Debug, Clone)]
pub struct PointValue<'a>(ReferenceValueLeaf<'a>);

impl<'a> Value<'a> for PointValue<'a> {
    type ArrayIter = std::iter::Empty<PointValue<'a>>;
    type ObjectIter = std::iter::Empty<(&'a str, PointValue<'a>)>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        ReferenceValue::Leaf(self.0.clone())
    }
}

/// The values of a [`PointDocument`]: its numbers, then its bytes.
pub struct PointValues<'a> {
    numbers: std::slice::Iter<'a, (Field, Number)>,
    bytes: Option<&'a (Field, Vec<u8>)>,
}

impl<'a> Iterator for PointValues<'a> {
    type Item = (Field, PointValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(&(field, number)) = self.numbers.next() {
            let leaf = match number {
                Number::I64(value) => ReferenceValueLeaf::I64(value),
                Number::U64(value) => ReferenceValueLeaf::U64(value),
                Number::F64(value) => ReferenceValueLeaf::F64(value),
            };
            return Some((field, PointValue(leaf)));
        }
        let (field, bytes) = self.bytes.take()?;
        Some((*field, PointValue(ReferenceValueLeaf::Bytes(bytes))))
    }
}

impl Document for PointDocument {
    type Value<'a> = PointValue<'a>;
    type FieldsValuesIter<'a> = PointValues<'a>;

    fn iter_fields_and_values(&self) -> PointValues<'_> {
        PointValues {
            numbers: self.numbers[..self.len].iter(),
            bytes: self.buckets.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tantivy::schema::{BytesOptions, NumericOptions, Schema};

    use super::*;

    #[test]
    fn a_point_document_reads_as_the_same_tantivy_document() {
        let mut builder = Schema::builder();
        let fast = NumericOptions::default().set_fast();
        let signed = builder.add_i64_field("i", fast.clone());
        let unsigned = builder.add_u64_field("u", fast.clone());
        let float = builder.add_f64_field("f", fast);
        let bytes = builder.add_bytes_field("b", BytesOptions::default().set_fast());
        let schema = builder.build();

        let mut point = PointDocument::default();
        point.add_i64(signed, -3);
        point.add_u64(unsigned, 7);
        point.add_optional_f64(float, None);
        point.add_optional_f64(float, Some(2.5));
        point.set_bytes(bytes, vec![1, 2]);
        let mut expected = tantivy::TantivyDocument::new();
        expected.add_i64(signed, -3);
        expected.add_u64(unsigned, 7);
        expected.add_f64(float, 2.5);
        expected.add_bytes(bytes, &[1u8, 2][..]);
        assert_eq!(point.to_json(&schema), expected.to_json(&schema));
        assert_eq!(point.u64_value(unsigned), Some(7));
        assert_eq!(point.u64_value(signed), None);
    }
}
