//! Prints sample lines of the benchmark corpus, or statistics about it.
//!
//! ```text
//! epitaph-corpus --sample 20            # twenty lines, one per line, newlines escaped
//! epitaph-corpus --stats --lines 200000 # template skew, levels, formats, lengths, terms
//! ```

use std::collections::BTreeMap;

use anyhow::ensure;
use clap::Parser;
use epitaph_benches::corpus::{Corpus, CorpusConfig, Level, LineFormat, TokenStats};

#[derive(Parser, Debug)]
#[command(about = "Prints sample lines of the benchmark corpus, or statistics about it")]
struct Args {
    /// Print this many lines (newlines inside a body are shown as \n).
    #[arg(long)]
    sample: Option<usize>,
    /// Print statistics over --lines lines.
    #[arg(long)]
    stats: bool,
    /// Lines to measure for --stats.
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target mean body length in bytes.
    #[arg(long, default_value_t = 260)]
    mean_line_bytes: usize,
    /// Print the identity with each sampled line.
    #[arg(long)]
    with_identity: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.sample.is_some() || args.stats,
        "nothing to do: pass --sample N or --stats"
    );
    let config = CorpusConfig {
        mean_line_bytes: args.mean_line_bytes,
        ..CorpusConfig::default()
    };
    if let Some(count) = args.sample {
        let mut corpus = Corpus::new(args.seed, config.clone());
        for _ in 0..count {
            let line = corpus.next_record();
            if args.with_identity {
                let instance = corpus.fleet().instance(line.instance);
                print!(
                    "[{} {} gen={} {}] ",
                    instance.service_name,
                    instance.image_version,
                    instance.generation,
                    instance.host_id
                );
            }
            println!("{}", line.body.replace('\n', "\\n"));
        }
    }
    if args.stats {
        print_stats(args.seed, config, args.lines);
    }
    Ok(())
}

fn print_stats(seed: u64, config: CorpusConfig, line_count: usize) {
    let mut corpus = Corpus::new(seed, config);
    let lines: Vec<_> = (0..line_count).map(|_| corpus.next_record()).collect();
    let total = lines.len().max(1) as f64;

    let mut per_template = vec![0u64; corpus.template_count()];
    let mut per_level: BTreeMap<Level, u64> = BTreeMap::new();
    let mut per_format: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lengths: Vec<usize> = Vec::with_capacity(lines.len());
    for line in &lines {
        per_template[line.template] += 1;
        *per_level.entry(line.level).or_default() += 1;
        let format = match line.format {
            LineFormat::Plain => "plain",
            LineFormat::Json => "json",
            LineFormat::Logfmt => "logfmt",
        };
        *per_format.entry(format).or_default() += 1;
        lengths.push(line.body.len());
    }
    let mut sorted_templates = per_template.clone();
    sorted_templates.sort_unstable_by(|a, b| b.cmp(a));
    lengths.sort_unstable();
    let bytes: usize = lengths.iter().sum();
    let percentile = |p: f64| lengths[((lengths.len() as f64 * p) as usize).min(lengths.len() - 1)];
    let tokens = TokenStats::measure(lines.iter().map(|line| line.body.as_str()));

    println!("lines: {line_count} (seed {seed})");
    println!(
        "templates: {} (top {:.1}%, 2nd {:.1}%, median {:.3}%, least {:.4}%)",
        per_template.len(),
        100.0 * sorted_templates[0] as f64 / total,
        100.0 * sorted_templates[1] as f64 / total,
        100.0 * sorted_templates[sorted_templates.len() / 2] as f64 / total,
        100.0 * sorted_templates[sorted_templates.len() - 1] as f64 / total,
    );
    let levels: Vec<String> = per_level
        .iter()
        .map(|(level, count)| format!("{} {:.1}%", level.as_str(), 100.0 * *count as f64 / total))
        .collect();
    println!("levels: {}", levels.join(", "));
    let formats: Vec<String> = per_format
        .iter()
        .map(|(format, count)| format!("{format} {:.1}%", 100.0 * *count as f64 / total))
        .collect();
    println!("formats: {}", formats.join(", "));
    println!(
        "body bytes: mean {:.1}, p10 {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}; over 2 KB: {:.2}%; multi-line: {:.2}%",
        bytes as f64 / total,
        percentile(0.10),
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(0.999),
        lengths[lengths.len() - 1],
        100.0 * lengths.iter().filter(|length| **length > 2048).count() as f64 / total,
        100.0 * lines.iter().filter(|line| line.body.contains('\n')).count() as f64 / total,
    );
    println!(
        "terms: {} occurrences, {} distinct, {} occur once ({:.1}% of distinct terms, {:.1}% of occurrences)",
        tokens.occurrences,
        tokens.distinct,
        tokens.singletons,
        100.0 * tokens.singleton_share_of_distinct(),
        100.0 * tokens.singleton_share_of_occurrences(),
    );
    println!(
        "fleet: {} instances; traced records: {:.1}%",
        corpus.fleet().instances().len(),
        100.0 * lines.iter().filter(|line| line.trace.is_some()).count() as f64 / total
    );
}
