//! Sends the benchmark corpus to an OTLP/gRPC logs endpoint and reports throughput and
//! ack latency. See `epitaph_benches::loadgen` for how it measures.
//!
//! ```text
//! epitaph-loadgen --endpoint http://127.0.0.1:4317 --lines 1000000
//! epitaph-loadgen --rate 40000 --duration 30 --json
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::{ArgAction, Parser};
use epitaph_benches::corpus::{Corpus, CorpusConfig};
use epitaph_benches::loadgen::{self, LoadConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Sends OTLP log batches as fast as the server acknowledges them, or at a set rate"
)]
struct Args {
    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Concurrent callers, each with its own connection and one call in flight.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Lines per request.
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Lines to generate and send. With --duration, the pool of lines to cycle through.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Send for this many seconds, cycling through the generated lines.
    #[arg(long)]
    duration: Option<f64>,
    /// Target mean body length in bytes.
    #[arg(long, default_value_t = 260)]
    mean_line_bytes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pace the run at this many lines per second (each caller waits for its slot).
    #[arg(long)]
    rate: Option<f64>,
    /// Tag batches `epitaph-batch: <uuid per connection>/<sequence>` (`--batch-header false` to turn off).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    batch_header: bool,
    /// Deadline of one call, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Retries of a refused batch (UNAVAILABLE, RESOURCE_EXHAUSTED, ...) before it counts as failed.
    #[arg(long, default_value_t = 10)]
    max_retries: u32,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.lines > 0, "--lines must be at least 1");
    ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    ensure!(
        args.timeout.is_finite() && args.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let duration = match args.duration {
        Some(seconds) => {
            ensure!(
                seconds.is_finite() && seconds > 0.0,
                "--duration must be a positive number of seconds"
            );
            Some(Duration::from_secs_f64(seconds))
        }
        None => None,
    };

    // Everything is generated and encoded before the clock starts.
    let generation_started = Instant::now();
    let config = CorpusConfig {
        mean_line_bytes: args.mean_line_bytes,
        ..CorpusConfig::default()
    };
    let mut corpus = Corpus::new(args.seed, config);
    let batches = loadgen::encode_batches(&mut corpus, args.lines, args.batch_size);
    let encoded_bytes: usize = batches.iter().map(|batch| batch.payload.len()).sum();
    let body_bytes: u64 = batches.iter().map(|batch| batch.body_bytes).sum();
    eprintln!(
        "generated {} lines in {} batches ({body_bytes} body bytes, {encoded_bytes} encoded) in {:.1} s",
        args.lines,
        batches.len(),
        generation_started.elapsed().as_secs_f64()
    );

    let load_config = LoadConfig {
        endpoint: args.endpoint.clone(),
        connections: args.connections,
        batch_header: args.batch_header,
        rate_lines_per_second: args.rate,
        duration,
        request_timeout: Duration::from_secs_f64(args.timeout),
        max_retries: args.max_retries,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(loadgen::run(&load_config, Arc::new(batches)))?;
    if args.json {
        let mut json = report.to_json();
        json["endpoint"] = serde_json::Value::from(args.endpoint);
        json["batch_size"] = serde_json::Value::from(args.batch_size);
        json["rate"] = args
            .rate
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null);
        println!("{json}");
    } else {
        println!("{}", report.to_text());
    }
    ensure!(report.acked_lines > 0, "no batch was acknowledged");
    Ok(())
}
