//! Epitaph's agent: tails an instance's log files and ships every line, exactly once,
//! to the Epitaph server over OTLP/gRPC.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//!  sources/ (file tailer) ─▶ collector ─▶ spool (durable batch, sequence) ─▶ ship (OTLP export, retry)
//!                                              ▲                                │ acks
//!                                              └──────── state file ◀───────────┘
//!  identity (resource attributes)      lifecycle (hello, heartbeat, goodbye)
//! ```
//!
//! - [`config`]: the TOML configuration, environment overrides.
//! - [`identity`]: who this instance is (golden image, generation, host).
//! - [`sources`]: where lines come from; [`collector`] turns them into batches.
//! - [`spool`]: makes each batch durable before it is sent and commits it once acked —
//!   the exactly-once design is documented there.
//! - [`ship`]: exports with the OTLP retry rules; [`lifecycle`]: the server's view of
//!   this instance's life.
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
pub mod identity;
pub mod lifecycle;
pub mod severity;
pub mod ship;
pub mod sources;
pub mod spool;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::collector::Collector;
use crate::config::Config;
use crate::identity::Identity;
use crate::lifecycle::{Lifecycle, hello_request, hello_then_heartbeat};
use crate::ship::{Shipper, authorization_value, connect_lazily};
use crate::sources::Positions;
use crate::sources::file::FileSource;
use crate::spool::{
    AckLedger, SequenceGate, SpoolWriter, State, StatePaths, load_or_create_agent_id,
    lock_state_dir, recover, write_state,
};

/// The goodbye's `reason`.
pub const GOODBYE_REASON: &str = "shutdown";
/// How long a goodbye may take once the shutdown deadline has already passed.
const GOODBYE_AFTER_DEADLINE: Duration = Duration::from_secs(2);
/// The least time a goodbye gets, even when the flush used up the deadline.
const GOODBYE_MINIMUM: Duration = Duration::from_secs(1);

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
}

/// Runs the agent until `shutdown` completes, then drains, flushes and says goodbye
/// within `config.shutdown_deadline`. Errors are startup failures (state directory,
/// configuration); once running, network trouble is retried, never returned.
pub async fn run(
    config: Config,
    identity: Identity,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunReport> {
    config.validate()?;
    let started = SystemTime::now();
    let paths = StatePaths::new(&config.state_dir);
    paths.create()?;
    let _state_dir_lock = lock_state_dir(&paths)?;
    let agent_id = load_or_create_agent_id(&paths)?;
    let recovery = recover(&paths)?;

    let start_existing_at_end = recovery.first_start && !config.read_from_beginning;
    let source = FileSource::open(
        config.files.clone(),
        &recovery.positions.files,
        start_existing_at_end,
    );
    if recovery.first_start {
        // Record where the pre-existing files start being read, so that lines written
        // while a crashed first run was down are not skipped as "old" by the next one.
        let state = State {
            last_acked_sequence: 0,
            positions: Positions {
                files: source.positions(),
            },
        };
        write_state(&paths, &state)
            .with_context(|| format!("writing {}", paths.state_file.display()))?;
    }
    info!(
        agent_id = %agent_id,
        server = %config.server,
        files = source.tracked_count(),
        spooled_batches = recovery.batches.len(),
        next_sequence = recovery.last_assigned_sequence + 1,
        "epitaph-agent started"
    );

    let authorization = authorization_value(config.bearer_token.as_deref())?;
    let channel = connect_lazily(&config.server)?;
    let gate = Arc::new(SequenceGate::new(recovery.last_assigned_sequence));
    let ledger = Arc::new(Mutex::new(AckLedger::new(recovery.last_acked_sequence)));
    {
        let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
        for batch in &recovery.batches {
            ledger.register(batch.sequence, batch.record_count, batch.positions.clone());
        }
    }

    // Bounded: with `max_inflight_batches` exports running and as many batches waiting
    // here, a slow server stops the collector and the spool stays small.
    let (batch_sender, batch_receiver) = mpsc::channel(config.max_inflight_batches);
    let (stop_collector, collector_stop) = std::sync::mpsc::channel::<()>();
    let collector = Collector::new(
        source,
        SpoolWriter::new(paths.clone(), gate.clone(), ledger.clone()),
        identity.to_resource(),
        batch_sender,
        &config,
    );
    let mut collector_task = tokio::task::spawn_blocking(move || collector.run(collector_stop));

    // Spawned before the shipper so that, when the server is up, the hello is the
    // first call it sees from this run (it is never waited for).
    let lifecycle = Lifecycle::new(channel.clone(), agent_id.clone(), authorization.clone());
    let (stop_heartbeat, heartbeat_stop) = watch::channel(false);
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
        gate.clone(),
        heartbeat_stop,
    ));

    let shipper = Shipper::new(
        channel,
        agent_id.clone(),
        authorization,
        config.max_inflight_batches,
        ledger.clone(),
        paths.clone(),
    );
    let ship_report = shipper.report_handle();
    let mut shipper_task = tokio::spawn(shipper.run(recovery.batches, batch_receiver));

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
    let gate_to_close = gate.clone();
    let final_sequence = tokio::task::spawn_blocking(move || gate_to_close.close())
        .await
        .context("closing the sequence gate")?;
    if deadline_hit {
        shipper_task.abort();
    }
    let _ = stop_heartbeat.send(true);
    heartbeat_task.abort();
    if !collector_finished_early {
        // Returns at once after a clean flush; after the deadline the collector notices
        // the closed gate or the vanished shipper at its next step.
        match tokio::time::timeout(Duration::from_secs(1), collector_task).await {
            Ok(Ok(exit)) => info!(?exit, "collector stopped"),
            Ok(Err(join_error)) => error!(%join_error, "the collector failed"),
            Err(_) => warn!("the collector is still busy; leaving it behind"),
        }
    }

    let (unsent_records, unsent_batches) = {
        let ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
        (ledger.unfinished_records(), ledger.unfinished_batches())
    };
    let ship = *ship_report.lock().unwrap_or_else(PoisonError::into_inner);
    let goodbye_timeout = if deadline_hit {
        GOODBYE_AFTER_DEADLINE
    } else {
        deadline
            .saturating_duration_since(Instant::now())
            .max(GOODBYE_MINIMUM)
    };
    let record_complete = match lifecycle
        .goodbye(
            final_sequence,
            GOODBYE_REASON,
            unsent_records,
            goodbye_timeout,
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
    Ok(RunReport {
        agent_id,
        final_sequence,
        acked_batches: ship.acked_batches,
        dropped_batches: ship.dropped_batches,
        unsent_records,
        deadline_hit,
        record_complete,
    })
}
