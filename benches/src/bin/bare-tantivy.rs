//! The ceiling: the benchmark corpus indexed by a bare tantivy `IndexWriter`, with
//! Epitaph's own schema, split settings and OTLP-to-document mapping, and nothing else
//! (no gRPC, no WAL, no fsync per batch, no commit interval).
//!
//! The requests are the ones `epitaph-loadgen` sends for the same seed, config and
//! batch size, and they are all generated before the clock starts. The timed part is
//! what the server's indexer must do too: map each request to documents
//! (`LogSchema::documents_from_request`), add them, commit once and wait for merges.
//! `--docs-before-timer` also moves the mapping out of the timed part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use clap::Parser;
use epitaph_benches::corpus::{Batch, Corpus, CorpusConfig};
use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::common::v1::any_value;
use epitaph_proto::keys;
use epitaph_server::index::schema::{LogSchema, ROW_INDEX_BITS, split_index_settings};
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT};
use tantivy::{DateTime, Index, IndexWriter, TantivyDocument};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SchemaChoice {
    Epitaph,
    Stack,
}

#[derive(Parser, Debug)]
#[command(
    about = "Indexes the benchmark corpus with a bare tantivy IndexWriter: Epitaph's indexing ceiling"
)]
struct Args {
    /// Lines (documents) to index.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Lines per OTLP request, as the load generator batches them.
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target mean body length in bytes.
    #[arg(long, default_value_t = 260)]
    mean_line_bytes: usize,
    /// Indexing threads of the IndexWriter.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// IndexWriter memory budget in MB (shared by its threads).
    #[arg(long, default_value_t = 400)]
    memory_mb: usize,
    /// Map requests to tantivy documents before the clock starts, too.
    #[arg(long)]
    docs_before_timer: bool,
    /// `epitaph`: the server's schema. `stack`: STACK.md's reference schema (timestamp,
    /// five `STRING | FAST` identity fields, body `TEXT | STORED`), to tell the corpus's
    /// cost from the schema's.
    #[arg(long, value_enum, default_value_t = SchemaChoice::Epitaph)]
    schema: SchemaChoice,
    /// Directory to create the temporary index in (default: the system's temp dir).
    #[arg(long)]
    temp_dir: Option<PathBuf>,
    /// Keep the index directory and print its path.
    #[arg(long)]
    keep: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.lines > 0, "--lines must be at least 1");
    ensure!(args.threads > 0, "--threads must be at least 1");

    let generation_started = Instant::now();
    let config = CorpusConfig {
        mean_line_bytes: args.mean_line_bytes,
        ..CorpusConfig::default()
    };
    let mut corpus = Corpus::new(args.seed, config);
    let batch_size = args.batch_size.max(1);
    let mut batches: Vec<Batch> = Vec::new();
    let mut remaining = args.lines;
    while remaining > 0 {
        let lines = remaining.min(batch_size as u64) as usize;
        batches.push(corpus.next_batch(lines));
        remaining -= lines as u64;
    }
    let raw_body_bytes: u64 = batches.iter().map(|batch| batch.body_bytes).sum();
    let log_schema = match args.schema {
        SchemaChoice::Epitaph => DocumentMapper::Epitaph(LogSchema::new()),
        SchemaChoice::Stack => DocumentMapper::Stack(StackSchema::new()),
    };
    let received_at_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as i64)
        .unwrap_or(0);
    let prebuilt_documents: Option<Vec<TantivyDocument>> = args.docs_before_timer.then(|| {
        let mut documents = Vec::with_capacity(args.lines as usize);
        for (batch_index, batch) in batches.iter().enumerate() {
            log_schema.documents_from_request(
                &batch.request,
                received_at_nanos,
                row_base(batch_index),
                |document| documents.push(document),
            );
        }
        documents
    });
    let generation_seconds = generation_started.elapsed().as_secs_f64();
    if !args.json {
        eprintln!(
            "generated {} lines in {} requests ({} raw body bytes) in {generation_seconds:.1} s",
            args.lines,
            batches.len(),
            raw_body_bytes
        );
    }

    let temp_dir = match &args.temp_dir {
        Some(parent) => tempfile::Builder::new()
            .prefix("bare-tantivy-")
            .tempdir_in(parent),
        None => tempfile::Builder::new().prefix("bare-tantivy-").tempdir(),
    }
    .context("creating the temporary index directory")?;
    let index = Index::builder()
        .schema(log_schema.schema())
        .settings(split_index_settings())
        .create_in_dir(temp_dir.path())
        .with_context(|| format!("creating an index in {}", temp_dir.path().display()))?;
    let mut writer: IndexWriter<TantivyDocument> = index
        .writer_with_num_threads(args.threads, args.memory_mb * 1_000_000)
        .context("creating the index writer")?;

    let started = Instant::now();
    match prebuilt_documents {
        Some(documents) => {
            for document in documents {
                writer.add_document(document).context("adding a document")?;
            }
        }
        None => {
            let mut add_error = None;
            for (batch_index, batch) in batches.iter().enumerate() {
                log_schema.documents_from_request(
                    &batch.request,
                    received_at_nanos,
                    row_base(batch_index),
                    |document| {
                        if let Err(error) = writer.add_document(document) {
                            add_error.get_or_insert(error);
                        }
                    },
                );
            }
            if let Some(error) = add_error {
                return Err(error).context("adding a document");
            }
        }
    }
    let added_seconds = started.elapsed().as_secs_f64();
    writer.commit().context("committing the index")?;
    writer
        .wait_merging_threads()
        .context("waiting for merges")?;
    let elapsed_seconds = started.elapsed().as_secs_f64();

    let metas = index.load_metas().context("reading the index metadata")?;
    let indexed_docs: u64 = metas
        .segments
        .iter()
        .map(|segment| u64::from(segment.num_docs()))
        .sum();
    ensure!(
        indexed_docs == args.lines,
        "indexed {indexed_docs} documents, expected {}",
        args.lines
    );
    let bytes_by_kind = bytes_by_file_kind(temp_dir.path())?;
    let index_bytes: u64 = bytes_by_kind.values().sum();

    let docs_per_second = args.lines as f64 / elapsed_seconds.max(1e-9);
    let megabytes_per_second = raw_body_bytes as f64 / 1e6 / elapsed_seconds.max(1e-9);
    let disk_per_raw = index_bytes as f64 / raw_body_bytes.max(1) as f64;
    if args.json {
        let result = serde_json::json!({
            "docs_per_second": docs_per_second,
            "megabytes_per_second": megabytes_per_second,
            "docs": args.lines,
            "raw_body_bytes": raw_body_bytes,
            "index_bytes": index_bytes,
            "disk_per_raw": disk_per_raw,
            "elapsed_seconds": elapsed_seconds,
            "add_seconds": added_seconds,
            "commit_and_merge_seconds": elapsed_seconds - added_seconds,
            "generation_seconds": generation_seconds,
            "segments": metas.segments.len(),
            "threads": args.threads,
            "memory_mb": args.memory_mb,
            "docs_before_timer": args.docs_before_timer,
            "schema": format!("{:?}", args.schema).to_lowercase(),
            "bytes_by_file_kind": bytes_by_kind,
        });
        println!("{result}");
    } else {
        let kinds: Vec<String> = bytes_by_kind
            .iter()
            .map(|(kind, bytes)| format!("{kind} {:.1} MB", *bytes as f64 / 1e6))
            .collect();
        println!(
            "docs/s: {docs_per_second:.0} ({} docs in {elapsed_seconds:.2} s: add {added_seconds:.2} s, commit+merge {:.2} s; {} threads, {} MB budget{}{})",
            args.lines,
            elapsed_seconds - added_seconds,
            args.threads,
            args.memory_mb,
            if args.docs_before_timer {
                ", documents built before the timer"
            } else {
                ""
            },
            if args.schema == SchemaChoice::Stack {
                ", STACK.md schema"
            } else {
                ""
            }
        );
        println!("MB/s: {megabytes_per_second:.2} (raw body bytes: {raw_body_bytes})");
        println!(
            "index bytes: {index_bytes} in {} segments ({})",
            metas.segments.len(),
            kinds.join(", ")
        );
        println!("bytes on disk / raw bytes: {disk_per_raw:.3}");
    }
    if args.keep {
        let kept = temp_dir.keep();
        eprintln!("index kept in {}", kept.display());
    }
    Ok(())
}

/// Maps OTLP requests to the documents of the chosen schema.
enum DocumentMapper {
    Epitaph(LogSchema),
    Stack(StackSchema),
}

impl DocumentMapper {
    fn schema(&self) -> Schema {
        match self {
            DocumentMapper::Epitaph(log_schema) => log_schema.schema(),
            DocumentMapper::Stack(stack_schema) => stack_schema.schema.clone(),
        }
    }

    fn documents_from_request(
        &self,
        request: &ExportLogsServiceRequest,
        received_at_nanos: i64,
        row_base: u64,
        mut emit: impl FnMut(TantivyDocument),
    ) {
        match self {
            DocumentMapper::Epitaph(log_schema) => log_schema.documents_from_request(
                request,
                received_at_nanos,
                row_base,
                |document, _| emit(document),
            ),
            DocumentMapper::Stack(stack_schema) => {
                stack_schema.documents_from_request(request, emit)
            }
        }
    }
}

/// STACK.md's reference schema: timestamp, five `STRING | FAST` identity fields and a
/// `TEXT | STORED` body.
struct StackSchema {
    schema: Schema,
    timestamp: Field,
    identity: [Field; 5],
    body: Field,
}

impl StackSchema {
    const IDENTITY_KEYS: [&str; 5] = [
        keys::SERVICE_NAME,
        keys::IMAGE_NAME,
        keys::IMAGE_VERSION,
        keys::GENERATION,
        keys::HOST_ID,
    ];

    fn new() -> StackSchema {
        let mut builder = Schema::builder();
        let timestamp = builder.add_date_field("timestamp", INDEXED | FAST | STORED);
        let identity = Self::IDENTITY_KEYS.map(|key| builder.add_text_field(key, STRING | FAST));
        let body = builder.add_text_field("body", TEXT | STORED);
        StackSchema {
            schema: builder.build(),
            timestamp,
            identity,
            body,
        }
    }

    fn documents_from_request(
        &self,
        request: &ExportLogsServiceRequest,
        mut emit: impl FnMut(TantivyDocument),
    ) {
        for resource_logs in &request.resource_logs {
            let attributes = resource_logs
                .resource
                .as_ref()
                .map(|resource| resource.attributes.as_slice())
                .unwrap_or(&[]);
            let identity = Self::IDENTITY_KEYS.map(|key| {
                attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|value| match &value.value {
                        Some(any_value::Value::StringValue(text)) => Some(text.as_str()),
                        _ => None,
                    })
                    .unwrap_or("")
            });
            for record in resource_logs
                .scope_logs
                .iter()
                .flat_map(|scope_logs| &scope_logs.log_records)
            {
                let mut document = TantivyDocument::new();
                document.add_date(
                    self.timestamp,
                    DateTime::from_timestamp_nanos(record.time_unix_nano as i64),
                );
                for (field, value) in self.identity.iter().zip(identity) {
                    document.add_text(*field, value);
                }
                if let Some(any_value::Value::StringValue(body)) =
                    record.body.as_ref().and_then(|body| body.value.as_ref())
                {
                    document.add_text(self.body, body);
                }
                emit(document);
            }
        }
    }
}

/// Row numbers as the server gives them: the batch plays the WAL record's part.
fn row_base(batch_index: usize) -> u64 {
    (batch_index as u64 + 1) << ROW_INDEX_BITS
}

/// Bytes of the index's files grouped by extension (`store`, `idx`, `pos`, `term`, ...).
fn bytes_by_file_kind(directory: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut bytes_by_kind = BTreeMap::new();
    let entries =
        std::fs::read_dir(directory).with_context(|| format!("listing {}", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", directory.display()))?;
        let metadata = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        if !metadata.is_file() {
            continue;
        }
        let path = entry.path();
        let kind = path
            .extension()
            .and_then(|extension| extension.to_str())
            .unwrap_or("other")
            .to_string();
        *bytes_by_kind.entry(kind).or_default() += metadata.len();
    }
    Ok(bytes_by_kind)
}
