//! `epitaph-agent`: parse flags, set up logging, run until SIGTERM or SIGINT — or, as
//! `epitaph-agent install …`, put the agent into a golden image being built.
//!
//! Everything else lives in the library (`epitaph_agent::run`,
//! `epitaph_agent::install::install`), so that tests can run the real agent loop
//! in-process with their own shutdown trigger.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use epitaph_agent::config::{Config, process_env};
use epitaph_agent::identity::Identity;
use epitaph_agent::install::{InstallOptions, install};
use tokio::signal::unix::{SignalKind, signal};
use tracing::error;
use tracing_subscriber::EnvFilter;

/// Tails this instance's logs and ships them to an Epitaph server.
#[derive(Debug, Parser)]
#[command(
    name = "epitaph-agent",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install into a golden image being built: config, identity, systemd unit, enabled.
    Install(InstallOptions),
}

/// The flags of the agent itself (no subcommand).
#[derive(Debug, clap::Args)]
struct RunFlags {
    /// The TOML configuration file (every field has a default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The server URL, e.g. http://10.0.0.5:4317 (overrides the file and EPITAPH_SERVER).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Where the agent keeps its id, spool and positions (overrides EPITAPH_STATE_DIR).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// glibc gives each thread that allocates under contention an arena of its own and keeps
/// their memory after a burst: with the collector, shipper and runtime threads each
/// holding batch-sized buffers, that alone took the agent past 20 MiB while shipping
/// 10,000 lines/s. One arena costs nothing measurable here, as the agent's threads
/// rarely allocate at the same moment.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists; mallopt only
    // adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Some(Command::Install(options)) => run_install(&options),
        None => run_agent(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `epitaph-agent install`: what was written goes to stdout, what to fix to stderr.
fn run_install(options: &InstallOptions) -> anyhow::Result<()> {
    let report = install(options)?;
    for path in &report.written {
        println!("wrote {}", path.display());
    }
    for path in &report.removed {
        println!("removed {}", path.display());
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "epitaph-agent installed under {} and enabled (epitaph-agent.service, multi-user.target)",
        options.root.display()
    );
    Ok(())
}

fn run_agent(flags: RunFlags) -> anyhow::Result<()> {
    let mut config = Config::load(flags.config.as_deref(), &process_env)?;
    if let Some(server) = flags.server {
        config.server = server;
    }
    if let Some(state_dir) = flags.state_dir {
        config.state_dir = state_dir;
    }
    config.validate().context("invalid configuration")?;

    // Two workers: the agent shares its instance with the application it watches.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("epitaph-agent")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        // Installed before anything else so that a SIGTERM during startup still gets a
        // clean shutdown instead of the default of dying on the spot.
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        // Up to a second of waiting for a cloud metadata service; a signal meanwhile is
        // kept by the handlers above and acted on as soon as the agent runs.
        let identity = Identity::resolve_at_boot(&config, &process_env).await?;
        epitaph_agent::run(config, identity, shutdown).await
    });
    // A collector left blocked at the deadline must not hold the process open.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|_report| ())
}
