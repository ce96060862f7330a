//! The read side of the pipeline: sources → open batch → spool.
//!
//! The collector runs on its own blocking thread because everything it does is blocking
//! file I/O, including the fsyncs that make a batch durable. Each round it rescans the
//! file patterns, reads what is new, turns lines into records (parsing them, see
//! [`crate::parse`]) and seals the open batch when it is full or older than
//! `batch_timeout`. The order of operations is the exactly-once invariant: a record goes
//! into the open batch *before* its file position advances, and a batch is sealed with a
//! snapshot of the positions of everything in it *and before it*; the snapshot is durable
//! together with the batch (see [`crate::spool`]).
//!
//! Two other sources feed the same open batch each round, after the files: the systemd
//! journal ([`crate::sources::journald`]), whose cursor moves like a file position, and
//! the local OTLP receiver ([`crate::receiver`]), whose requests are answered once the
//! batch holding their records is spooled.
//!
//! Back-pressure: sealing writes the batch to the spool and wakes the shipper; it does
//! not wait for the shipper. While the server is slow or away, batches pile up in the
//! spool (on disk) until `[spool] max_bytes`. Then, with `when_full = "block"`, the
//! spool refuses the batch: the collector keeps it, stops reading, and tries again only
//! when acks have freed some room — unread lines wait in their files, which are a far
//! bigger buffer than memory. With `drop_oldest`, the spool makes room itself. If the
//! collector read records it cannot take (the spool refused a batch in the middle of a
//! read), it gives them back to the source, which reads them again later.
//!
//! Shutdown: when told to stop, the collector reads every tracked file to its end —
//! including a final line without its newline and every open multiline event — seals the
//! last batch and returns, which tells the shipper that nothing more is coming. If the
//! shutdown deadline closes the sequence gate first, it returns without taking further
//! batches: their lines are still unread as far as the durable positions are concerned,
//! and the next start reads them.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::batch::{BatchBuilder, encode_file_line, unix_nanos};
use crate::config::Config;
use crate::parse::ParseMode;
use crate::receiver::{ReceivedExport, ReceivedExports, Refusal};
use crate::sources::Positions;
use crate::sources::file::{FileLine, FileSource};
use crate::sources::journald::{JOURNAL_RECORDS_PER_ROUND, JournalSource};
use crate::spool::{SpoolWriter, TakeError};
use crate::stats::AgentStats;

/// How much one file may contribute to one read round; bounds the lines held in memory
/// and keeps one busy file from starving the others.
const READ_BUDGET_PER_FILE: usize = 256 * 1024;
/// A partial batch's timeout while the shipper already has a backlog (more batches
/// waiting than it sends at once). `batch_timeout` is there for latency, and a batch that
/// would only queue behind others gains none; sealing one every `batch_timeout` through
/// a long outage would fill the spool with tiny files (and the ledger with entries). The
/// open batch stays bounded by `batch_max_records`/`batch_max_bytes`, and its lines are
/// still in their files until it is sealed.
const BACKLOGGED_BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the collector returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorExit {
    /// Told to stop: every file read to its end and the last batch spooled.
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
    parse_mode: ParseMode,
    /// One record's encoding, before it is known to fit the open batch; reused.
    encoded_record: Vec<u8>,
    /// Set to true when the collector returns; closed when the shipper is gone.
    done: watch::Sender<bool>,
    stats: Arc<AgentStats>,
    poll_interval: Duration,
    batch_timeout: Duration,
    max_inflight_batches: usize,
    spool_failing: bool,
    /// The spool's size when it last refused a batch for being full: no point trying
    /// again (compressing the batch anew) until it has shrunk.
    spool_full_at_bytes: Option<u64>,
    /// What applications sent to the local OTLP receiver, if it is enabled.
    received: Option<ReceivedExports>,
    /// The systemd journal, if it is a source.
    journal: Option<JournalSource>,
}

impl Collector {
    /// Batching, parsing and polling settings come from `config`.
    pub fn new(
        source: FileSource,
        spool: SpoolWriter,
        done: watch::Sender<bool>,
        stats: Arc<AgentStats>,
        config: &Config,
    ) -> Collector {
        Collector {
            source,
            builder: BatchBuilder::new(config.batch_max_records, config.batch_max_bytes),
            spool,
            parse_mode: config.parse,
            encoded_record: Vec::new(),
            done,
            stats,
            poll_interval: config.poll_interval,
            batch_timeout: config.batch_timeout,
            max_inflight_batches: config.max_inflight_batches,
            spool_failing: false,
            spool_full_at_bytes: None,
            received: None,
            journal: None,
        }
    }

    /// Also reads the systemd journal.
    pub fn with_journal(mut self, journal: JournalSource) -> Collector {
        self.journal = Some(journal);
        self
    }

    /// Also batches the records that applications send to the local OTLP receiver.
    pub fn with_received_exports(mut self, received: ReceivedExports) -> Collector {
        self.received = Some(received);
        self
    }

    /// Runs until `stop` receives a message or is dropped, then drains and returns.
    pub fn run(mut self, stop: Receiver<()>) -> CollectorExit {
        let exit = self.run_rounds(stop);
        let _ = self.done.send(true);
        exit
    }

    fn run_rounds(&mut self, stop: Receiver<()>) -> CollectorExit {
        let mut draining = false;
        loop {
            if !draining {
                draining = !matches!(stop.try_recv(), Err(TryRecvError::Empty));
            }
            match self.round(draining) {
                Ok(()) if draining => return CollectorExit::Drained,
                Ok(()) => {}
                Err(Interrupt::Exit(exit)) => return exit,
                Err(Interrupt::SpoolUnavailable) => {
                    // No application waits on a spool that cannot take its records.
                    if let Some(received) = self.received.as_mut() {
                        received.refuse_waiting(Refusal::SpoolUnavailable);
                    }
                }
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

    /// One scan-read-seal pass. When draining, reads unterminated last lines and open
    /// multiline events too and always seals what it has.
    fn round(&mut self, draining: bool) -> Result<(), Interrupt> {
        if self.builder.is_full() || self.spool_full_at_bytes.is_some() || self.spool_failing {
            // A batch is waiting for the spool: no point reading more until it is in.
            self.seal()?;
        }
        self.source.scan();
        loop {
            let read = self.source.read_available(READ_BUDGET_PER_FILE, draining);
            let more_available = read.more_available;
            self.accept_all(read.lines, SystemTime::now())?;
            if !more_available {
                break;
            }
        }
        self.accept_journal_records()?;
        self.accept_received_exports()?;
        if draining || self.builder.age() >= self.partial_batch_timeout() {
            self.seal()?;
        }
        Ok(())
    }

    /// How old a partial batch may get before it is sealed (see
    /// [`BACKLOGGED_BATCH_TIMEOUT`]).
    fn partial_batch_timeout(&self) -> Duration {
        if self.builder.is_empty() || self.spool.queued_batches() <= self.max_inflight_batches {
            return self.batch_timeout;
        }
        self.batch_timeout.max(BACKLOGGED_BATCH_TIMEOUT)
    }

    fn wait_before_next_round(&self) -> Duration {
        if self.spool_failing || self.spool_full_at_bytes.is_some() || self.builder.is_empty() {
            return self.poll_interval;
        }
        let until_timeout = self.batch_timeout.saturating_sub(self.builder.age());
        self.poll_interval.min(until_timeout)
    }

    /// Puts records into the open batch, sealing whenever it is full, and moves each
    /// file position past a record once the record is in. If a seal fails, the records
    /// not yet in go back to the source.
    fn accept_all(&mut self, lines: Vec<FileLine>, observed: SystemTime) -> Result<(), Interrupt> {
        let observed_unix_nano = unix_nanos(observed);
        let mut lines = lines.into_iter();
        while let Some(line) = lines.next() {
            let (key, generation, end_offset) = (line.key, line.generation, line.end_offset);
            if line.text.is_empty() {
                // Blank lines carry nothing worth a record.
                self.source.advance(key, generation, end_offset);
                continue;
            }
            let line_count = line.line_count;
            if self.builder.is_full()
                && let Err(interrupt) = self.seal()
            {
                self.source
                    .rewind(std::iter::once(line).chain(lines).collect());
                return Err(interrupt);
            }
            // A record of a truncated file's old content cannot be read again: keep a
            // copy (rare) so that a failed seal below can hand it back.
            let unrereadable_copy = (!self.source.can_read_again(&line)).then(|| line.clone());
            self.encoded_record.clear();
            encode_file_line(
                line,
                observed_unix_nano,
                self.parse_mode,
                &mut self.encoded_record,
            );
            if !self.builder.fits(self.encoded_record.len())
                && let Err(interrupt) = self.seal()
            {
                self.source
                    .rewind(unrereadable_copy.into_iter().chain(lines).collect());
                return Err(interrupt);
            }
            self.builder
                .push_encoded(&self.encoded_record, observed_unix_nano);
            self.source.advance(key, generation, end_offset);
            AgentStats::add(&self.stats.lines_read, u64::from(line_count));
            AgentStats::add(&self.stats.records_read, 1);
        }
        if self.builder.is_full() {
            self.seal()?;
        }
        Ok(())
    }

    /// Puts the journal entries read so far into the open batch, moving the journal's
    /// cursor past each once it is in, as file positions move (see
    /// [`crate::sources::journald`]). A record that did not get in goes back. At most
    /// [`JOURNAL_RECORDS_PER_ROUND`], so a flooding journal cannot starve the files.
    fn accept_journal_records(&mut self) -> Result<(), Interrupt> {
        for _ in 0..JOURNAL_RECORDS_PER_ROUND {
            let Some(record) = self.journal.as_mut().and_then(JournalSource::next_record) else {
                break;
            };
            if !self.builder.fits(record.bytes.len())
                && let Err(interrupt) = self.seal()
            {
                if let Some(journal) = self.journal.as_mut() {
                    journal.put_back(record);
                }
                return Err(interrupt);
            }
            self.builder
                .push_encoded(&record.bytes, record.observed_unix_nano);
            if let Some(journal) = self.journal.as_mut() {
                journal.advance(record.cursor);
            }
            AgentStats::add(&self.stats.records_read, 1);
            if self.builder.is_full() {
                self.seal()?;
            }
        }
        Ok(())
    }

    /// Puts what applications sent to the local OTLP receiver into the open batch, then
    /// seals it: an application is answered once all its records are in the spool (see
    /// [`crate::receiver`]). The file lines read so far are sealed first, in a batch of
    /// their own, so that the open batch holds only received records when a seal fails:
    /// they are then taken out again and their requests refused, and no application
    /// waits on a spool that has no room.
    fn accept_received_exports(&mut self) -> Result<(), Interrupt> {
        let Some(received) = self.received.as_mut() else {
            return Ok(());
        };
        if !received.has_waiting() {
            return Ok(());
        }
        self.seal()?;
        while let Some(mut export) = self
            .received
            .as_mut()
            .and_then(ReceivedExports::next_export)
        {
            while let Some(record) = export.records.pop_front() {
                if !self.builder.fits(record.bytes.len())
                    && let Err(interrupt) = self.seal()
                {
                    self.refuse_received_records(Some(export), &interrupt);
                    return Err(interrupt);
                }
                self.builder
                    .push_encoded(&record.bytes, record.observed_unix_nano);
                AgentStats::add(&self.stats.records_read, 1);
            }
            if let Some(received) = self.received.as_mut() {
                received.await_seal(export);
            }
        }
        if let Err(interrupt) = self.seal() {
            self.refuse_received_records(None, &interrupt);
            return Err(interrupt);
        }
        Ok(())
    }

    /// After a failed seal of an open batch that holds only received records: empties it
    /// and refuses the requests they came from (`export` is one partly in it).
    fn refuse_received_records(&mut self, export: Option<ReceivedExport>, interrupt: &Interrupt) {
        let refusal = match interrupt {
            Interrupt::Exit(_) => Refusal::ShuttingDown,
            Interrupt::SpoolUnavailable => Refusal::SpoolUnavailable,
        };
        self.builder.clear();
        if let Some(received) = self.received.as_mut() {
            received.refuse_awaiting(export, refusal);
        }
    }

    /// Takes the open batch into the spool, which wakes the shipper.
    fn seal(&mut self) -> Result<(), Interrupt> {
        if self.builder.is_empty() {
            return Ok(()); // nothing to seal
        }
        // Checked first so that a collector paused below still ends at the deadline.
        if self.done.is_closed() {
            return Err(Interrupt::Exit(CollectorExit::ShipperGone));
        }
        if self.spool.is_closed() {
            return Err(Interrupt::Exit(CollectorExit::GateClosed));
        }
        if let Some(full_at) = self.spool_full_at_bytes
            && self.spool.spool_bytes() >= full_at
        {
            return Err(Interrupt::SpoolUnavailable);
        }
        let positions = Positions {
            files: self.source.positions(),
            journal_cursor: self.journal.as_ref().and_then(JournalSource::cursor),
        };
        let taken = match self.spool.take(&self.builder, positions) {
            Ok(taken) => taken,
            Err(TakeError::Closed) => return Err(Interrupt::Exit(CollectorExit::GateClosed)),
            Err(TakeError::Full) => {
                if self.spool_full_at_bytes.is_none() {
                    warn!(
                        spool_bytes = self.spool.spool_bytes(),
                        "spool is full; reading pauses until batches are acknowledged"
                    );
                }
                self.spool_full_at_bytes = Some(self.spool.spool_bytes());
                // The records stay in the open batch; their lines stay consumed in memory
                // only, which is safe because no durable position includes them yet.
                return Err(Interrupt::SpoolUnavailable);
            }
            Err(TakeError::Io(io_error)) => {
                if !self.spool_failing {
                    error!(%io_error, "cannot write to the spool; reading pauses until it works");
                }
                self.spool_failing = true;
                return Err(Interrupt::SpoolUnavailable);
            }
        };
        self.builder.clear();
        if let Some(received) = self.received.as_mut() {
            received.batch_spooled(taken.sequence);
        }
        if self.spool_failing {
            warn!("spool writes work again");
            self.spool_failing = false;
        }
        if self.spool_full_at_bytes.take().is_some() {
            debug!("spool has room again; reading resumes");
        }
        debug!(
            sequence = taken.sequence,
            records = taken.record_count,
            "batch spooled"
        );
        Ok(())
    }
}
