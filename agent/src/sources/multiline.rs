//! Joining the lines of one event (a stack trace, a traceback) into one record.
//!
//! With `multiline_start = "<regex>"`, a line that matches the pattern starts a new
//! event and every other line is a continuation, appended to the current event with a
//! `\n`. An event ends when the next start line arrives, when no continuation came for
//! `multiline_timeout` (the writer has moved on), when adding a line would take it past
//! `multiline_max_bytes` (the event is emitted as it is and the line begins the next
//! record — split, never dropped), and when its file is drained (shutdown, or a rotated
//! file being retired).
//!
//! A line that arrives with no event open starts one even if it does not match (the
//! first lines of a file may be the tail of an event whose start was never seen). Blank
//! lines inside an event are kept as continuations, trailing ones are trimmed; a blank
//! line with no event open is handed out on its own (and skipped by the collector). A
//! single line longer than `multiline_max_bytes` is cut there and flagged truncated.
//!
//! Exactly-once: the assembler only holds text. The file source moves its *read* offset
//! past a line once the assembler has it, but the *committed* offset only moves when a
//! finished event is in a batch (it carries the end offset of its last line). An event
//! still being assembled is therefore never covered by a durable position: after a crash
//! its lines are read again, and if the collector has to give back what it read (spool
//! refused a batch) the source forgets the open event and re-reads its lines.

use std::time::{Duration, Instant};

use anyhow::Context;
use regex_lite::Regex;

use crate::config::Config;

/// The compiled multiline settings.
#[derive(Debug, Clone)]
pub struct MultilineRule {
    start: Regex,
    max_bytes: usize,
    timeout: Duration,
}

impl MultilineRule {
    pub fn new(
        start_pattern: &str,
        max_bytes: usize,
        timeout: Duration,
    ) -> anyhow::Result<MultilineRule> {
        let start = Regex::new(start_pattern).with_context(|| {
            format!("multiline_start: `{start_pattern}` is not a valid regular expression")
        })?;
        Ok(MultilineRule {
            start,
            max_bytes,
            timeout,
        })
    }

    /// The rule the configuration asks for, if any.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<MultilineRule>> {
        config
            .multiline_start
            .as_deref()
            .map(|pattern| {
                MultilineRule::new(
                    pattern,
                    config.multiline_max_bytes,
                    config.multiline_timeout,
                )
            })
            .transpose()
    }

    fn starts_event(&self, line: &str) -> bool {
        self.start.is_match(line)
    }
}

/// One physical line, as read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub text: String,
    pub truncated: bool,
    /// The file offset just past this line.
    pub end_offset: u64,
}

/// A finished record: one line, or the joined lines of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub text: String,
    pub truncated: bool,
    /// The file offset just past the event's last line.
    pub end_offset: u64,
    /// How many physical lines it holds.
    pub line_count: u32,
}

impl From<RawLine> for Event {
    fn from(line: RawLine) -> Event {
        Event {
            text: line.text,
            truncated: line.truncated,
            end_offset: line.end_offset,
            line_count: 1,
        }
    }
}

/// The event being assembled for one file.
#[derive(Debug, Default)]
pub struct Assembler {
    open: Option<OpenEvent>,
}

#[derive(Debug)]
struct OpenEvent {
    event: Event,
    last_line_at: Instant,
}

impl Assembler {
    /// Whether an event is being assembled.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Forgets the open event (its lines will be read again).
    pub fn clear(&mut self) {
        self.open = None;
    }

    /// Takes the open event as it is, if any (its file was truncated under it).
    pub fn take(&mut self) -> Option<Event> {
        self.open.take().map(|open| finish(open.event))
    }

    /// Offers one line read at `now`; finished events go to `out`, in file order.
    pub fn push(
        &mut self,
        rule: &MultilineRule,
        line: RawLine,
        now: Instant,
        out: &mut Vec<Event>,
    ) {
        let line = cap_line(line, rule.max_bytes);
        let Some(open) = &mut self.open else {
            self.start_with(line, now, out);
            return;
        };
        let continues = line.text.is_empty() || !rule.starts_event(&line.text);
        let fits = open.event.text.len() + 1 + line.text.len() <= rule.max_bytes;
        if continues && fits {
            open.event.text.push('\n');
            open.event.text.push_str(&line.text);
            open.event.truncated |= line.truncated;
            open.event.end_offset = line.end_offset;
            open.event.line_count += 1;
            open.last_line_at = now;
            return;
        }
        if let Some(finished) = self.take() {
            out.push(finished);
        }
        self.start_with(line, now, out);
    }

    /// Emits the open event if no line came for the rule's timeout.
    pub fn flush_if_idle(&mut self, rule: &MultilineRule, now: Instant, out: &mut Vec<Event>) {
        let idle = self
            .open
            .as_ref()
            .is_some_and(|open| now.saturating_duration_since(open.last_line_at) >= rule.timeout);
        if idle {
            self.flush(out);
        }
    }

    /// Emits the open event, if any.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        if let Some(finished) = self.take() {
            out.push(finished);
        }
    }

    fn start_with(&mut self, line: RawLine, now: Instant, out: &mut Vec<Event>) {
        if line.text.is_empty() {
            out.push(line.into()); // a lone blank line: nothing to assemble
            return;
        }
        self.open = Some(OpenEvent {
            event: line.into(),
            last_line_at: now,
        });
    }
}

/// Trailing blank continuation lines are layout, not content.
fn finish(mut event: Event) -> Event {
    let kept = event.text.trim_end_matches('\n').len();
    event.text.truncate(kept);
    event
}

/// Cuts a line longer than `max_bytes` at a character boundary.
fn cap_line(mut line: RawLine, max_bytes: usize) -> RawLine {
    if line.text.len() > max_bytes {
        let mut end = max_bytes;
        while !line.text.is_char_boundary(end) {
            end -= 1;
        }
        line.text.truncate(end);
        line.truncated = true;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAVA_START: &str = r"^\d{4}-\d{2}-\d{2} ";

    struct Feed {
        rule: MultilineRule,
        assembler: Assembler,
        offset: u64,
        out: Vec<Event>,
        start: Instant,
    }

    impl Feed {
        fn new(max_bytes: usize) -> Feed {
            Feed {
                rule: MultilineRule::new(JAVA_START, max_bytes, Duration::from_secs(1)).unwrap(),
                assembler: Assembler::default(),
                offset: 0,
                out: Vec::new(),
                start: Instant::now(),
            }
        }

        fn line(&mut self, text: &str, at_ms: u64) {
            self.offset += text.len() as u64 + 1;
            let line = RawLine {
                text: text.to_string(),
                truncated: false,
                end_offset: self.offset,
            };
            let now = self.start + Duration::from_millis(at_ms);
            self.assembler.push(&self.rule, line, now, &mut self.out);
        }

        fn texts(&self) -> Vec<&str> {
            self.out.iter().map(|event| event.text.as_str()).collect()
        }
    }

    #[test]
    fn java_stack_trace_is_one_event() {
        let mut feed = Feed::new(256 * 1024);
        let trace = [
            "2026-01-02 10:00:00 ERROR request failed",
            "java.lang.IllegalStateException: boom",
            "\tat com.example.Handler.handle(Handler.java:42)",
            "\tat com.example.Server.run(Server.java:7)",
            "Caused by: java.io.IOException: disk full",
            "\t... 2 more",
        ];
        for line in trace {
            feed.line(line, 0);
        }
        assert!(feed.out.is_empty(), "still open: a continuation may follow");
        feed.line("2026-01-02 10:00:01 INFO next request", 5);
        assert_eq!(feed.texts(), vec![trace.join("\n").as_str()]);
        assert_eq!(feed.out[0].line_count, 6);
        let trace_bytes: u64 = trace.iter().map(|line| line.len() as u64 + 1).sum();
        assert_eq!(
            feed.out[0].end_offset, trace_bytes,
            "ends after its last line"
        );
        assert!(feed.assembler.is_open());
    }

    #[test]
    fn python_traceback_with_blank_line_and_trailing_blank() {
        let mut feed = Feed::new(256 * 1024);
        for line in [
            "2026-01-02 10:00:00 ERROR job crashed",
            "Traceback (most recent call last):",
            "  File \"job.py\", line 3, in <module>",
            "    run()",
            "",
            "ValueError: bad input",
            "",
        ] {
            feed.line(line, 0);
        }
        feed.assembler.flush(&mut feed.out);
        assert_eq!(
            feed.texts(),
            vec![
                "2026-01-02 10:00:00 ERROR job crashed\nTraceback (most recent call last):\n  File \"job.py\", line 3, in <module>\n    run()\n\nValueError: bad input"
            ]
        );
        assert_eq!(feed.out[0].line_count, 7);
    }

    #[test]
    fn idle_event_is_flushed_after_the_timeout() {
        let mut feed = Feed::new(256 * 1024);
        feed.line("2026-01-02 10:00:00 ERROR x", 0);
        feed.line("  detail", 400);
        let (rule, start) = (feed.rule.clone(), feed.start);
        feed.assembler
            .flush_if_idle(&rule, start + Duration::from_millis(1399), &mut feed.out);
        assert!(feed.out.is_empty(), "the timeout runs from the last line");
        feed.assembler
            .flush_if_idle(&rule, start + Duration::from_millis(1400), &mut feed.out);
        assert_eq!(feed.texts(), vec!["2026-01-02 10:00:00 ERROR x\n  detail"]);
        assert!(!feed.assembler.is_open());
    }

    #[test]
    fn event_over_max_bytes_is_split_not_dropped() {
        let mut feed = Feed::new(64);
        feed.line("2026-01-02 10:00:00 ERROR big", 0); // 29 bytes
        feed.line(&"a".repeat(30), 0); // 29 + 1 + 30 = 60: fits
        feed.line(&"b".repeat(10), 0); // would be 71: starts the next record
        feed.line(&"c".repeat(100), 0); // alone over the cap: cut
        feed.assembler.flush(&mut feed.out);
        let texts = feed.texts();
        assert_eq!(texts.len(), 3);
        assert_eq!(texts[0].len(), 60);
        assert_eq!(texts[1], "b".repeat(10));
        assert_eq!(texts[2], "c".repeat(64));
        assert!(feed.out[2].truncated);
        assert!(feed.out.iter().all(|event| event.text.len() <= 64));
        assert_eq!(feed.out[2].end_offset, feed.offset);
    }

    #[test]
    fn leading_continuations_and_lone_blank_lines() {
        let mut feed = Feed::new(1024);
        feed.line("", 0);
        feed.line("\tat orphan.Frame(Frame.java:1)", 0);
        feed.line("2026-01-02 10:00:00 INFO a", 0);
        feed.assembler.flush(&mut feed.out);
        assert_eq!(
            feed.texts(),
            vec![
                "",
                "\tat orphan.Frame(Frame.java:1)",
                "2026-01-02 10:00:00 INFO a"
            ]
        );
    }
}
