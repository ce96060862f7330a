//! Appends benchmark log lines to a file, at a steady rate or as fast as it can: the
//! application an agent benchmark tails.
//!
//! Lines come from the benchmark corpus (`epitaph_benches::corpus`), so the agent parses
//! what it would parse in production (JSON, logfmt, prefixed text, levels). By default
//! every line is exactly `--line-bytes` bytes including its `\n` (200, the size the
//! agent's targets are stated for): a corpus body is flattened to one line, and a short
//! one is continued with the next body, a long one cut. `--line-bytes 0` writes the
//! corpus bodies at their natural lengths instead (mean `--mean-line-bytes`).
//!
//! The lines are generated before the first write, as a pool of at most
//! [`POOL_LINES`] that is cycled, so the writer's own CPU is only the `write` calls.
//!
//! - `--rate R`: paced. Every `--tick-ms` (10 ms) it appends, in one `write`, the lines
//!   that are due (`R × elapsed − written`), so a reader sees a steady trickle rather than
//!   one burst per second; a tick that comes late catches up.
//! - no `--rate`: as fast as possible, in 1 MiB writes.
//!
//! It stops after `--lines N` or `--duration SECONDS`, whichever comes first (one of
//! them is required), and prints one JSON object: lines, bytes, seconds, lines/s.
//!
//! ```text
//! line-writer --file /tmp/app.log --rate 10000 --duration 20
//! line-writer --file /tmp/big.log --lines 2000000
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use epitaph_benches::corpus::{Corpus, CorpusConfig};

/// Lines generated before writing starts and then cycled: 64 Ki lines of 200 bytes is
/// 13 MB, far more than any batch or compression window, so the cycling is invisible
/// to the agent.
const POOL_LINES: u64 = 65_536;

/// Unpaced writes go out in chunks of about this size.
const UNPACED_WRITE_BYTES: usize = 1024 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Appends benchmark log lines to a file at a set rate or as fast as possible")]
struct Args {
    /// The file to append to (created if missing).
    #[arg(long)]
    file: PathBuf,
    /// Lines per second; without it, as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many lines.
    #[arg(long)]
    lines: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Bytes per line including the newline; 0 writes corpus bodies at their own length.
    #[arg(long, default_value_t = 200)]
    line_bytes: usize,
    /// Mean body length asked of the corpus.
    #[arg(long, default_value_t = 200)]
    mean_line_bytes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pacing tick in milliseconds.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
}

/// Builds the pool of lines, each ending in `\n`.
fn generate_pool(args: &Args, pool_lines: u64) -> Vec<Vec<u8>> {
    let config = CorpusConfig {
        mean_line_bytes: args.mean_line_bytes,
        ..CorpusConfig::default()
    };
    let mut corpus = Corpus::new(args.seed, config);
    let mut next_body = move || flatten(&corpus.next_record().body);
    let mut pool = Vec::with_capacity(pool_lines as usize);
    for _ in 0..pool_lines {
        let mut line = if args.line_bytes == 0 {
            next_body()
        } else {
            fixed_size_line(args.line_bytes - 1, &mut next_body)
        };
        line.push('\n');
        pool.push(line.into_bytes());
    }
    pool
}

/// One physical line: a multi-line body (stack trace) would otherwise count as several.
fn flatten(body: &str) -> String {
    body.replace(['\r', '\n'], " ")
}

/// Exactly `length` bytes of text: bodies joined by a space, cut at a character boundary
/// and padded with spaces if the cut fell inside a multi-byte character.
fn fixed_size_line(length: usize, next_body: &mut impl FnMut() -> String) -> String {
    let mut line = next_body();
    while line.len() < length {
        line.push(' ');
        line.push_str(&next_body());
    }
    let mut cut = length;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    while line.len() < length {
        line.push(' ');
    }
    line
}

/// Writes lines `first..first + count` of the cycled pool into `buffer`.
fn fill(buffer: &mut Vec<u8>, pool: &[Vec<u8>], first: u64, count: u64) {
    for index in first..first + count {
        buffer.extend_from_slice(&pool[(index % pool.len() as u64) as usize]);
    }
}

struct Written {
    lines: u64,
    bytes: u64,
}

fn write_paced(
    file: &mut File,
    pool: &[Vec<u8>],
    rate: f64,
    max_lines: u64,
    start: Instant,
    until: Option<Instant>,
    tick: Duration,
) -> anyhow::Result<Written> {
    let mut written = Written { lines: 0, bytes: 0 };
    let mut buffer = Vec::new();
    let mut next_tick = start;
    loop {
        let now = Instant::now();
        let finished = until.is_some_and(|until| now >= until);
        let due_at = if finished { until.unwrap_or(now) } else { now };
        // The epsilon keeps `rate × duration` from losing its last line to rounding.
        let due =
            ((rate * due_at.duration_since(start).as_secs_f64() + 1e-6) as u64).min(max_lines);
        if due > written.lines {
            buffer.clear();
            fill(&mut buffer, pool, written.lines, due - written.lines);
            file.write_all(&buffer).context("appending lines")?;
            written.bytes += buffer.len() as u64;
            written.lines = due;
        }
        if finished || written.lines >= max_lines {
            return Ok(written);
        }
        next_tick += tick;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else {
            // Late (a busy machine): catch up at the next tick instead of spinning.
            next_tick = now;
        }
    }
}

fn write_unpaced(
    file: &mut File,
    pool: &[Vec<u8>],
    max_lines: u64,
    until: Option<Instant>,
) -> anyhow::Result<Written> {
    let mut written = Written { lines: 0, bytes: 0 };
    let mut buffer = Vec::with_capacity(UNPACED_WRITE_BYTES + 64 * 1024);
    while written.lines < max_lines && until.is_none_or(|until| Instant::now() < until) {
        buffer.clear();
        let first = written.lines;
        while buffer.len() < UNPACED_WRITE_BYTES && written.lines < max_lines {
            fill(&mut buffer, pool, written.lines, 1);
            written.lines += 1;
        }
        debug_assert!(written.lines > first);
        file.write_all(&buffer).context("appending lines")?;
        written.bytes += buffer.len() as u64;
    }
    Ok(written)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.lines.is_some() || args.duration.is_some(),
        "give --lines, --duration or both"
    );
    if let Some(rate) = args.rate {
        ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number"
        );
    }
    if let Some(duration) = args.duration {
        ensure!(
            duration.is_finite() && duration > 0.0,
            "--duration must be a positive number of seconds"
        );
    }
    ensure!(args.line_bytes != 1, "--line-bytes must be 0 or at least 2");
    ensure!(args.tick_ms > 0, "--tick-ms must be at least 1");

    let max_lines = args.lines.unwrap_or(u64::MAX);
    let expected_lines = match (args.rate, args.duration) {
        (Some(rate), Some(duration)) => ((rate * duration).ceil() as u64).min(max_lines),
        _ => max_lines,
    };
    let pool = generate_pool(&args, expected_lines.clamp(1, POOL_LINES));

    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.file)
        .with_context(|| format!("opening {} for appending", args.file.display()))?;
    let start = Instant::now();
    let until = args
        .duration
        .map(|duration| start + Duration::from_secs_f64(duration));
    let written = match args.rate {
        Some(rate) => write_paced(
            &mut file,
            &pool,
            rate,
            max_lines,
            start,
            until,
            Duration::from_millis(args.tick_ms),
        )?,
        None => write_unpaced(&mut file, &pool, max_lines, until)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "file": args.file.display().to_string(),
            "lines": written.lines,
            "bytes": written.bytes,
            "seconds": seconds,
            "lines_per_second": written.lines as f64 / seconds.max(1e-9),
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line_bytes: usize) -> Args {
        Args::parse_from([
            "line-writer",
            "--file",
            "unused",
            "--lines",
            "1",
            "--line-bytes",
            &line_bytes.to_string(),
        ])
    }

    #[test]
    fn fixed_size_lines_are_exactly_that_long_and_single() {
        let pool = generate_pool(&args(200), 5_000);
        for line in &pool {
            assert_eq!(line.len(), 200);
            assert_eq!(line.iter().filter(|&&byte| byte == b'\n').count(), 1);
            assert_eq!(line.last(), Some(&b'\n'));
            assert!(std::str::from_utf8(line).is_ok());
        }
    }

    #[test]
    fn natural_lines_keep_the_corpus_mean() {
        let pool = generate_pool(&args(0), 20_000);
        let mean = pool.iter().map(Vec::len).sum::<usize>() as f64 / pool.len() as f64;
        assert!((180.0..230.0).contains(&mean), "mean {mean}");
        assert!(
            pool.iter()
                .all(|line| line.iter().filter(|&&b| b == b'\n').count() == 1)
        );
    }

    #[test]
    fn paced_writing_writes_rate_times_duration() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("paced.log");
        let mut file = File::create(&path).expect("create");
        let pool = generate_pool(&args(200), 100);
        let start = Instant::now();
        let written = write_paced(
            &mut file,
            &pool,
            1_000.0,
            u64::MAX,
            start,
            Some(start + Duration::from_millis(300)),
            Duration::from_millis(10),
        )
        .expect("write");
        assert_eq!(written.lines, 300);
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), 300 * 200);
    }

    #[test]
    fn unpaced_writing_stops_at_the_line_count() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("fast.log");
        let mut file = File::create(&path).expect("create");
        let pool = generate_pool(&args(200), 1_000);
        let written = write_unpaced(&mut file, &pool, 12_345, None).expect("write");
        assert_eq!(written.lines, 12_345);
        assert_eq!(
            std::fs::metadata(&path).expect("metadata").len(),
            12_345 * 200
        );
    }
}
