//! How answers are printed: an aligned table for people, JSON lines for programs, raw
//! bodies for piping into other tools.

use std::io::{self, Write};

use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header (the default when stdout is a terminal).
    Table,
    /// One JSON object per line (the default otherwise).
    Json,
    /// Log bodies only, one per line (stats: tab-separated cells; instances: ids;
    /// versions: names).
    Raw,
}

impl Format {
    /// The format when `--output` is not given: a table for a person at a terminal, JSON
    /// lines for a pipe or a file.
    pub fn default_for_stdout() -> Format {
        use std::io::IsTerminal as _;
        if io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        }
    }
}

/// Rows printed as aligned columns; the last column is not padded, so long log bodies
/// do not push every line to the widest one.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|name| name.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len());
        self.rows.push(row);
    }

    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        print_row(out, &self.header, &widths)?;
        for row in &self.rows {
            print_row(out, row, &widths)?;
        }
        Ok(())
    }
}

fn print_row(out: &mut impl Write, cells: &[String], widths: &[usize]) -> io::Result<()> {
    let last = cells.len().saturating_sub(1);
    let mut line = String::new();
    for (index, cell) in cells.iter().enumerate() {
        if index == last {
            line.push_str(cell);
        } else {
            line.push_str(cell);
            let padding = widths[index] - cell.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', padding));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// A JSON value as a table cell: strings without quotes, null as `-`, control characters
/// escaped so one row stays one line.
pub fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_string(),
        Value::String(text) if text.is_empty() => "-".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    one_line(&text)
}

/// Newlines and tabs shown as `\n` and `\t`.
pub fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r', '\t']) {
        return text.to_string();
    }
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// A hit's timestamp without the sub-millisecond digits people rarely need.
pub fn short_time(value: &Value) -> String {
    let Some(text) = value.as_str() else {
        return cell(value);
    };
    // RFC 3339 from the server: `2026-11-26T06:02:42.879771123Z`.
    match text.split_once('.') {
        Some((seconds, fraction)) if fraction.ends_with('Z') => {
            let digits: String = fraction.trim_end_matches('Z').chars().take(3).collect();
            format!("{seconds}.{digits:0<3}Z")
        }
        _ => text.to_string(),
    }
}

/// The columns of a log line in a table.
pub const HIT_COLUMNS: [&str; 5] = ["TIME", "SERVICE", "VERSION", "LEVEL", "BODY"];

pub fn hit_row(hit: &Value) -> Vec<String> {
    vec![
        short_time(&hit["timestamp"]),
        cell(&hit["service"]),
        cell(&hit["version"]),
        cell(&hit["level"]),
        one_line(hit["body"].as_str().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_all_but_the_last_column() {
        let mut table = Table::new(&["A", "LONGER", "BODY"]);
        table.push(vec!["xyz".into(), "1".into(), "free text".into()]);
        let mut out = Vec::new();
        table.print(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A    LONGER  BODY\nxyz  1       free text\n"
        );
    }

    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(cell(&json!("a\nb")), "a\\nb");
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(3.5)), "3.5");
        assert_eq!(
            short_time(&json!("2026-11-26T06:02:42.879771123Z")),
            "2026-11-26T06:02:42.879Z"
        );
        assert_eq!(
            short_time(&json!("2026-11-26T06:02:42Z")),
            "2026-11-26T06:02:42Z"
        );
    }
}
