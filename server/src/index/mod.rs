//! The index: the log schema, splits, the indexer that fills them and the search that
//! reads them.

pub mod aggregate;
pub mod catalog;
pub mod compaction;
pub mod indexer;
pub mod metric_filter;
pub mod metric_query;
pub mod metric_schema;
pub mod metric_wire;
pub mod point_document;
pub mod schema;
pub mod search;
pub mod series;
pub mod split;
