//! Small file-system helpers for crash-safe writes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Replaces `path` with `bytes` so that after a crash the file holds either the old or
/// the new content, never a mix: write a temporary file, fsync it, rename it over the
/// target, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let directory = path.parent().context("path has no parent directory")?;
    let temporary = path.with_extension("tmp");
    let mut file =
        File::create(&temporary).with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} into place", temporary.display()))?;
    File::open(directory)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", directory.display()))?;
    Ok(())
}
