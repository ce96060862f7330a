//! The server's configuration: one struct, read from an optional TOML file, overridden by
//! `EPITAPH_*` environment variables and then by flags. Every default works on a laptop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

use crate::index::search::SearchLimits;

/// Command-line flags. Each is optional so that an absent flag falls through to the
/// environment, then to the TOML file, then to the default.
#[derive(Debug, Parser)]
#[command(
    name = "epitaph-server",
    version,
    about = "Epitaph's log and metrics server"
)]
pub struct Flags {
    /// TOML configuration file; flags and environment override it.
    #[arg(long, env = "EPITAPH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the WAL, splits and registry [default: ./epitaph-data]
    #[arg(long, env = "EPITAPH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 0.0.0.0:4317]
    #[arg(long, env = "EPITAPH_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// HTTP API and UI listen address [default: 127.0.0.1:7080]
    #[arg(long, env = "EPITAPH_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// How often new data is committed and becomes searchable [default: 2s]
    #[arg(long, env = "EPITAPH_COMMIT_INTERVAL", value_parser = humantime::parse_duration)]
    pub commit_interval: Option<Duration>,
    /// Heartbeat interval the server asks agents for [default: 10s]
    #[arg(long, env = "EPITAPH_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Silence after which a live instance counts as lost [default: 60s]
    #[arg(long, env = "EPITAPH_LOST_AFTER", value_parser = humantime::parse_duration)]
    pub lost_after: Option<Duration>,
    /// Largest accepted gRPC request, after decompression [default: 16777216]
    #[arg(long, env = "EPITAPH_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// File holding the bearer token that gRPC clients must present (none: no check)
    #[arg(long, env = "EPITAPH_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Ingest time after which the open split is sealed and a new one begins [default: 10m]
    #[arg(long, env = "EPITAPH_SPLIT_WINDOW", value_parser = humantime::parse_duration)]
    pub split_window: Option<Duration>,
    /// Ingest time after which the open metric split is sealed [default: 1h]
    #[arg(long, env = "EPITAPH_METRIC_SPLIT_WINDOW", value_parser = humantime::parse_duration)]
    pub metric_split_window: Option<Duration>,
    /// Wall time one API query may take before it is stopped with a 503 [default: 30s]
    #[arg(long, env = "EPITAPH_QUERY_TIME_LIMIT", value_parser = humantime::parse_duration)]
    pub query_time_limit: Option<Duration>,
}

/// The resolved configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub lost_after: Duration,
    pub max_request_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub split_window: Duration,
    /// The split window of metric splits. Longer than the logs' because a metric split
    /// keeps each series' labels once and its points as runs: the more points a series
    /// has in one split, the less each costs (see `index::series`).
    #[serde(with = "humantime_serde")]
    pub metric_split_window: Duration,
    pub auth_token_file: Option<PathBuf>,
    /// A split is sealed once it holds this many documents, whatever its age.
    pub split_max_docs: u64,
    /// WAL segment size at which a new segment file begins.
    pub wal_segment_bytes: u64,
    /// Bytes acknowledged but not yet indexed above which ingest answers UNAVAILABLE.
    pub max_indexing_backlog_bytes: u64,
    /// Memory budget of the open split's tantivy writer.
    pub indexer_memory_bytes: usize,
    /// Indexing threads of the open split's tantivy writer.
    pub indexer_threads: usize,
    /// Wall time one API query may take; past it the query stops with a 503.
    #[serde(with = "humantime_serde")]
    pub query_time_limit: Duration,
    /// The largest page (`limit`) of `/api/v1/search`.
    pub max_search_hits: usize,
    /// The most lines `/api/v1/context` returns on each side of a hit.
    pub max_context_lines: usize,
    /// The most values `/api/v1/fields` returns per field.
    pub max_facet_values: usize,
    /// The most lines the `patterns` stage reads per group; its answer says when it
    /// stopped there.
    pub patterns_max_lines: usize,
    /// Threads that search the splits of one query in parallel.
    pub search_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./epitaph-data"),
            grpc_addr: "0.0.0.0:4317".parse().expect("literal address"),
            http_addr: "127.0.0.1:7080".parse().expect("literal address"),
            // Each commit flushes a segment per indexing thread, which merges later
            // rewrite. Every 2 s rather than every second, with the merge policy of
            // `split.rs`, cost about 15 % less server CPU per line at full ingest, and
            // lines still show within the 2 s the contract allows.
            commit_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(10),
            lost_after: Duration::from_secs(60),
            max_request_bytes: 16 * 1024 * 1024,
            split_window: Duration::from_secs(600),
            metric_split_window: Duration::from_secs(3600),
            auth_token_file: None,
            split_max_docs: 10_000_000,
            wal_segment_bytes: 64 * 1024 * 1024,
            max_indexing_backlog_bytes: 16 * 1024 * 1024,
            indexer_memory_bytes: 256 * 1024 * 1024,
            indexer_threads: 2,
            query_time_limit: SearchLimits::default().time_limit,
            max_search_hits: SearchLimits::default().max_search_hits,
            max_context_lines: SearchLimits::default().max_context_lines,
            max_facet_values: SearchLimits::default().max_facet_values,
            patterns_max_lines: SearchLimits::default().patterns_max_lines,
            search_threads: SearchLimits::default().search_threads,
        }
    }
}

impl ServerConfig {
    /// Resolves flags (which clap already merged with the environment) over the file.
    pub fn resolve(flags: Flags) -> anyhow::Result<ServerConfig> {
        let mut config = match &flags.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => ServerConfig::default(),
        };
        if let Some(v) = flags.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = flags.grpc_addr {
            config.grpc_addr = v;
        }
        if let Some(v) = flags.http_addr {
            config.http_addr = v;
        }
        if let Some(v) = flags.commit_interval {
            config.commit_interval = v;
        }
        if let Some(v) = flags.heartbeat_interval {
            config.heartbeat_interval = v;
        }
        if let Some(v) = flags.lost_after {
            config.lost_after = v;
        }
        if let Some(v) = flags.max_request_bytes {
            config.max_request_bytes = v;
        }
        if let Some(v) = flags.split_window {
            config.split_window = v;
        }
        if let Some(v) = flags.metric_split_window {
            config.metric_split_window = v;
        }
        if let Some(v) = flags.auth_token_file {
            config.auth_token_file = Some(v);
        }
        if let Some(v) = flags.query_time_limit {
            config.query_time_limit = v;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// What one API query may cost.
    pub fn search_limits(&self) -> SearchLimits {
        SearchLimits {
            time_limit: self.query_time_limit,
            max_search_hits: self.max_search_hits,
            max_context_lines: self.max_context_lines,
            max_facet_values: self.max_facet_values,
            patterns_max_lines: self.patterns_max_lines,
            search_threads: self.search_threads,
        }
    }

    /// The token gRPC clients must present, read from `auth_token_file`.
    pub fn auth_token(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.auth_token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("reading auth token file {}", path.display()))?
            .trim()
            .to_string();
        anyhow::ensure!(
            !token.is_empty(),
            "auth token file {} is empty",
            path.display()
        );
        Ok(Some(token))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.commit_interval.is_zero(),
            "commit_interval must be positive"
        );
        anyhow::ensure!(
            !self.heartbeat_interval.is_zero(),
            "heartbeat_interval must be positive"
        );
        anyhow::ensure!(
            self.lost_after > self.heartbeat_interval,
            "lost_after ({:?}) must be longer than heartbeat_interval ({:?})",
            self.lost_after,
            self.heartbeat_interval
        );
        anyhow::ensure!(
            self.max_request_bytes >= 1024,
            "max_request_bytes must be at least 1024"
        );
        anyhow::ensure!(
            !self.query_time_limit.is_zero(),
            "query_time_limit must be positive"
        );
        for (name, value) in [
            ("max_search_hits", self.max_search_hits),
            ("max_context_lines", self.max_context_lines),
            ("max_facet_values", self.max_facet_values),
            ("patterns_max_lines", self.patterns_max_lines),
            ("search_threads", self.search_threads),
        ] {
            anyhow::ensure!(value >= 1, "{name} must be at least 1");
        }
        anyhow::ensure!(
            self.indexer_threads >= 1,
            "indexer_threads must be at least 1"
        );
        anyhow::ensure!(
            self.indexer_memory_bytes >= 16 * 1024 * 1024 * self.indexer_threads,
            "indexer_memory_bytes must be at least 16 MiB per indexer thread"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\ncommit_interval = \"3s\"\n",
        )
        .unwrap();
        let flags = Flags::parse_from([
            "epitaph-server",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            "/from/flag",
        ]);
        let config = ServerConfig::resolve(flags).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.commit_interval, Duration::from_secs(3));
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "data_dri = \"/typo\"\n").unwrap();
        let error = ServerConfig::from_file(&path).unwrap_err();
        assert!(format!("{error:#}").contains("data_dri"), "{error:#}");
    }
}
