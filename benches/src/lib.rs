//! Epitaph's benchmarks: the shared log corpus, the OTLP load generator and the
//! bare-tantivy ceiling they are compared against.
//!
//! - [`corpus`] generates realistic, seeded service logs and packs them into OTLP
//!   requests, so that every benchmark indexes the same documents.
//! - [`loadgen`] sends pre-encoded batches to an OTLP/gRPC endpoint as fast as it
//!   acknowledges them (or at a set rate) and reports throughput and ack latency.
//! - The binaries (`epitaph-loadgen`, `bare-tantivy`, `epitaph-corpus`) and
//!   `ingest.sh` are described in the crate's README.md.

pub mod corpus;
pub mod loadgen;
