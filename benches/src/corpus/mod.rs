//! A deterministic generator of realistic service logs, shared by every benchmark.
//!
//! The same seed and [`CorpusConfig`] give the same bodies, identities and batches on
//! every machine (the generator is ChaCha8, whose output rand promises not to change),
//! so the load generator and the bare-tantivy ceiling index exactly the same documents.
//!
//! What makes it realistic, and why each part is there:
//! - **Templates with a Zipf law** ([`templates::TEMPLATES`], exponent 1.1 by default):
//!   a handful of lines (access logs, health checks, cache lookups) are most of the
//!   volume, and a long tail of warnings, errors and stack traces is rare. This is what
//!   makes postings lists and the doc store compress as they do in production.
//! - **Variable parts drawn from populations** (`values.rs`): users, client addresses,
//!   SKUs and sessions repeat with their own skew; request ids and uuids are fresh.
//! - **Three formats**: ~15 % JSON, ~15 % logfmt, the rest plain text with a
//!   per-service timestamp prefix.
//! - **A length mix** around a configurable mean (260 bytes by default, the mean of
//!   the corpus STACK.md's tantivy figures were measured on): short, medium and long
//!   lines, long ones carrying more context fields, plus rare multi-kilobyte dumps and
//!   stack traces. A feedback term keeps the running mean on target whatever the
//!   templates' natural lengths are.
//! - **A fleet** (`fleet.rs`): services × image versions × generations × instances, so
//!   every record has the resource identity the agent would attach.
//!
//! ```
//! use epitaph_benches::corpus::{Corpus, CorpusConfig};
//!
//! let mut corpus = Corpus::new(42, CorpusConfig::default());
//! let batch = corpus.next_batch(100);
//! assert_eq!(batch.lines, 100);
//! assert!(!batch.request.resource_logs.is_empty());
//! ```

mod fleet;
mod render;
mod templates;
mod values;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::common::v1::{AnyValue, any_value};
use epitaph_proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use epitaph_proto::resource::v1::Resource;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use fleet::{Fleet, Instance};
use render::CivilTime;
pub use render::LineFormat;
use templates::{Shape, TEMPLATES};
use values::{CONTEXT_FIELDS, ValueKind, ValueSource};

/// How the corpus looks. The defaults are the benchmark corpus of README.md.
#[derive(Debug, Clone)]
pub struct CorpusConfig {
    /// Target mean body length in bytes. Lines cannot get much shorter than their
    /// template, so means below ≈ 150 bytes are not reached.
    pub mean_line_bytes: usize,
    /// Exponent of the Zipf law over templates (rank r has weight r^-s).
    pub zipf_exponent: f64,
    /// Share of lines written as JSON objects.
    pub json_share: f64,
    /// Share of lines written as logfmt.
    pub logfmt_share: f64,
    /// Number of services in the fleet.
    pub services: usize,
    /// Instances per generation, inclusive range.
    pub instances_per_generation: (usize, usize),
    /// Timestamp of the first record; `None` is the time the corpus is created, so
    /// records land in the server's current time window.
    pub start_unix_nanos: Option<u64>,
    /// Pace of the simulated clock that stamps records (mean lines per second).
    pub lines_per_second: f64,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            mean_line_bytes: 260,
            zipf_exponent: 1.1,
            json_share: 0.15,
            logfmt_share: 0.15,
            services: 12,
            instances_per_generation: (2, 5),
            start_unix_nanos: None,
            lines_per_second: 100_000.0,
        }
    }
}

/// Log levels with their OTLP severity numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    pub fn severity_number(self) -> i32 {
        match self {
            Level::Debug => 5,
            Level::Info => 9,
            Level::Warn => 13,
            Level::Error => 17,
        }
    }

    pub fn severity_text(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One generated log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedLine {
    /// Index of the sending instance in [`Corpus::fleet`].
    pub instance: usize,
    /// Rank of the template (0 is the most frequent).
    pub template: usize,
    pub level: Level,
    pub format: LineFormat,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    /// Trace and span id, for the records that belong to a traced request.
    pub trace: Option<([u8; 16], [u8; 8])>,
    pub body: String,
}

/// One OTLP request and what it holds.
#[derive(Debug, Clone)]
pub struct Batch {
    pub request: ExportLogsServiceRequest,
    pub lines: usize,
    /// Sum of the body lengths: the "raw bytes" every MB/s figure counts.
    pub body_bytes: u64,
}

enum Segment {
    Literal(&'static str),
    Value { key: &'static str, kind: ValueKind },
}

struct ParsedTemplate {
    level: Level,
    component: &'static str,
    message: &'static str,
    shape: Shape,
    segments: Vec<Segment>,
}

/// The length mix: (share, low, high) multipliers of the mean, before normalization.
/// Half the lines are short, a third about the mean, an eighth long.
const LENGTH_MIX: [(f64, f64, f64); 3] = [(0.50, 0.35, 0.65), (0.38, 0.8, 1.6), (0.12, 2.0, 4.0)];

/// How many lines the length feedback spreads a deficit over.
const LENGTH_FEEDBACK_LINES: f64 = 256.0;

/// Share of records without a printed trace id that still carry a trace context.
const UNPRINTED_TRACE_SHARE: f64 = 0.3;

/// The generator. See the module documentation.
pub struct Corpus {
    config: CorpusConfig,
    rng: ChaCha8Rng,
    fleet: Fleet,
    templates: Vec<ParsedTemplate>,
    template_weights: WeightedIndex<f64>,
    values: ValueSource,
    length_mix_norm: f64,
    clock_nanos: u64,
    nanos_per_line: f64,
    emitted_lines: u64,
    emitted_bytes: u64,
    /// `log.file.path` of each instance, as the agent's file source would set it.
    log_file_paths: Vec<String>,
    scratch: String,
    rendered: Vec<(usize, usize)>,
}

impl Corpus {
    pub fn new(seed: u64, config: CorpusConfig) -> Corpus {
        // Separate streams, so the fleet does not shift when line generation changes.
        let mut fleet_rng = ChaCha8Rng::seed_from_u64(seed);
        fleet_rng.set_stream(1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2);

        let fleet = Fleet::generate(
            &mut fleet_rng,
            config.services,
            config.instances_per_generation,
        );
        let templates: Vec<ParsedTemplate> = TEMPLATES
            .iter()
            .map(|template| ParsedTemplate {
                level: template.level,
                component: template.component,
                message: template.message,
                shape: template.shape,
                segments: parse_pattern(template.pattern)
                    .expect("templates are static data, checked by a unit test"),
            })
            .collect();
        let exponent = if config.zipf_exponent.is_finite() {
            config.zipf_exponent.max(0.0)
        } else {
            1.1
        };
        let weights: Vec<f64> = (1..=templates.len())
            .map(|rank| (rank as f64).powf(-exponent))
            .collect();
        let template_weights =
            WeightedIndex::new(&weights).expect("zipf weights are positive and finite");
        let values = ValueSource::new(fleet_rng.random(), &mut rng);
        let length_mix_norm = LENGTH_MIX
            .iter()
            .map(|(share, low, high)| share * (low + high) / 2.0)
            .sum();
        let start = config.start_unix_nanos.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(0)
        });
        let nanos_per_line = 1e9 / config.lines_per_second.max(1e-3);
        let log_file_paths: Vec<String> = fleet
            .instances()
            .iter()
            .map(|instance| format!("/var/log/{0}/{0}.log", instance.service_name))
            .collect();
        Corpus {
            config,
            rng,
            fleet,
            templates,
            template_weights,
            values,
            length_mix_norm,
            clock_nanos: start,
            nanos_per_line,
            emitted_lines: 0,
            emitted_bytes: 0,
            log_file_paths,
            scratch: String::new(),
            rendered: Vec::new(),
        }
    }

    pub fn config(&self) -> &CorpusConfig {
        &self.config
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Number of message templates.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// The level of the template of rank `template`.
    pub fn template_level(&self, template: usize) -> Level {
        self.templates[template].level
    }

    /// Generates the next record.
    pub fn next_record(&mut self) -> GeneratedLine {
        self.values.start_line();
        let template_index = self.template_weights.sample(&mut self.rng);
        let instance_index = self.fleet.traffic().sample(&mut self.rng);
        self.clock_nanos += (self.nanos_per_line * self.rng.random_range(0.0..2.0)) as u64;
        let time_unix_nano = self.clock_nanos;
        let observed_time_unix_nano = time_unix_nano + self.rng.random_range(200_000..40_000_000);

        let target_length = self.draw_target_length();
        let template = &self.templates[template_index];
        let format = match template.shape {
            Shape::Multiline => LineFormat::Plain,
            Shape::Line => {
                let draw: f64 = self.rng.random();
                if draw < self.config.json_share {
                    LineFormat::Json
                } else if draw < self.config.json_share + self.config.logfmt_share {
                    LineFormat::Logfmt
                } else {
                    LineFormat::Plain
                }
            }
        };

        // Draw every value first, into one scratch buffer, so each format can place them.
        self.scratch.clear();
        self.rendered.clear();
        for segment in &template.segments {
            if let Segment::Value { kind, .. } = segment {
                let start = self.scratch.len();
                self.values.write(*kind, &mut self.rng, &mut self.scratch);
                self.rendered.push((start, self.scratch.len()));
            }
        }

        let mut body = String::with_capacity(target_length + 64);
        let civil_time = CivilTime::from_unix_nanos(time_unix_nano);
        let style = self.fleet.instance(instance_index).service_index;
        match format {
            LineFormat::Plain => {
                let thread_start = self.scratch.len();
                if style % 3 == 1 {
                    self.values
                        .write(ValueKind::Thread, &mut self.rng, &mut self.scratch);
                }
                render::write_plain_prefix(
                    style,
                    &civil_time,
                    template.level,
                    template.component,
                    &self.scratch[thread_start..],
                    &mut body,
                );
                let mut values = self.rendered.iter();
                for segment in &template.segments {
                    match segment {
                        Segment::Literal(text) => body.push_str(text),
                        Segment::Value { .. } => {
                            let (start, end) = values.next().copied().unwrap_or_default();
                            body.push_str(&self.scratch[start..end]);
                        }
                    }
                }
            }
            LineFormat::Json => {
                body.push_str("{\"ts\":\"");
                civil_time.write_rfc3339(&mut body);
                body.push_str("\",\"level\":\"");
                body.push_str(template.level.as_str());
                body.push_str("\",\"logger\":");
                render::write_json_string(template.component, &mut body);
                body.push_str(",\"msg\":");
                render::write_json_string(template.message, &mut body);
                let mut values = self.rendered.iter();
                for segment in &template.segments {
                    if let Segment::Value { key, kind } = segment {
                        let (start, end) = values.next().copied().unwrap_or_default();
                        render::write_json_member(
                            key,
                            &self.scratch[start..end],
                            kind.is_number(),
                            &mut body,
                        );
                    }
                }
            }
            LineFormat::Logfmt => {
                body.push_str("ts=");
                civil_time.write_rfc3339(&mut body);
                body.push_str(" level=");
                body.push_str(template.level.as_str());
                render::write_logfmt_pair("logger", template.component, &mut body);
                render::write_logfmt_pair("msg", template.message, &mut body);
                let mut values = self.rendered.iter();
                for segment in &template.segments {
                    if let Segment::Value { key, .. } = segment {
                        let (start, end) = values.next().copied().unwrap_or_default();
                        render::write_logfmt_pair(key, &self.scratch[start..end], &mut body);
                    }
                }
            }
        }

        if template.shape == Shape::Line {
            self.pad_with_context(template_index, format, target_length, &mut body);
        }
        if format == LineFormat::Json {
            body.push('}');
        }

        let trace = self.values.line_trace(&mut self.rng, UNPRINTED_TRACE_SHARE);
        self.emitted_lines += 1;
        self.emitted_bytes += body.len() as u64;
        GeneratedLine {
            instance: instance_index,
            template: template_index,
            level: self.templates[template_index].level,
            format,
            time_unix_nano,
            observed_time_unix_nano,
            trace,
            body,
        }
    }

    /// A length drawn from the mix, scaled so that the running mean tends to the target.
    fn draw_target_length(&mut self) -> usize {
        let mean = self.config.mean_line_bytes.max(1) as f64;
        let draw: f64 = self.rng.random();
        let mut cumulative = 0.0;
        let mut multiplier = 1.0;
        for (share, low, high) in LENGTH_MIX {
            cumulative += share;
            if draw < cumulative {
                multiplier = self.rng.random_range(low..high);
                break;
            }
        }
        // Bytes owed (positive) or overspent (negative) so far, spread over the next lines.
        let deficit = mean * self.emitted_lines as f64 - self.emitted_bytes as f64;
        let scale = (1.0 + deficit / (mean * LENGTH_FEEDBACK_LINES)).clamp(0.1, 4.0);
        (mean * multiplier / self.length_mix_norm * scale) as usize
    }

    /// Appends context fields (and then free text) until the body reaches `target_length`.
    fn pad_with_context(
        &mut self,
        template_index: usize,
        format: LineFormat,
        target_length: usize,
        body: &mut String,
    ) {
        if body.len() >= target_length {
            return;
        }
        let template = &self.templates[template_index];
        let first = self.rng.random_range(0..CONTEXT_FIELDS.len());
        for offset in 0..CONTEXT_FIELDS.len() {
            if body.len() >= target_length {
                return;
            }
            let (key, kind) = CONTEXT_FIELDS[(first + offset) % CONTEXT_FIELDS.len()];
            let taken = template.segments.iter().any(
                |segment| matches!(segment, Segment::Value { key: taken, .. } if *taken == key),
            );
            if taken {
                continue;
            }
            self.scratch.clear();
            self.values.write(kind, &mut self.rng, &mut self.scratch);
            write_field(format, key, &self.scratch, kind.is_number(), body);
        }
        if body.len() >= target_length {
            return;
        }
        // Very long lines: a free-text detail, as in verbose error descriptions.
        self.scratch.clear();
        while body.len() + self.scratch.len() + 12 < target_length {
            if !self.scratch.is_empty() {
                self.scratch.push(' ');
            }
            self.values
                .write(ValueKind::Word, &mut self.rng, &mut self.scratch);
        }
        write_field(format, "detail", &self.scratch, false, body);
    }

    /// Generates `lines` records and packs them into one request.
    pub fn next_batch(&mut self, lines: usize) -> Batch {
        let records: Vec<GeneratedLine> = (0..lines).map(|_| self.next_record()).collect();
        let body_bytes = records.iter().map(|line| line.body.len() as u64).sum();
        Batch {
            request: self.build_request(records),
            lines,
            body_bytes,
        }
    }

    /// Packs records into one OTLP request, one `ResourceLogs` per sending instance, in
    /// the order the instances first appear.
    pub fn build_request(
        &self,
        lines: impl IntoIterator<Item = GeneratedLine>,
    ) -> ExportLogsServiceRequest {
        let mut resource_of_instance: HashMap<usize, usize> = HashMap::new();
        let mut resource_logs: Vec<ResourceLogs> = Vec::new();
        for line in lines {
            let position = *resource_of_instance
                .entry(line.instance)
                .or_insert_with(|| {
                    let instance = self.fleet.instance(line.instance);
                    resource_logs.push(ResourceLogs {
                        resource: Some(Resource {
                            attributes: instance.resource_attributes(),
                            ..Default::default()
                        }),
                        scope_logs: vec![ScopeLogs::default()],
                        ..Default::default()
                    });
                    resource_logs.len() - 1
                });
            let log_file_path = &self.log_file_paths[line.instance];
            let (trace_id, span_id) = match line.trace {
                Some((trace, span)) => (trace.to_vec(), span.to_vec()),
                None => (Vec::new(), Vec::new()),
            };
            let record = LogRecord {
                time_unix_nano: line.time_unix_nano,
                observed_time_unix_nano: line.observed_time_unix_nano,
                severity_number: line.level.severity_number(),
                severity_text: line.level.severity_text().to_string(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(line.body)),
                }),
                attributes: vec![fleet::string_attribute("log.file.path", log_file_path)],
                flags: if trace_id.is_empty() { 0 } else { 1 },
                trace_id,
                span_id,
                ..Default::default()
            };
            resource_logs[position].scope_logs[0]
                .log_records
                .push(record);
        }
        ExportLogsServiceRequest { resource_logs }
    }
}

fn write_field(format: LineFormat, key: &str, value: &str, is_number: bool, body: &mut String) {
    match format {
        LineFormat::Json => render::write_json_member(key, value, is_number, body),
        LineFormat::Plain | LineFormat::Logfmt => render::write_logfmt_pair(key, value, body),
    }
}

/// Splits `text {key:kind} text` into literal and value segments.
fn parse_pattern(pattern: &'static str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            segments.push(Segment::Literal(&rest[..open]));
        }
        let Some(length) = rest[open..].find('}') else {
            return Err(format!("unclosed placeholder in `{pattern}`"));
        };
        let placeholder = &rest[open + 1..open + length];
        let Some((key, kind_name)) = placeholder.split_once(':') else {
            return Err(format!(
                "placeholder `{placeholder}` in `{pattern}` is not `key:kind`"
            ));
        };
        let Some(kind) = ValueKind::from_name(kind_name) else {
            return Err(format!("unknown kind `{kind_name}` in `{pattern}`"));
        };
        if keys.contains(&key) {
            return Err(format!("key `{key}` appears twice in `{pattern}`"));
        }
        keys.push(key);
        segments.push(Segment::Value { key, kind });
        rest = &rest[open + length + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest));
    }
    Ok(segments)
}

/// How many distinct terms a sample of bodies has and how many occur only once, with
/// tokens split like tantivy's default tokenizer (alphanumeric runs, lowercased).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenStats {
    pub occurrences: u64,
    pub distinct: u64,
    pub singletons: u64,
}

impl TokenStats {
    pub fn measure<'a>(bodies: impl IntoIterator<Item = &'a str>) -> TokenStats {
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut occurrences = 0u64;
        let mut token = String::new();
        for body in bodies {
            for character in body.chars().chain(std::iter::once(' ')) {
                if character.is_alphanumeric() {
                    token.extend(character.to_lowercase());
                    continue;
                }
                if token.is_empty() {
                    continue;
                }
                occurrences += 1;
                match counts.get_mut(token.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        counts.insert(token.clone(), 1);
                    }
                }
                token.clear();
            }
        }
        let singletons = counts.values().filter(|count| **count == 1).count() as u64;
        TokenStats {
            occurrences,
            distinct: counts.len() as u64,
            singletons,
        }
    }

    /// Share of the distinct terms that occur exactly once in the sample.
    pub fn singleton_share_of_distinct(&self) -> f64 {
        self.singletons as f64 / self.distinct.max(1) as f64
    }

    /// Share of all token occurrences that are the only occurrence of their term.
    pub fn singleton_share_of_occurrences(&self) -> f64 {
        self.singletons as f64 / self.occurrences.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_config() -> CorpusConfig {
        CorpusConfig {
            start_unix_nanos: Some(1_764_151_200_000_000_000),
            ..CorpusConfig::default()
        }
    }

    fn sample(seed: u64, config: CorpusConfig, lines: usize) -> Vec<GeneratedLine> {
        let mut corpus = Corpus::new(seed, config);
        (0..lines).map(|_| corpus.next_record()).collect()
    }

    #[test]
    fn every_template_parses_with_known_kinds_and_unique_keys() {
        assert!(TEMPLATES.len() >= 60, "only {} templates", TEMPLATES.len());
        for template in TEMPLATES {
            if let Err(problem) = parse_pattern(template.pattern) {
                panic!("{problem}");
            }
        }
    }

    #[test]
    fn the_same_seed_generates_the_same_lines_and_requests() {
        let first = sample(7, fixed_config(), 3_000);
        let second = sample(7, fixed_config(), 3_000);
        assert_eq!(first, second);
        let other_seed = sample(8, fixed_config(), 3_000);
        assert_ne!(first, other_seed);

        let mut left = Corpus::new(7, fixed_config());
        let mut right = Corpus::new(7, fixed_config());
        assert_eq!(left.next_batch(500).request, right.next_batch(500).request);
    }

    #[test]
    fn template_frequencies_are_zipf_skewed() {
        let lines = sample(1, fixed_config(), 100_000);
        let mut counts = vec![0u64; TEMPLATES.len()];
        for line in &lines {
            counts[line.template] += 1;
        }
        let top = counts[0];
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        assert!(
            top > 20 * median.max(1),
            "top template {top} lines, median {median}"
        );
        assert!(
            top as f64 / lines.len() as f64 > 0.15,
            "top template is only {top} of {}",
            lines.len()
        );
        assert!(
            counts.iter().filter(|count| **count > 0).count() >= 60,
            "rare templates never drawn"
        );
    }

    #[test]
    fn levels_have_realistic_shares() {
        let lines = sample(2, fixed_config(), 100_000);
        let share = |level: Level| {
            lines.iter().filter(|line| line.level == level).count() as f64 / lines.len() as f64
        };
        let (debug, info, warn, error) = (
            share(Level::Debug),
            share(Level::Info),
            share(Level::Warn),
            share(Level::Error),
        );
        assert!(info > 0.6, "info {info}");
        assert!(
            info > debug && debug > warn && warn > error && error > 0.005,
            "debug {debug} warn {warn} error {error}"
        );
    }

    #[test]
    fn mean_line_length_is_near_the_target() {
        for target in [260usize, 600] {
            let config = CorpusConfig {
                mean_line_bytes: target,
                ..fixed_config()
            };
            let lines = sample(3, config, 50_000);
            let mean =
                lines.iter().map(|line| line.body.len()).sum::<usize>() as f64 / lines.len() as f64;
            assert!(
                (mean - target as f64).abs() < target as f64 * 0.05,
                "target {target}, mean {mean}"
            );
            let longest = lines.iter().map(|line| line.body.len()).max().unwrap_or(0);
            assert!(longest > 2_000, "no multi-kilobyte line, longest {longest}");
            let shortest = lines.iter().map(|line| line.body.len()).min().unwrap_or(0);
            assert!(shortest < target / 2, "no short line, shortest {shortest}");
        }
    }

    #[test]
    fn about_fifteen_percent_of_lines_are_json_objects() {
        let lines = sample(4, fixed_config(), 50_000);
        let json_lines: Vec<&GeneratedLine> = lines
            .iter()
            .filter(|line| line.format == LineFormat::Json)
            .collect();
        let share = json_lines.len() as f64 / lines.len() as f64;
        assert!((0.12..0.18).contains(&share), "json share {share}");
        for line in json_lines.iter().take(2_000) {
            let parsed: serde_json::Value = serde_json::from_str(&line.body)
                .unwrap_or_else(|error| panic!("{error}: {}", line.body));
            assert_eq!(parsed["level"], line.level.as_str());
        }
        let logfmt_share = lines
            .iter()
            .filter(|line| line.format == LineFormat::Logfmt)
            .count() as f64
            / lines.len() as f64;
        assert!(
            (0.12..0.18).contains(&logfmt_share),
            "logfmt share {logfmt_share}"
        );
    }

    #[test]
    fn ids_make_a_realistic_share_of_terms_unique() {
        let lines = sample(5, fixed_config(), 20_000);
        let stats = TokenStats::measure(lines.iter().map(|line| line.body.as_str()));
        let distinct_share = stats.singleton_share_of_distinct();
        let occurrence_share = stats.singleton_share_of_occurrences();
        // Ids make most distinct terms unique, yet most token occurrences repeat.
        assert!(
            (0.4..0.95).contains(&distinct_share),
            "singletons are {distinct_share} of distinct terms"
        );
        assert!(
            (0.02..0.3).contains(&occurrence_share),
            "singletons are {occurrence_share} of occurrences"
        );
    }

    #[test]
    fn requests_group_records_by_instance_identity() {
        let mut corpus = Corpus::new(6, fixed_config());
        let batch = corpus.next_batch(1_000);
        let mut seen_hosts = std::collections::HashSet::new();
        let mut records = 0;
        for resource_logs in &batch.request.resource_logs {
            let attributes = &resource_logs
                .resource
                .as_ref()
                .expect("every group has a resource")
                .attributes;
            let host = attributes
                .iter()
                .find(|kv| kv.key == epitaph_proto::keys::HOST_ID)
                .expect("host.id is set");
            let Some(any_value::Value::StringValue(host)) =
                host.value.as_ref().and_then(|v| v.value.as_ref())
            else {
                panic!("host.id is not a string");
            };
            assert!(
                host.starts_with("i-0") && host.len() == 19,
                "host id {host}"
            );
            assert!(
                seen_hosts.insert(host.clone()),
                "instance {host} split over two resource groups"
            );
            for key in [
                epitaph_proto::keys::SERVICE_NAME,
                epitaph_proto::keys::IMAGE_VERSION,
                epitaph_proto::keys::GENERATION,
            ] {
                assert!(attributes.iter().any(|kv| kv.key == key), "{key} missing");
            }
            records += resource_logs
                .scope_logs
                .iter()
                .map(|scope| scope.log_records.len())
                .sum::<usize>();
        }
        assert_eq!(records, 1_000);
        assert!(
            seen_hosts.len() > 5,
            "only {} instances in a batch",
            seen_hosts.len()
        );
    }

    #[test]
    fn the_servers_schema_files_every_record_under_its_identity_and_level() {
        let log_schema = epitaph_server::index::schema::LogSchema::new();
        let mut corpus = Corpus::new(10, fixed_config());
        let lines: Vec<GeneratedLine> = (0..300).map(|_| corpus.next_record()).collect();
        let expected_levels: Vec<&str> = lines.iter().map(|line| line.level.as_str()).collect();
        let mut documents = 0;
        let mut levels_by_service: HashMap<String, Vec<&str>> = HashMap::new();
        let request = corpus.build_request(lines);
        log_schema.documents_from_request(&request, 1, 1 << 24, |document, identity| {
            documents += 1;
            assert!(identity.get("instance").starts_with("i-0"));
            for field in [
                "service",
                "image",
                "version",
                "image_id",
                "generation",
                "host",
            ] {
                assert!(!identity.get(field).is_empty(), "{field} is empty");
            }
            use tantivy::schema::Value as _;
            let level = document
                .get_first(log_schema.level)
                .and_then(|value| value.as_str())
                .unwrap_or("")
                .to_string();
            let level = Level::ALL
                .iter()
                .map(|l| l.as_str())
                .find(|l| *l == level)
                .expect("a known level");
            levels_by_service
                .entry(identity.get("service").to_string())
                .or_default()
                .push(level);
        });
        assert_eq!(documents, 300);
        let mut mapped_levels: Vec<&str> = levels_by_service.into_values().flatten().collect();
        let mut expected_levels = expected_levels;
        mapped_levels.sort_unstable();
        expected_levels.sort_unstable();
        assert_eq!(mapped_levels, expected_levels);
    }

    #[test]
    fn the_fleet_runs_two_or_three_versions_per_service() {
        let corpus = Corpus::new(9, fixed_config());
        let fleet = corpus.fleet();
        for service in 0..corpus.config().services {
            let mut versions: Vec<&str> = fleet
                .instances()
                .iter()
                .filter(|i| i.service_index == service)
                .map(|i| i.image_version.as_str())
                .collect();
            versions.dedup();
            assert!(
                (2..=3).contains(&versions.len()),
                "service {service} runs {versions:?}"
            );
        }
    }
}
