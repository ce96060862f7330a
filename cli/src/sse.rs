//! Server-sent events read by hand from a streaming body: the tail's format is small
//! (comments, `event:` and `data:` lines, blank-line separators) and a crate for it would
//! outweigh this file.

use std::io::BufRead;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `event:` name; empty for plain messages.
    pub name: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Reads events from `reader` until it ends; comments and unknown fields are skipped, as
/// the SSE specification says.
pub struct Events<R> {
    reader: R,
}

impl<R: BufRead> Events<R> {
    pub fn new(reader: R) -> Events<R> {
        Events { reader }
    }
}

impl<R: BufRead> Iterator for Events<R> {
    type Item = std::io::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut name = String::new();
        let mut data: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => return Some(Err(error)),
            }
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if data.is_empty() {
                    name.clear();
                    continue;
                }
                return Some(Ok(Event {
                    name,
                    data: data.join("\n"),
                }));
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => data.push(value.to_string()),
                "event" => name = value.to_string(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_multi_line_data_are_read() {
        let stream = ": tailing\n\ndata: {\"a\":1}\n\n: heartbeat\n\nevent: skipped\r\ndata: one\ndata:two\n\ndata: cut";
        let events: Vec<Event> = Events::new(stream.as_bytes()).map(Result::unwrap).collect();
        assert_eq!(
            events,
            [
                Event {
                    name: String::new(),
                    data: "{\"a\":1}".into()
                },
                Event {
                    name: "skipped".into(),
                    data: "one\ntwo".into()
                },
            ]
        );
    }
}
