//! The read side of the pipeline: sources → open batch → spool → shipper.
//!
//! The collector runs on its own blocking thread because everything it does is blocking
//! file I/O, including the fsyncs that make a batch durable. Each round it rescans the
//! file patterns, reads what is new, and seals the open batch when it is full or older
//! than `batch_timeout`. The order of operations is the exactly-once invariant: a line
//! goes into the open batch *before* its file position advances, and a batch is sealed
//! with a snapshot of the positions of everything in it *and before it*; the snapshot is
//! durable together with the batch (see [`crate::spool`]).
//!
//! Back-pressure: the channel to the shipper is bounded, so when the server is slow the
//! collector blocks on it and simply stops reading; unread lines wait in their files,
//! which are a far bigger buffer than memory. The spool itself is capped too (see
//! `SPOOLED_BATCHES_PER_INFLIGHT`), for the case where acks keep coming but one batch
//! holds up the commit.
//!
//! Shutdown: when told to stop, the collector reads every tracked file to its end —
//! including a final line without its newline — seals the last batch and returns, which
//! closes the channel and lets the shipper finish. If the shutdown deadline closes the
//! sequence gate first, it returns without taking further batches: their lines are still
//! unread as far as the durable positions are concerned, and the next start reads them.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, SystemTime};

use epitaph_proto::resource::v1::Resource;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use crate::batch::{BatchBuilder, export_request, into_records, log_record_from_file_line};
use crate::config::Config;
use crate::sources::Positions;
use crate::sources::file::{FileLine, FileSource};
use crate::spool::{SpoolWriter, SpooledBatch, TakeError};

/// The spool holds at most this many batches per allowed in-flight export (and at
/// least [`MIN_SPOOLED_BATCHES`]). Normally the bounded channel keeps it far smaller;
/// this bound matters when one batch is retried forever while later ones are acked:
/// those cannot be committed past it, and without a bound the spool (and the memory
/// needed to resend it at the next start) would grow without end.
const SPOOLED_BATCHES_PER_INFLIGHT: usize = 4;
const MIN_SPOOLED_BATCHES: usize = 16;

/// How much one file may contribute to one read round; bounds the lines held in memory
/// and keeps one busy file from starving the others.
const READ_BUDGET_PER_FILE: usize = 256 * 1024;

/// Why the collector returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorExit {
    /// Told to stop: every file read to its end and the last batch handed over.
    Drained,
    /// The shutdown deadline closed the sequence gate.
    GateClosed,
    /// The shipper went away (it was aborted at the deadline).
    ShipperGone,
}

enum Interrupt {
    Exit(CollectorExit),
    /// A spool write failed, or the spool is full; try again after a pause.
    SpoolUnavailable,
}

pub struct Collector {
    source: FileSource,
    builder: BatchBuilder,
    spool: SpoolWriter,
    resource: Resource,
    output: mpsc::Sender<SpooledBatch>,
    poll_interval: Duration,
    batch_timeout: Duration,
    max_spooled_batches: usize,
    spool_failing: bool,
    spool_full: bool,
}

impl Collector {
    /// Batching and polling settings come from `config`.
    pub fn new(
        source: FileSource,
        spool: SpoolWriter,
        resource: Resource,
        output: mpsc::Sender<SpooledBatch>,
        config: &Config,
    ) -> Collector {
        Collector {
            source,
            builder: BatchBuilder::new(config.batch_max_records, config.batch_max_bytes),
            spool,
            resource,
            output,
            poll_interval: config.poll_interval,
            batch_timeout: config.batch_timeout,
            max_spooled_batches: (config.max_inflight_batches * SPOOLED_BATCHES_PER_INFLIGHT)
                .max(MIN_SPOOLED_BATCHES),
            spool_failing: false,
            spool_full: false,
        }
    }

    /// Runs until `stop` receives a message or is dropped, then drains and returns.
    pub fn run(mut self, stop: Receiver<()>) -> CollectorExit {
        let mut draining = false;
        loop {
            if !draining {
                draining = !matches!(stop.try_recv(), Err(TryRecvError::Empty));
            }
            match self.round(draining) {
                Ok(()) if draining => return CollectorExit::Drained,
                Ok(()) => {}
                Err(Interrupt::Exit(exit)) => return exit,
                Err(Interrupt::SpoolUnavailable) => {}
            }
            let wait = self.wait_before_next_round();
            if !draining {
                match stop.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => draining = true,
                }
            } else {
                // Draining but the spool refused a write: pause, then try again until the
                // shutdown deadline closes the gate.
                std::thread::sleep(wait);
            }
        }
    }

    /// One scan-read-seal pass. When draining, reads unterminated last lines too and
    /// always seals what it has.
    fn round(&mut self, draining: bool) -> Result<(), Interrupt> {
        self.source.scan();
        loop {
            let read = self.source.read_available(READ_BUDGET_PER_FILE, draining);
            let observed = SystemTime::now();
            let more_available = read.more_available;
            for line in read.lines {
                self.accept(line, observed)?;
            }
            if !more_available {
                break;
            }
        }
        if draining || self.builder.age() >= self.batch_timeout {
            self.seal()?;
        }
        Ok(())
    }

    fn wait_before_next_round(&self) -> Duration {
        if self.spool_failing || self.spool_full || self.builder.is_empty() {
            return self.poll_interval;
        }
        let until_timeout = self.batch_timeout.saturating_sub(self.builder.age());
        self.poll_interval.min(until_timeout)
    }

    /// Puts one line into the open batch, sealing first if it would not fit, and only
    /// then moves the file position past it.
    fn accept(&mut self, line: FileLine, observed: SystemTime) -> Result<(), Interrupt> {
        if line.text.is_empty() {
            // Blank lines carry nothing worth a record.
            self.source.advance(line.key, line.end_offset);
            return Ok(());
        }
        let record = log_record_from_file_line(&line, observed);
        if !self.builder.fits(&record) {
            self.seal()?;
        }
        self.builder.push(record);
        self.source.advance(line.key, line.end_offset);
        if self.builder.is_full() {
            self.seal()?;
        }
        Ok(())
    }

    /// Takes the open batch into the spool and hands it to the shipper.
    fn seal(&mut self) -> Result<(), Interrupt> {
        let Some(opened_at) = self.builder.opened_at() else {
            return Ok(()); // nothing to seal
        };
        // Checked first so that a collector paused below still ends at the deadline.
        if self.output.is_closed() {
            return Err(Interrupt::Exit(CollectorExit::ShipperGone));
        }
        if self.spool.is_closed() {
            return Err(Interrupt::Exit(CollectorExit::GateClosed));
        }
        if self.spool.spooled_batches() >= self.max_spooled_batches {
            if !self.spool_full {
                warn!(
                    batches = self.max_spooled_batches,
                    "spool is full of batches waiting for an earlier one; reading pauses"
                );
                self.spool_full = true;
            }
            return Err(Interrupt::SpoolUnavailable);
        }
        if self.spool_full {
            debug!("spool has room again");
            self.spool_full = false;
        }
        let positions = Positions {
            files: self.source.positions(),
        };
        let request = export_request(&self.resource, self.builder.take_records());
        let batch = match self.spool.take(request, positions) {
            Ok(batch) => batch,
            Err(TakeError::Closed(_)) => return Err(Interrupt::Exit(CollectorExit::GateClosed)),
            Err(TakeError::Io(io_error, request)) => {
                if !self.spool_failing {
                    error!(%io_error, "cannot write to the spool; reading pauses until it works");
                }
                self.spool_failing = true;
                // The records go back in; their lines stay consumed in memory only, which
                // is safe because no durable position includes them yet.
                self.builder.restore(into_records(request), opened_at);
                return Err(Interrupt::SpoolUnavailable);
            }
        };
        if self.spool_failing {
            warn!("spool writes work again");
            self.spool_failing = false;
        }
        debug!(
            sequence = batch.sequence,
            records = batch.record_count,
            "batch spooled"
        );
        self.output
            .blocking_send(batch)
            .map_err(|_| Interrupt::Exit(CollectorExit::ShipperGone))
    }
}
