//! Compaction of sealed metric splits: a finished day's splits become one.
//!
//! A metric split holds one window of ingest time (an hour by default), so at a live
//! pace each series has a short run of points in it (120 for a point every 30 s). A
//! split's columns pack each series' run as near-straight lines, but a block of 512
//! values that holds a step from one series to the next packs at the width of that
//! step, and with runs shorter than a block every block holds one: an hour's split costs
//! about twice what a day's does per point (see `benches/README.md`).
//!
//! So once a UTC day is over (and one more split window has passed with no new split of
//! that day sealed, for late points), the sealed metric splits whose points start in that
//! day are rewritten as one split:
//! their series tables merged by series hash, each point's key renumbered, the points
//! written in series order. A day is compacted once, unless points of it arrive later.
//!
//! The new split is built in a directory whose name starts with a dot, which a starting
//! server deletes (as it deletes any such directory), and takes its final name only once
//! sealed. Its metadata names the
//! splits it replaces: the catalog swaps them for it in one step, then their directories
//! are deleted, and a server that finds a replaced split still on disk deletes it. A crash
//! at any point therefore leaves either the old splits or the new one, never both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::catalog::SearchableSplit;
use super::metric_schema::MetricSchema;
use super::series::{SeriesTable, ordinal_of_key};
use super::split::{OpenSplit, SealedSplit, SplitMetadata};

/// Nanoseconds in a UTC day.
const DAY_NANOS: i64 = 86_400 * 1_000_000_000;
/// The most points one compaction writes: its sort holds 32 bytes per point.
const MAX_COMPACTED_POINTS: u64 = 20_000_000;
/// Prefix of a compaction's directory until it is sealed.
pub const IN_PROGRESS_PREFIX: &str = ".compacting-";
/// Prefix a replaced split's directory takes while it is deleted.
const REMOVING_PREFIX: &str = ".removing-";

/// The sealed splits to compact next, oldest first: those whose points start in the
/// earliest UTC day that is over by `grace` (for late points), has more than one split
/// and had none sealed within `grace`; as many neighbours in time as fit
/// `MAX_COMPACTED_POINTS`. Empty when there is nothing to do.
pub fn next_group(
    sealed: &[Arc<SearchableSplit>],
    now_nanos: i64,
    grace_nanos: i64,
) -> Vec<Arc<SearchableSplit>> {
    let day_of = |split: &SearchableSplit| {
        split
            .metadata
            .min_timestamp_nanos
            .map(|nanos| nanos.div_euclid(DAY_NANOS))
    };
    let days: BTreeSet<i64> = sealed
        .iter()
        .filter_map(|split| day_of(split))
        .filter(|day| (day + 1) * DAY_NANOS + grace_nanos <= now_nanos)
        .collect();
    for day in days {
        let mut group: Vec<Arc<SearchableSplit>> = sealed
            .iter()
            .filter(|split| day_of(split) == Some(day))
            .cloned()
            .collect();
        // A day whose points are still arriving (a backfill, an agent's spool) waits
        // until none came for a while, rather than being compacted again and again.
        let quiet_since = now_nanos.saturating_sub(grace_nanos);
        if group.iter().any(|split| {
            split
                .metadata
                .sealed_at_nanos
                .is_some_and(|at| at > quiet_since)
        }) {
            continue;
        }
        group.sort_by_key(|split| split.metadata.min_timestamp_nanos);
        // Neighbours in time, as many as fit: the first run of two or more.
        let mut run: Vec<Arc<SearchableSplit>> = Vec::new();
        let mut points = 0;
        for split in group {
            if points + split.metadata.num_docs > MAX_COMPACTED_POINTS && !run.is_empty() {
                if run.len() > 1 {
                    return run;
                }
                run.clear();
                points = 0;
            }
            points += split.metadata.num_docs;
            run.push(split);
        }
        if run.len() > 1 {
            return run;
        }
    }
    Vec::new()
}

/// Writes the points of `sources` as one sealed split in `splits_dir` that replaces
/// them, and returns it under its final name. The sources are left as they are.
pub fn compact(
    splits_dir: &Path,
    sources: &[Arc<SearchableSplit>],
    memory_bytes: usize,
    now_nanos: i64,
) -> anyhow::Result<SealedSplit> {
    let oldest = sources.first().context("nothing to compact")?;
    let newest_lsn = sources
        .iter()
        .map(|s| s.metadata.last_lsn)
        .max()
        .unwrap_or(0);
    // Named after the oldest split it holds (without what an earlier compaction added),
    // so it sorts among the others by age.
    let base = oldest
        .metadata
        .split_id
        .split("-c")
        .next()
        .unwrap_or_default();
    let split_id = format!("{base}-c{newest_lsn:016x}");
    let building = splits_dir.join(format!("{IN_PROGRESS_PREFIX}{split_id}"));
    if building.exists() {
        std::fs::remove_dir_all(&building)
            .with_context(|| format!("removing {}", building.display()))?;
    }
    let earliest = sources
        .iter()
        .filter_map(|s| s.metadata.min_timestamp_nanos)
        .min()
        .unwrap_or(now_nanos);
    let mut metadata = SplitMetadata {
        split_id: split_id.clone(),
        created_at_nanos: oldest.metadata.created_at_nanos,
        series: SeriesTable::starting_at(earliest),
        replaces: sources
            .iter()
            .map(|s| s.metadata.split_id.clone())
            .collect(),
        ..Default::default()
    };
    for source in sources {
        metadata.absorb(&source.metadata);
    }
    let schema = MetricSchema::new();
    let mut split = OpenSplit::create_in(
        building.clone(),
        schema.schema(),
        MetricSchema::index_settings(),
        metadata,
        // One indexing thread: segments then hold consecutive stretches of the order.
        1,
        memory_bytes,
    )?;
    // Every point's new key first, then the points in that order: the split is
    // written in series order once, and its seal need not rewrite it.
    let table = split.pending.series.clone();
    let mut stored = Vec::with_capacity(sources.len());
    let mut order = Vec::new();
    for (source_index, source) in sources.iter().enumerate() {
        let labels = source.metadata.series.snapshot();
        let mut points = schema
            .stored_points(&source.reader.searcher())
            .with_context(|| format!("reading split {}", source.metadata.split_id))?;
        let mut series = table.writer();
        for (key, millis, segment, doc) in std::mem::take(&mut points.order) {
            let labels = labels.get(ordinal_of_key(key)).with_context(|| {
                format!(
                    "a point of an unknown series in split {}",
                    source.metadata.split_id
                )
            })?;
            let key = series.key(labels.hash, millis.saturating_mul(1_000_000), || {
                labels.as_ref().clone()
            });
            order.push((key, millis, source_index as u32, segment, doc));
        }
        stored.push(points);
    }
    order.sort_unstable();
    for (key, _, source, segment, doc) in order {
        let points = &stored[source as usize];
        split.add_document(schema.stored_document(points, segment, doc, key)?)?;
    }
    let sealed = split.seal_written_in_series_order(now_nanos)?;
    let metadata = sealed.metadata.clone();
    drop(sealed);
    let directory = splits_dir.join(&split_id);
    std::fs::rename(&building, &directory)
        .with_context(|| format!("renaming {} to {}", building.display(), directory.display()))?;
    sync_directory(splits_dir)?;
    SealedSplit::open(directory, metadata)
}

/// Deletes the directories of splits a compaction replaced. Each is first renamed to a
/// name starting with a dot, in one step, so that a crash halfway through a deletion
/// cannot leave a split that looks unsealed (its `split.json` gone, its index not).
pub fn remove_replaced(splits_dir: &Path, split_ids: &[String]) -> anyhow::Result<()> {
    for split_id in split_ids {
        let directory: PathBuf = splits_dir.join(split_id);
        if !directory.exists() {
            continue;
        }
        let doomed = splits_dir.join(format!("{REMOVING_PREFIX}{split_id}"));
        std::fs::rename(&directory, &doomed)
            .with_context(|| format!("renaming {}", directory.display()))?;
        sync_directory(splits_dir)?;
        std::fs::remove_dir_all(&doomed)
            .with_context(|| format!("removing {}", doomed.display()))?;
    }
    sync_directory(splits_dir)
}

/// Whether `directory` is a compaction's leftover: one being built or being deleted,
/// whose name starts with a dot. Never a split.
pub fn is_leftover(directory: &Path) -> bool {
    directory
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'))
}

fn sync_directory(directory: &Path) -> anyhow::Result<()> {
    std::fs::File::open(directory)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", directory.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(id: &str, min_timestamp_nanos: i64, num_docs: u64) -> Arc<SearchableSplit> {
        let index = tantivy::Index::create_in_ram(MetricSchema::new().schema());
        Arc::new(SearchableSplit {
            metadata: SplitMetadata {
                split_id: id.into(),
                min_timestamp_nanos: Some(min_timestamp_nanos),
                sealed_at_nanos: Some(min_timestamp_nanos + 3_600_000_000_000),
                num_docs,
                ..Default::default()
            },
            reader: index.reader().unwrap(),
        })
    }

    fn ids(group: &[Arc<SearchableSplit>]) -> Vec<&str> {
        group.iter().map(|s| s.metadata.split_id.as_str()).collect()
    }

    #[test]
    fn the_earliest_finished_day_with_several_splits_goes_first() {
        let hour = 3_600_000_000_000;
        let sealed = [
            split("day0-lone", 2 * hour, 10),
            split("day1-late", DAY_NANOS + 5 * hour, 10),
            split("day1-early", DAY_NANOS + hour, 10),
            split("day2-a", 2 * DAY_NANOS + hour, 10),
            split("day2-b", 2 * DAY_NANOS + 2 * hour, 10),
        ];
        // Day 1 is over, with its grace: its two splits, oldest first. Day 0 has one.
        let now = 2 * DAY_NANOS + hour;
        assert_eq!(
            ids(&next_group(&sealed, now, hour)),
            ["day1-early", "day1-late"]
        );
        // Within the grace, nothing.
        assert!(next_group(&sealed, 2 * DAY_NANOS + hour / 2, hour).is_empty());
        // A split of day 1 sealed within the grace: the day is still arriving.
        let straggler = {
            let mut late = split("day1-straggler", DAY_NANOS + 6 * hour, 10);
            Arc::get_mut(&mut late).unwrap().metadata.sealed_at_nanos = Some(now - hour / 2);
            late
        };
        let with_straggler = [sealed[1].clone(), sealed[2].clone(), straggler];
        assert!(next_group(&with_straggler, now, hour).is_empty());
        assert_eq!(next_group(&with_straggler, now + hour, hour).len(), 3);
        // Day 2 is not over.
        let later = [sealed[3].clone(), sealed[4].clone()];
        assert!(next_group(&later, now + hour, hour).is_empty());
        assert_eq!(
            ids(&next_group(&later, 3 * DAY_NANOS + hour, hour)).len(),
            2
        );
        // No more points than a compaction takes, and a split that fits with neither
        // neighbour stays alone.
        let big = [
            split("a", hour, MAX_COMPACTED_POINTS - 5),
            split("b", 2 * hour, 10),
            split("c", 3 * hour, 3),
        ];
        assert_eq!(ids(&next_group(&big, DAY_NANOS + hour, hour)), ["b", "c"]);
        let compacted = [big[0].clone(), split("bc", 2 * hour, 13)];
        assert!(next_group(&compacted, DAY_NANOS + hour, hour).is_empty());
    }
}
