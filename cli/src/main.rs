//! `epitaph`: the command line of an Epitaph server's HTTP API.
//!
//! ```text
//! epitaph search 'service:web level:error "connection refused"' --since 1h
//! epitaph tail 'service:web -level:debug'
//! epitaph stats 'service:web | stats count() by version, level' --since 24h
//! epitaph instances --state lost
//! epitaph versions web
//! ```
//!
//! The server is `--server URL` (or `EPITAPH_SERVER`, default `http://127.0.0.1:7080`);
//! a token in `EPITAPH_TOKEN` is sent as `Authorization: Bearer`. Exit status: 0 on
//! success, 1 on any error (a refused query, an unreachable server), 2 on a bad command
//! line. Errors go to stderr; a refused query is shown with a caret under the position the
//! server names.

mod client;
mod output;
mod progress;
mod sse;

use std::io::{self, BufReader, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

use client::{ApiError, Client};
use output::{Format, Table};
use progress::Progress;

/// The most hits one search page may hold (the API's cap).
const MAX_PAGE: usize = 10_000;

#[derive(Parser)]
#[command(
    name = "epitaph",
    version,
    about = "Search, tail and aggregate the logs an Epitaph server holds"
)]
struct Cli {
    /// The server's HTTP API.
    #[arg(
        long,
        global = true,
        env = "EPITAPH_SERVER",
        default_value = "http://127.0.0.1:7080"
    )]
    server: String,
    /// How to print answers.
    #[arg(long, short, global = true, value_enum)]
    output: Option<Format>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lines matching a filter, newest first.
    Search {
        /// A filter in Epitaph's query language, e.g. 'service:web level:error timeout'.
        query: String,
        #[command(flatten)]
        range: TimeRange,
        /// How many lines at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Follow lines matching a filter as they arrive, until interrupted.
    Tail {
        /// A filter in Epitaph's query language ('*' for every line).
        #[arg(default_value = "*")]
        query: String,
    },
    /// Run a query with a `stats`, `timechart` or `top` stage.
    Stats {
        /// e.g. 'level:error | stats count() by version'.
        query: String,
        #[command(flatten)]
        range: TimeRange,
    },
    /// Instances known to the server and how their story ended.
    Instances {
        /// Only instances in this state.
        #[arg(long, value_parser = ["live", "terminated", "lost"])]
        state: Option<String>,
    },
    /// A service's image versions, newest first, with their generations and instances.
    Versions {
        /// The service name.
        service: String,
    },
}

#[derive(clap::Args)]
struct TimeRange {
    /// Only lines newer than this: a duration ago (15m, 1h, 7d), an RFC 3339 time or Unix
    /// milliseconds.
    #[arg(long)]
    since: Option<String>,
    /// Only lines older than this, in the same forms.
    #[arg(long)]
    until: Option<String>,
}

impl TimeRange {
    fn params(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        if let Some(since) = &self.since {
            params.push(("start", time_param(since, "--since")?));
        }
        if let Some(until) = &self.until {
            params.push(("end", time_param(until, "--until")?));
        }
        Ok(params)
    }
}

/// A duration ago as Unix milliseconds; anything else (an RFC 3339 time, milliseconds)
/// goes to the server as it is, which checks it.
fn time_param(text: &str, flag: &str) -> anyhow::Result<String> {
    let looks_like_duration = text
        .chars()
        .last()
        .is_some_and(|last| last.is_ascii_alphabetic())
        && !text.contains(['-', ':']);
    if !looks_like_duration {
        return Ok(text.to_string());
    }
    let ago = humantime::parse_duration(text)
        .with_context(|| format!("{flag} {text}: not a duration like 15m, 1h or 7d"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let then = now.saturating_sub(ago);
    Ok(then.as_millis().to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.output.unwrap_or_else(Format::default_for_stdout);
    match run(&cli, format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A closed pipe (`epitaph search ... | head`) is the reader's choice, not a
            // failure.
            if error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            report(&cli, &error);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error to stderr; a refused query gets the query with a caret under the
/// position the server named.
fn report(cli: &Cli, error: &anyhow::Error) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "error: {error:#}");
    let Some(ApiError::Refused {
        position: Some((start, end)),
        ..
    }) = error.downcast_ref::<ApiError>()
    else {
        return;
    };
    let query = match &cli.command {
        Command::Search { query, .. } | Command::Tail { query } | Command::Stats { query, .. } => {
            query
        }
        Command::Instances { .. } | Command::Versions { .. } => return,
    };
    let _ = writeln!(stderr, "  {}", output::one_line(query));
    let _ = writeln!(stderr, "  {}", caret_line(query, *start, *end));
}

/// Spaces up to the character at byte `start`, then one caret per character of the span
/// (at least one, for a position at the end of the query).
fn caret_line(query: &str, start: usize, end: usize) -> String {
    let char_index = |byte: usize| {
        query
            .char_indices()
            .take_while(|(index, _)| *index < byte)
            .count()
    };
    let from = char_index(start.min(query.len()));
    let to = char_index(end.min(query.len())).max(from + 1);
    // Escaped characters are two wide in the echoed query.
    let width = |text: &str| output::one_line(text).chars().count();
    let prefix: String = query.chars().take(from).collect();
    let span: String = query.chars().skip(from).take(to - from).collect();
    format!(
        "{}{}",
        " ".repeat(width(&prefix)),
        "^".repeat(width(&span).max(1))
    )
}

fn run(cli: &Cli, format: Format) -> anyhow::Result<()> {
    let token = std::env::var("EPITAPH_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    let client = Client::new(&cli.server, token)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match &cli.command {
        Command::Search {
            query,
            range,
            limit,
        } => search(&client, &mut out, format, query, range, *limit)?,
        Command::Tail { query } => tail(&client, &mut out, format, query)?,
        Command::Stats { query, range } => stats(&client, &mut out, format, query, range)?,
        Command::Instances { state } => instances(&client, &mut out, format, state.as_deref())?,
        Command::Versions { service } => versions(&client, &mut out, format, service)?,
    }
    out.flush()?;
    Ok(())
}

fn search(
    client: &Client,
    out: &mut impl Write,
    format: Format,
    query: &str,
    range: &TimeRange,
    limit: usize,
) -> anyhow::Result<()> {
    if limit == 0 {
        anyhow::bail!("--limit must be at least 1");
    }
    let range = range.params()?;
    let mut hits: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let progress = Progress::start("searching");
    while hits.len() < limit {
        let page_size = (limit - hits.len()).min(MAX_PAGE).to_string();
        let mut params: Vec<(&str, &str)> = vec![("q", query), ("limit", &page_size)];
        for (name, value) in &range {
            params.push((name, value));
        }
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor));
        }
        let page = client.get_json("/api/v1/search", &params)?;
        let page_hits = page["hits"].as_array().cloned().unwrap_or_default();
        let page_was_empty = page_hits.is_empty();
        hits.extend(page_hits);
        match page["next_cursor"].as_str() {
            Some(next) if !page_was_empty => cursor = Some(next.to_string()),
            _ => break,
        }
    }
    drop(progress);
    match format {
        Format::Table => {
            let mut table = Table::new(&output::HIT_COLUMNS);
            for hit in &hits {
                table.push(output::hit_row(hit));
            }
            table.print(out)?;
        }
        Format::Json | Format::Raw => {
            for hit in &hits {
                print_hit(out, format, hit)?;
            }
        }
    }
    Ok(())
}

fn print_hit(out: &mut impl Write, format: Format, hit: &Value) -> io::Result<()> {
    match format {
        Format::Json => writeln!(out, "{hit}"),
        Format::Raw => writeln!(out, "{}", hit["body"].as_str().unwrap_or_default()),
        Format::Table => writeln!(out, "{}", output::hit_row(hit).join("  ")),
    }
}

fn tail(client: &Client, out: &mut impl Write, format: Format, query: &str) -> anyhow::Result<()> {
    let stream = client.open_stream("/api/v1/tail", &[("q", query)])?;
    for event in sse::Events::new(BufReader::new(stream)) {
        let event = event.context("reading the tail stream")?;
        match event.name.as_str() {
            "" => {
                let hit: Value = serde_json::from_str(&event.data)
                    .with_context(|| format!("a tailed line is not JSON: {}", event.data))?;
                print_hit(out, format, &hit)?;
                // A tail is read as it happens, often through a pipe.
                out.flush()?;
            }
            "skipped" => {
                let skipped = serde_json::from_str::<Value>(&event.data)
                    .ok()
                    .and_then(|data| data["skipped_lines"].as_u64())
                    .unwrap_or(0);
                eprintln!("epitaph: the tail fell behind the server; {skipped} lines were skipped");
            }
            _ => {}
        }
    }
    anyhow::bail!("the server ended the tail (it may be shutting down)")
}

fn stats(
    client: &Client,
    out: &mut impl Write,
    format: Format,
    query: &str,
    range: &TimeRange,
) -> anyhow::Result<()> {
    let range = range.params()?;
    let mut params: Vec<(&str, &str)> = vec![("q", query)];
    for (name, value) in &range {
        params.push((name, value));
    }
    let progress = Progress::start("aggregating");
    let answer = client.get_json("/api/v1/aggregate", &params)?;
    drop(progress);
    let columns: Vec<String> = answer["columns"]
        .as_array()
        .map(|columns| {
            columns
                .iter()
                .map(|column| column.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    match format {
        Format::Table => {
            let header: Vec<&str> = columns.iter().map(String::as_str).collect();
            let mut table = Table::new(&header);
            for row in &rows {
                let cells = row.as_array().cloned().unwrap_or_default();
                table.push(cells.iter().map(output::cell).collect());
            }
            table.print(out)?;
        }
        Format::Json => {
            for row in &rows {
                let cells = row.as_array().cloned().unwrap_or_default();
                let object: Map<String, Value> = columns.iter().cloned().zip(cells).collect();
                writeln!(out, "{}", Value::Object(object))?;
            }
        }
        Format::Raw => {
            for row in &rows {
                let cells = row.as_array().cloned().unwrap_or_default();
                let cells: Vec<String> = cells.iter().map(output::cell).collect();
                writeln!(out, "{}", cells.join("\t"))?;
            }
        }
    }
    Ok(())
}

fn instances(
    client: &Client,
    out: &mut impl Write,
    format: Format,
    state: Option<&str>,
) -> anyhow::Result<()> {
    let mut params = Vec::new();
    if let Some(state) = state {
        params.push(("state", state));
    }
    let answer = client.get_json("/api/v1/instances", &params)?;
    let instances = answer["instances"].as_array().cloned().unwrap_or_default();
    match format {
        Format::Table => {
            let mut table = Table::new(&[
                "STATE",
                "SERVICE",
                "VERSION",
                "GENERATION",
                "INSTANCE",
                "HOST",
                "LAST SEEN",
                "COMPLETE",
                "LOST SINCE",
            ]);
            for instance in &instances {
                table.push(vec![
                    output::cell(&instance["state"]),
                    output::cell(&instance["service"]),
                    output::cell(&instance["version"]),
                    output::cell(&instance["generation"]),
                    output::cell(&instance["instance"]),
                    output::cell(&instance["host"]),
                    output::short_time(&instance["last_seen"]),
                    output::cell(&instance["record_complete"]),
                    output::short_time(&instance["lost_since"]),
                ]);
            }
            table.print(out)?;
        }
        Format::Json => {
            for instance in &instances {
                writeln!(out, "{instance}")?;
            }
        }
        Format::Raw => {
            for instance in &instances {
                writeln!(out, "{}", output::cell(&instance["instance"]))?;
            }
        }
    }
    Ok(())
}

fn versions(
    client: &Client,
    out: &mut impl Write,
    format: Format,
    service: &str,
) -> anyhow::Result<()> {
    let progress = Progress::start("counting");
    let answer = client.get_json("/api/v1/versions", &[("service", service)])?;
    drop(progress);
    let mut versions: Vec<Value> = Vec::new();
    for entry in answer["services"].as_array().into_iter().flatten() {
        if entry["service"].as_str() != Some(service) {
            continue;
        }
        versions.extend(entry["versions"].as_array().cloned().unwrap_or_default());
    }
    if versions.is_empty() {
        anyhow::bail!("the server knows no versions of service `{service}`");
    }
    match format {
        Format::Table => {
            let mut table = Table::new(&[
                "VERSION",
                "ALIAS",
                "FIRST SEEN",
                "LAST SEEN",
                "LINES",
                "INSTANCES",
                "GENERATIONS",
                "LIVE",
                "TERMINATED",
                "LOST",
            ]);
            for version in &versions {
                let generations: Vec<String> = version["generations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|generation| output::cell(&generation["generation"]))
                    .collect();
                let registry = &version["registry"];
                table.push(vec![
                    output::cell(&version["version"]),
                    output::cell(&version["alias"]),
                    output::short_time(&version["first_seen"]),
                    output::short_time(&version["last_seen"]),
                    output::cell(&version["lines"]),
                    output::cell(&version["instances"]),
                    generations.join(","),
                    output::cell(&registry["live"]),
                    output::cell(&registry["terminated"]),
                    output::cell(&registry["lost"]),
                ]);
            }
            table.print(out)?;
        }
        Format::Json => {
            for version in &versions {
                let mut version = version.clone();
                if let Value::Object(object) = &mut version {
                    object.insert("service".into(), Value::String(service.to_string()));
                }
                writeln!(out, "{version}")?;
            }
        }
        Format::Raw => {
            for version in &versions {
                writeln!(out, "{}", output::cell(&version["version"]))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_sit_under_the_span_in_characters() {
        assert_eq!(caret_line("level:error |", 12, 13), "            ^");
        assert_eq!(caret_line("é x:(", 5, 6), "    ^");
        assert_eq!(caret_line("abc", 3, 3), "   ^");
        assert_eq!(caret_line("ab cd", 3, 5), "   ^^");
    }

    #[test]
    fn durations_become_milliseconds_and_times_pass_through() {
        let millis: u128 = time_param("1h", "--since").unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(now - millis >= 3_600_000 && now - millis < 3_660_000);
        assert_eq!(
            time_param("2026-11-26T10:00:00Z", "--since").unwrap(),
            "2026-11-26T10:00:00Z"
        );
        assert_eq!(
            time_param("1764150000000", "--since").unwrap(),
            "1764150000000"
        );
        assert!(time_param("1 fortnight", "--since").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
