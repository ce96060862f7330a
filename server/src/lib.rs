//! Epitaph's server: OTLP ingest into a write-ahead log, tantivy splits keyed by image
//! version and generation, an instance registry, and an HTTP JSON API.
//!
//! The path of a log line: [`ingest`] checks and stores the request in the [`wal`]
//! (fsync, then ack); the WAL writer hands the record to the [`index`]er, which adds it to
//! the open split and commits on an interval; [`http`] searches the splits. The
//! [`checkpoint`] ties them together so that recovery replays exactly what is missing.

pub mod checkpoint;
pub mod config;
pub mod fsutil;
pub mod http;
pub mod index;
pub mod ingest;
pub mod registry;
pub mod server;
pub mod tail;
pub mod wal;
