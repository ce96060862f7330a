//! Where log lines come from.
//!
//! Each source lives in its own file and answers three questions: which lines are there
//! to read now, how far has the agent read ("positions"), and how to move that mark once
//! a line is safely in a batch. The collector asks for lines, puts them in the open batch
//! and only then advances the source, so a position never runs ahead of what a spooled
//! batch holds.
//!
//! [`Positions`] is the durable form of every source's read mark. It is one struct with
//! one field per kind of source so that later sources (journald's cursor, say) add a
//! field with `#[serde(default)]` and old spool files and state files stay readable.
//!
//! - [`mod@file`]: tailing files by glob, through rotation, truncation and symlinks;
//! - [`multiline`]: joining the lines of one event (a stack trace) into one record;
//! - [`journald`]: the systemd journal, through `journalctl`, positioned by its cursor.

pub mod file;
pub mod journald;
pub mod multiline;

use serde::{Deserialize, Serialize};

/// The read positions of every source, stored in each spool entry and in the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    #[serde(default)]
    pub files: Vec<file::FilePosition>,
    /// The journal cursor of the last journal entry in a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_cursor: Option<String>,
}
