//! Generates the query benchmark's corpus once, writes it as plain log files and sends
//! the very same records to an OTLP/gRPC logs endpoint, so that `query.sh` can time
//! Epitaph and ripgrep over the same lines.
//!
//! - Event times are spread evenly over `--span-hours` (24 by default) ending at
//!   `--end-unix-ms` (default: now minus one minute), instead of the corpus's default
//!   100,000 lines/s from now; the corpus's own seeded jitter is kept.
//! - Every `--needle-every`th line (the middle line of each block, default one line in a
//!   million) carries the token `--needle` as one more field (`marker=TOKEN` in plain and
//!   logfmt lines, `"marker":"TOKEN"` in JSON), so a term occurs in exactly one line per
//!   block.
//! - `--files DIR` writes each body followed by a newline to
//!   `DIR/<service>/<service>-YYYYMMDDTHH.log` by event hour (UTC), as rotated per-service
//!   log files would be.
//! - `--endpoint URL` then sends the batches like `epitaph-loadgen` (pre-encoded, zstd,
//!   `--connections` callers, retries on back-pressure).
//!
//! Prints one JSON object: lines, body bytes, needle lines, first/last event time, files
//! written, and the load report when it sent.
//!
//! ```text
//! query-corpus --lines 10000000 --files /tmp/q/plain --endpoint http://127.0.0.1:4317
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use clap::Parser;
use epitaph_benches::corpus::{Corpus, CorpusConfig, GeneratedLine, LineFormat};
use epitaph_benches::loadgen::{self, EncodedBatch, LoadConfig};
use prost::Message as _;
use prost::bytes::Bytes;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Writes the query benchmark's corpus as log files and sends it over OTLP")]
struct Args {
    #[arg(long, default_value_t = 10_000_000)]
    lines: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target mean body length in bytes.
    #[arg(long, default_value_t = 260)]
    mean_line_bytes: usize,
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Event times are spread over this many hours.
    #[arg(long, default_value_t = 24.0)]
    span_hours: f64,
    /// End of the event-time span, Unix milliseconds [default: now minus one minute].
    #[arg(long)]
    end_unix_ms: Option<u64>,
    /// Token carried by one line in every `--needle-every` lines.
    #[arg(long, default_value = "qzxneedle")]
    needle: String,
    #[arg(long, default_value_t = 1_000_000)]
    needle_every: u64,
    /// Write the bodies as plain log files under this directory.
    #[arg(long)]
    files: Option<PathBuf>,
    /// Send the records to this OTLP/gRPC endpoint.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Retries of a refused batch before it counts as failed.
    #[arg(long, default_value_t = 1_000)]
    max_retries: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.lines > 0, "--lines must be at least 1");
    ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    ensure!(args.needle_every > 0, "--needle-every must be at least 1");
    ensure!(
        !args.needle.is_empty() && args.needle.bytes().all(|b| b.is_ascii_alphanumeric()),
        "--needle must be one alphanumeric token"
    );
    ensure!(
        args.span_hours.is_finite() && args.span_hours > 0.0,
        "--span-hours must be positive"
    );
    let end_ms = match args.end_unix_ms {
        Some(ms) => ms,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("clock before 1970")?;
            now.as_millis() as u64 - 60_000
        }
    };
    let span_nanos = (args.span_hours * 3600e9) as u64;
    let start_nanos = end_ms * 1_000_000 - span_nanos;
    let config = CorpusConfig {
        mean_line_bytes: args.mean_line_bytes,
        start_unix_nanos: Some(start_nanos),
        lines_per_second: args.lines as f64 / (span_nanos as f64 / 1e9),
        ..CorpusConfig::default()
    };
    let mut corpus = Corpus::new(args.seed, config);
    let mut files = args.files.as_deref().map(LogFiles::new);

    let started = Instant::now();
    let mut batches: Vec<EncodedBatch> =
        Vec::with_capacity((args.lines / args.batch_size as u64 + 1) as usize);
    let mut body_bytes_total = 0u64;
    let mut needle_lines = 0u64;
    let mut first_nanos = u64::MAX;
    let mut last_nanos = 0u64;
    let mut line_number = 0u64;
    while line_number < args.lines {
        let count = (args.lines - line_number).min(args.batch_size as u64);
        let mut records: Vec<GeneratedLine> = Vec::with_capacity(count as usize);
        let mut body_bytes = 0u64;
        for _ in 0..count {
            let mut record = corpus.next_record();
            if line_number % args.needle_every == args.needle_every / 2 {
                add_needle(&mut record.body, record.format, &args.needle);
                needle_lines += 1;
            }
            first_nanos = first_nanos.min(record.time_unix_nano);
            last_nanos = last_nanos.max(record.time_unix_nano);
            body_bytes += record.body.len() as u64;
            if let Some(files) = files.as_mut() {
                let service = &corpus.fleet().instance(record.instance).service_name;
                files.write(service, record.time_unix_nano, &record.body)?;
            }
            records.push(record);
            line_number += 1;
        }
        body_bytes_total += body_bytes;
        if args.endpoint.is_some() {
            let request = corpus.build_request(records);
            batches.push(EncodedBatch {
                payload: Bytes::from(request.encode_to_vec()),
                lines: count,
                body_bytes,
            });
        }
    }
    let file_count = match files {
        Some(files) => files.finish()?,
        None => 0,
    };
    let generated_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {} lines ({body_bytes_total} body bytes, {needle_lines} needle lines, {file_count} files) in {generated_seconds:.1} s",
        args.lines
    );

    let mut summary = json!({
        "lines": args.lines,
        "body_bytes": body_bytes_total,
        "needle": args.needle,
        "needle_lines": needle_lines,
        "first_event_unix_ms": first_nanos / 1_000_000,
        "last_event_unix_ms": last_nanos / 1_000_000,
        "span_start_unix_ms": start_nanos / 1_000_000,
        "span_end_unix_ms": end_ms,
        "files": file_count,
        "generated_seconds": generated_seconds,
    });
    if let Some(endpoint) = &args.endpoint {
        let load_config = LoadConfig {
            endpoint: endpoint.clone(),
            connections: args.connections,
            batch_header: true,
            rate_lines_per_second: None,
            duration: None,
            request_timeout: Duration::from_secs(60),
            max_retries: args.max_retries,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        let report = runtime.block_on(loadgen::run(&load_config, Arc::new(batches)))?;
        ensure!(
            report.failed_lines == 0,
            "{} lines were not acknowledged: {:?}",
            report.failed_lines,
            report.errors
        );
        summary["load"] = report.to_json();
    }
    println!("{summary}");
    Ok(())
}

/// Appends the needle as one more field, in the line's own format.
fn add_needle(body: &mut String, format: LineFormat, needle: &str) {
    match format {
        LineFormat::Json => {
            debug_assert!(body.ends_with('}'));
            body.pop();
            body.push_str(",\"marker\":\"");
            body.push_str(needle);
            body.push_str("\"}");
        }
        LineFormat::Plain | LineFormat::Logfmt => {
            body.push_str(" marker=");
            body.push_str(needle);
        }
    }
}

/// Per-service, per-hour log files. Event times only move forward (up to the corpus's
/// jitter), so a service's file is closed when its next hour begins.
struct LogFiles {
    root: PathBuf,
    open: HashMap<String, (u64, BufWriter<File>)>,
}

impl LogFiles {
    fn new(root: &Path) -> LogFiles {
        LogFiles {
            root: root.to_path_buf(),
            open: HashMap::new(),
        }
    }

    fn write(&mut self, service: &str, time_unix_nano: u64, body: &str) -> anyhow::Result<()> {
        let hour = time_unix_nano / 3_600_000_000_000;
        let current = self.open.get(service).map(|(open_hour, _)| *open_hour);
        if current.is_none_or(|open_hour| open_hour < hour) {
            let directory = self.root.join(service);
            std::fs::create_dir_all(&directory)
                .with_context(|| format!("creating {}", directory.display()))?;
            let path = directory.join(format!("{service}-{}.log", hour_name(hour)?));
            let file = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            if let Some((_, mut previous)) = self.open.insert(
                service.to_string(),
                (hour, BufWriter::with_capacity(1 << 20, file)),
            ) {
                previous.flush()?;
            }
        }
        let (_, writer) = self.open.get_mut(service).expect("opened above");
        writer.write_all(body.as_bytes())?;
        writer.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes every file and returns how many distinct files were written.
    fn finish(mut self) -> anyhow::Result<usize> {
        for (_, (_, mut writer)) in self.open.drain() {
            writer.flush()?;
        }
        let mut count = 0;
        for service in std::fs::read_dir(&self.root)? {
            count += std::fs::read_dir(service?.path())?.count();
        }
        Ok(count)
    }
}

/// `YYYYMMDDTHH` of an hour since the Unix epoch, in UTC.
fn hour_name(hour: u64) -> anyhow::Result<String> {
    let time = time::OffsetDateTime::from_unix_timestamp(hour as i64 * 3600)
        .context("event time out of range")?;
    Ok(format!(
        "{:04}{:02}{:02}T{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needle_is_one_more_field_in_each_format() {
        let mut json = String::from(r#"{"msg":"ok","n":1}"#);
        add_needle(&mut json, LineFormat::Json, "qzx");
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(parsed["marker"], "qzx");
        assert_eq!(parsed["n"], 1);

        let mut plain = String::from("INFO served in 3ms");
        add_needle(&mut plain, LineFormat::Plain, "qzx");
        assert_eq!(plain, "INFO served in 3ms marker=qzx");
    }

    #[test]
    fn hour_names_are_utc_calendar_hours() {
        // 2026-11-25T06:00:00Z is 1,795,586,400 s after the epoch.
        assert_eq!(hour_name(1_795_586_400 / 3600).unwrap(), "20261125T06");
        assert_eq!(hour_name(0).unwrap(), "19700101T00");
    }

    #[test]
    fn log_files_split_by_service_and_hour() {
        let root = tempfile::tempdir().expect("temp dir");
        let mut files = LogFiles::new(root.path());
        let hour = 3_600_000_000_000u64;
        files.write("api", 10 * hour, "a1").unwrap();
        files.write("db", 10 * hour + 1, "d1").unwrap();
        files.write("api", 11 * hour, "a2").unwrap();
        files.write("api", 11 * hour + 5, "a3").unwrap();
        assert_eq!(files.finish().unwrap(), 3);
        let read = |service: &str, name: &str| {
            std::fs::read_to_string(root.path().join(service).join(name)).unwrap()
        };
        assert_eq!(read("api", "api-19700101T10.log"), "a1\n");
        assert_eq!(read("api", "api-19700101T11.log"), "a2\na3\n");
        assert_eq!(read("db", "db-19700101T10.log"), "d1\n");
    }
}
