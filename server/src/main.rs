//! `epitaph-server`: see the crate documentation of `epitaph_server`.

use clap::Parser;
use epitaph_server::config::{Flags, ServerConfig};

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tantivy=warn".into()),
        )
        .init();
    let config = ServerConfig::resolve(Flags::parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(epitaph_server::server::run(config, shutdown_signal()))
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// Keeps memory the server frees for its next use instead of handing it back to the
/// kernel at once. Each commit drops the indexing threads' buffers, and the next segment
/// allocates as much again: with glibc's defaults (blocks over 128 KiB mapped apart, the
/// heap's free top trimmed past 128 KiB) every commit came back as fresh pages the kernel
/// had to zero, an eighth of the server's CPU while ingesting metrics. Blocks up to
/// 64 MiB now come from the heap, and up to 256 MiB of free heap is kept (the default
/// indexing memory budget).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists; mallopt only
    // adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
