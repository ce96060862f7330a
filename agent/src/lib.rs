//! Epitaph's agent: tails an instance's log files and ships every line, exactly once,
//! to the Epitaph server over OTLP/gRPC.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//!  sources/ (files, multiline) ─▶ collector (parse, batch) ─▶ spool (durable batch, sequence, size limit)
//!                                                                  │ oldest first          ▲ acks
//!                                                                  ▼                       │
//!                                                             ship (OTLP export, retry) ───┘
//!  identity (resource attributes)   lifecycle (hello, heartbeat, goodbye, loss reports)   stats
//! ```
//!
//! - [`config`]: the TOML configuration, environment overrides.
//! - [`identity`]: who this instance is (golden image, generation, host).
//! - [`sources`]: where lines come from; [`parse`] turns them into fields;
//!   [`collector`] turns them into batches.
//! - [`spool`]: makes each batch durable before it is sent, keeps the spool within its
//!   size limit, and commits each batch once acked — the exactly-once design is
//!   documented there.
//! - [`ship`]: exports with the OTLP retry rules; [`lifecycle`]: the server's view of
//!   this instance's life, and reports of records dropped from a full spool.
//! - [`stats`]: the agent's own health counters.
//! - [`receiver`]: a local OTLP/gRPC receiver; applications' records join the file
//!   lines' batches under the instance's identity.
//! - [`hostmetrics`]: CPU, memory, disk, filesystem, network and process metrics from
//!   `/proc` and `/sys`, and the agent's health, sent as OTLP metrics every interval.
//!
//! [`run`] wires them together and owns shutdown. A minimal embedding:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use epitaph_agent::{config::{Config, process_env}, identity::Identity};
//! let config = Config::load(Some("agent.toml".as_ref()), &process_env)?;
//! let identity = Identity::load(&config.identity_file, &process_env)?;
//! let report = epitaph_agent::run(config, identity, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! println!("final sequence {}", report.final_sequence);
//! # Ok(()) }
//! ```

pub mod batch;
pub mod collector;
pub mod config;
pub mod hostmetrics;
pub mod identity;
pub mod install;
pub mod lifecycle;
pub mod parse;
pub mod receiver;
pub mod severity;
pub mod ship;
pub mod sources;
pub mod spool;
pub mod stats;

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::collector::Collector;
use crate::config::Config;
use crate::identity::Identity;
use crate::lifecycle::{
    Lifecycle, hello_request, hello_then_heartbeat, report_losses, report_pending_loss,
};
use crate::ship::{Shipper, authorization_value, connect_lazily};
use crate::sources::Positions;
use crate::sources::file::FileSource;
use crate::sources::journald::JournalSource;
use crate::sources::multiline::MultilineRule;
use crate::spool::{
    Spool, SpoolWriter, State, StatePaths, load_or_create_agent_id, lock_state_dir, recover,
    write_state,
};
use crate::stats::{AgentStats, StatsSnapshot};

/// The goodbye's `reason`.
pub const GOODBYE_REASON: &str = "shutdown";
/// How long a goodbye may take once the shutdown deadline has already passed.
const GOODBYE_AFTER_DEADLINE: Duration = Duration::from_secs(2);
/// The least time a goodbye gets, even when the flush used up the deadline.
const GOODBYE_MINIMUM: Duration = Duration::from_secs(1);
/// The spool's in-memory cache holds this many batches per allowed in-flight export:
/// enough that a shipper keeping up never reads back from disk, and no more batches in
/// memory than the bounded channel that used to stand here held.
const CACHED_BATCHES_PER_INFLIGHT: usize = 1;

/// What a run did, for the caller and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub agent_id: String,
    /// The highest sequence this agent has assigned (the goodbye's `final_sequence`).
    pub final_sequence: u64,
    pub acked_batches: u64,
    pub dropped_batches: u64,
    /// Records left in the spool for the next start (non-zero only if the deadline hit).
    pub unsent_records: u64,
    /// The shutdown deadline passed before every batch was acked.
    pub deadline_hit: bool,
    /// The server's answer to the goodbye, if it answered.
    pub record_complete: Option<bool>,
    /// Records dropped from a full spool whose loss the server has not acknowledged yet
    /// (they are reported at the next start).
    pub unreported_lost_records: u64,
    /// The health counters at the end of the run.
    pub stats: StatsSnapshot,
}

/// Runs the agent until `shutdown` completes, then drains, flushes and says goodbye
/// within `config.shutdown_deadline`. Errors are startup failures (state directory,
/// configuration); once running, network trouble is retried, never returned.
pub async fn run(
    config: Config,
    identity: Identity,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunReport> {
    run_with_stats(config, identity, Arc::default(), shutdown).await
}

/// [`run`], counting into `stats` (which the caller may read while the agent runs, to
/// ship them as metrics).
pub async fn run_with_stats(
    config: Config,
    identity: Identity,
    stats: Arc<AgentStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunReport> {
    config.validate()?;
    let started = SystemTime::now();
    let paths = StatePaths::new(&config.state_dir);
    paths.create()?;
    let _state_dir_lock = lock_state_dir(&paths)?;
    let agent_id = load_or_create_agent_id(&paths)?;
    let recovery = recover(&paths)?;
    let resource = identity.to_resource();
    let spool = Arc::new(Spool::open(
        paths.clone(),
        &recovery,
        config.max_inflight_batches * CACHED_BATCHES_PER_INFLIGHT,
        stats.clone(),
    )?);
    spool.complete_interrupted_drops(&resource)?;

    let start_existing_at_end = recovery.first_start && !config.read_from_beginning;
    let source = FileSource::open(
        config.files.clone(),
        &recovery.positions.files,
        start_existing_at_end,
    )
    .with_multiline(MultilineRule::from_config(&config)?);
    if recovery.first_start {
        // Record where the pre-existing files start being read, so that lines written
        // while a crashed first run was down are not skipped as "old" by the next one.
        let state = State {
            last_acked_sequence: 0,
            positions: Positions {
                files: source.positions(),
                journal_cursor: None,
            },
        };
        write_state(&paths, &state)
            .with_context(|| format!("writing {}", paths.state_file.display()))?;
    }
    info!(
        agent_id = %agent_id,
        server = %config.server,
        files = source.tracked_count(),
        spooled_batches = recovery.entries.len(),
        next_sequence = recovery.last_assigned_sequence + 1,
        "epitaph-agent started"
    );

    let authorization = authorization_value(config.bearer_token.as_deref())?;
    let channel = connect_lazily(&config.server)?;

    let (collector_done, collector_done_receiver) = watch::channel(false);
    let (stop_collector, collector_stop) = std::sync::mpsc::channel::<()>();
    let collector = Collector::new(
        source,
        SpoolWriter::new(spool.clone(), config.spool, resource),
        collector_done,
        stats.clone(),
        &config,
    );
    let collector = if config.journald.enabled {
        collector.with_journal(JournalSource::start(
            &config.journald,
            config.parse,
            recovery.positions.journal_cursor.clone(),
        ))
    } else {
        collector
    };
    let (collector, receiver_task) = if config.otlp_receiver.enabled {
        let (received, task) = receiver::start(
            &config.otlp_receiver,
            &identity.to_resource(),
            spool.clone(),
            collector_done_receiver.clone(),
        )?;
        (collector.with_received_exports(received), Some(task))
    } else {
        (collector, None)
    };
    let mut collector_task = tokio::task::spawn_blocking(move || collector.run(collector_stop));

    // Spawned before the shipper so that, when the server is up, the hello is the
    // first call it sees from this run (it is never waited for).
    let lifecycle = Lifecycle::new(channel.clone(), agent_id.clone(), authorization.clone());
    let (stop_background, background_stop) = watch::channel(false);
    let hello = hello_request(
        &agent_id,
        &identity,
        started,
        recovery.last_assigned_sequence,
    );
    let heartbeat_task = tokio::spawn(hello_then_heartbeat(
        lifecycle.clone(),
        hello,
        config.heartbeat_interval,
        spool.clone(),
        background_stop.clone(),
    ));
    let metrics_task = hostmetrics::start(
        &config,
        &agent_id,
        identity.to_resource(),
        channel.clone(),
        authorization.clone(),
        stats.clone(),
        started,
        background_stop.clone(),
    )?;
    let mut loss_task = tokio::spawn(report_losses(
        lifecycle.clone(),
        spool.clone(),
        background_stop,
    ));

    let shipper = Shipper::new(
        channel,
        agent_id.clone(),
        authorization,
        config.max_inflight_batches,
        spool.clone(),
    );
    let ship_report = shipper.report_handle();
    let mut shipper_task = tokio::spawn(shipper.run(collector_done_receiver));

    let collector_finished_early = tokio::select! {
        _ = shutdown => false,
        exit = &mut collector_task => {
            error!(?exit, "the collector stopped by itself; shutting down");
            true
        }
    };

    info!("shutting down: reading files to their end and flushing batches");
    let deadline = Instant::now() + config.shutdown_deadline;
    let _ = stop_collector.send(());
    let flushed = tokio::time::timeout_at(deadline, &mut shipper_task).await;
    let deadline_hit = flushed.is_err();
    if let Ok(Err(join_error)) = &flushed {
        error!(%join_error, "the shipper failed");
    }
    // From here no batch can be taken: whatever is in the spool now is what the
    // goodbye accounts for.
    let gate_spool = spool.clone();
    let final_sequence = tokio::task::spawn_blocking(move || gate_spool.gate.close())
        .await
        .context("closing the sequence gate")?;
    if deadline_hit {
        shipper_task.abort();
    }
    let _ = stop_background.send(true);
    heartbeat_task.abort();
    if let Some(receiver_task) = receiver_task {
        receiver_task.abort();
    }
    if !collector_finished_early {
        // Returns at once after a clean flush; after the deadline the collector notices
        // the closed gate or the vanished shipper at its next step.
        match tokio::time::timeout(Duration::from_secs(1), collector_task).await {
            Ok(Ok(exit)) => info!(?exit, "collector stopped"),
            Ok(Err(join_error)) => error!(%join_error, "the collector failed"),
            Err(_) => warn!("the collector is still busy; leaving it behind"),
        }
    }
    let goodbye_timeout = || {
        if deadline_hit {
            GOODBYE_AFTER_DEADLINE
        } else {
            deadline
                .saturating_duration_since(Instant::now())
                .max(GOODBYE_MINIMUM)
        }
    };
    // The background reporter may be mid-call; give it a moment, then try once more
    // here so that a loss is reported before the goodbye when the server is reachable.
    if tokio::time::timeout(Duration::from_millis(200), &mut loss_task)
        .await
        .is_err()
    {
        loss_task.abort();
    }
    if spool.loss.has_pending()
        && let Err(status) = report_pending_loss(&lifecycle, &spool, goodbye_timeout()).await
    {
        warn!(code = ?status.code(), detail = status.message(), "loss report failed; it is sent at the next start");
    }

    let (unsent_records, unsent_batches) = {
        let ledger = spool.ledger();
        (ledger.unfinished_records(), ledger.unfinished_batches())
    };
    let ship = *ship_report.lock().unwrap_or_else(PoisonError::into_inner);
    let record_complete = match lifecycle
        .goodbye(
            final_sequence,
            GOODBYE_REASON,
            unsent_records,
            goodbye_timeout(),
        )
        .await
    {
        Ok(response) => {
            info!(
                final_sequence,
                record_complete = response.record_complete,
                stored_watermark = response.stored_watermark,
                "goodbye acknowledged"
            );
            Some(response.record_complete)
        }
        Err(status) => {
            warn!(code = ?status.code(), detail = status.message(), "goodbye failed");
            None
        }
    };
    if let Some(mut metrics_task) = metrics_task {
        // Told to stop with the other background tasks, it has been finishing an export
        // in flight (so its ack is recorded) while the goodbye went out.
        let grace = hostmetrics::STOP_GRACE + Duration::from_millis(100);
        let finished = tokio::time::timeout(grace, &mut metrics_task).await;
        if finished.is_err() {
            metrics_task.abort();
        }
    }
    if deadline_hit {
        warn!(
            unsent_batches,
            unsent_records,
            deadline = ?config.shutdown_deadline,
            "shutdown deadline passed; unsent batches stay in the spool for the next start"
        );
    } else {
        info!(
            final_sequence,
            acked_batches = ship.acked_batches,
            "all batches delivered"
        );
    }
    let stats = stats.snapshot();
    info!(
        lines_read = stats.lines_read,
        records_read = stats.records_read,
        batches_spooled = stats.batches_spooled,
        batches_acked = stats.batches_acked,
        batches_rejected = stats.batches_rejected,
        export_retries = stats.export_retries,
        spool_bytes = stats.spool_bytes,
        spool_batches = stats.spool_batches,
        dropped_records = stats.dropped_records,
        loss_reports_acked = stats.loss_reports_acked,
        "agent statistics"
    );
    Ok(RunReport {
        agent_id,
        final_sequence,
        acked_batches: ship.acked_batches,
        dropped_batches: ship.dropped_batches,
        unsent_records,
        deadline_hit,
        record_complete,
        unreported_lost_records: spool.loss.unacknowledged_records(),
        stats,
    })
}
