//! The catalog of searchable splits: the sealed ones and the open one as of its last
//! commit. The indexer publishes into it; searches take a snapshot and never wait for
//! the indexer.

use std::sync::{Arc, RwLock};

use tantivy::IndexReader;

use super::split::SplitMetadata;

pub struct SearchableSplit {
    pub metadata: SplitMetadata,
    pub reader: IndexReader,
}

#[derive(Default)]
struct CatalogState {
    sealed: Vec<Arc<SearchableSplit>>,
    open: Option<Arc<SearchableSplit>>,
}

#[derive(Default)]
pub struct SplitCatalog {
    state: RwLock<CatalogState>,
}

/// Totals over every split, for `/api/v1/stats`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CatalogTotals {
    pub splits: usize,
    pub sealed_splits: usize,
    pub documents: u64,
    pub raw_bytes: u64,
}

impl SplitCatalog {
    pub fn snapshot(&self) -> Vec<Arc<SearchableSplit>> {
        let state = self.state.read().expect("catalog lock poisoned");
        state
            .sealed
            .iter()
            .chain(state.open.iter())
            .cloned()
            .collect()
    }

    pub fn publish_open(&self, split: SearchableSplit) {
        self.state.write().expect("catalog lock poisoned").open = Some(Arc::new(split));
    }

    /// Replaces the open split by its sealed self in one step, so no search sees it
    /// twice or not at all.
    pub fn publish_sealed(&self, split: SearchableSplit, replaces_open: bool) {
        let mut state = self.state.write().expect("catalog lock poisoned");
        if replaces_open {
            state.open = None;
        }
        state.sealed.push(Arc::new(split));
    }

    /// Replaces the sealed splits named in `replaced` by `split` in one step, so no
    /// search sees their points twice or not at all.
    pub fn replace_sealed(&self, replaced: &[String], split: SearchableSplit) {
        let mut state = self.state.write().expect("catalog lock poisoned");
        state
            .sealed
            .retain(|sealed| !replaced.contains(&sealed.metadata.split_id));
        state.sealed.push(Arc::new(split));
    }

    /// The sealed splits.
    pub fn sealed(&self) -> Vec<Arc<SearchableSplit>> {
        self.state
            .read()
            .expect("catalog lock poisoned")
            .sealed
            .clone()
    }

    pub fn totals(&self) -> CatalogTotals {
        let state = self.state.read().expect("catalog lock poisoned");
        let mut totals = CatalogTotals {
            sealed_splits: state.sealed.len(),
            ..Default::default()
        };
        for split in state.sealed.iter().chain(state.open.iter()) {
            totals.splits += 1;
            totals.documents += split.metadata.num_docs;
            totals.raw_bytes += split.metadata.raw_bytes;
        }
        totals
    }
}
