//! A local OTLP/gRPC receiver: applications that log through an OpenTelemetry SDK ship
//! through the agent and get the instance's identity.
//!
//! ## What an application sees
//!
//! `[otlp_receiver]` is off by default. Enabled, it listens on `127.0.0.1:4317`, the
//! address every OpenTelemetry SDK exports to when nothing else is configured, so an
//! application on the instance needs no configuration at all. Only loopback addresses
//! are accepted unless `allow_non_loopback = true`: the receiver has no authentication,
//! and whoever reaches it can write under this instance's name.
//!
//! It serves OTLP `LogsService/Export` (gzip, zstd or uncompressed). A request that does
//! not decode, or holds a trace or span id of the wrong length, is answered
//! `INVALID_ARGUMENT` and never retried by the SDK.
//!
//! ## Identity
//!
//! Received records travel in the agent's own batches, under the agent's resource, so
//! the server files them under this instance's service, image version, generation and
//! host exactly like file lines. The application's own resource attributes (other than
//! those identity keys) and its scope move onto each record; the rules are in
//! [`resource`].
//!
//! ## The guarantee
//!
//! A request is answered `OK` only once all its records are in a batch that is durably
//! in the agent's spool — the same batches, sequences and shipper as file lines, so from
//! there on they reach the server exactly once, across agent crashes, restarts and
//! server outages. The handler turns the request into encoded records and hands them to
//! the collector through a bounded channel ([`ReceivedExports`]); the collector, between
//! reading rounds (every `poll_interval`), puts them into its open batch, seals it, and
//! only then answers (see `Collector::accept_received_exports`); the handler then makes
//! sure the batch file's name is durable too (one fsync of the spool directory, shared
//! with the shipper and with other answers) before it says `OK`.
//!
//! The collector seals its file lines first, so that a batch of received records holds
//! nothing else. When the spool does not take it (full with `when_full = "block"`, or
//! failing), its records are taken out again and its requests — and every request
//! still queued — are answered `UNAVAILABLE` with a `RetryInfo` delay (plain
//! `UNAVAILABLE` while the agent shuts down): the SDK keeps the records and retries, as
//! the OTLP specification asks, and no application waits on a spool without room.
//!
//! Between the application and the agent delivery is at-least-once, as everywhere in
//! OTLP: if the answer is lost, or the application gives up waiting after its records
//! were spooled, its retry is stored again; so is the part of a request larger than one
//! batch (`batch_max_records`/`batch_max_bytes`) that was spooled before a later batch
//! of it was refused. A request whose caller has already gone when the collector
//! reaches it is not taken (the caller retries it), which keeps that window small.

pub mod resource;
pub mod service;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use epitaph_proto::resource::v1::Resource;
use prost::Message;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{debug, error, info};

use crate::batch::{encode_record, unix_nanos};
use crate::spool::Spool;
use resource::IdentityMerge;
use service::LogsReceiverService;

/// The port OpenTelemetry SDKs export OTLP/gRPC to by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4317";
/// Requests waiting for the collector. Each holds a decoded request, so this bounds the
/// receiver's memory; a full queue makes further exports wait in their handlers.
const QUEUED_EXPORTS: usize = 8;
/// What an application is asked to wait before retrying when the spool cannot take its
/// records.
const RETRY_AFTER_SPOOL_REFUSAL: Duration = Duration::from_secs(1);
/// How long to wait before trying again to bind an address that is in use.
const REBIND_INTERVAL: Duration = Duration::from_secs(5);

/// The `[otlp_receiver]` table of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    pub enabled: bool,
    /// `ip:port` to listen on.
    pub listen: String,
    /// Accept a `listen` address that is not loopback.
    pub allow_non_loopback: bool,
    /// The largest request accepted, after decompression.
    pub max_request_bytes: usize,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        OtlpReceiverConfig {
            enabled: false,
            listen: DEFAULT_LISTEN.to_string(),
            allow_non_loopback: false,
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

impl OtlpReceiverConfig {
    /// The address to listen on; an error names the setting.
    pub fn listen_address(&self) -> anyhow::Result<SocketAddr> {
        let address: SocketAddr = self.listen.parse().with_context(|| {
            format!(
                "otlp_receiver.listen: `{}` is not an ip:port address",
                self.listen
            )
        })?;
        if !address.ip().is_loopback() && !self.allow_non_loopback {
            bail!(
                "otlp_receiver.listen: `{}` is not a loopback address; the receiver has no \
                 authentication, set allow_non_loopback = true to listen there anyway",
                self.listen
            );
        }
        Ok(address)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen_address()?;
        if self.max_request_bytes < 1024 {
            bail!("otlp_receiver.max_request_bytes must be at least 1024");
        }
        Ok(())
    }
}

/// The collector's answer to a request: the sequence of the (last) batch holding its
/// records, or why they are not in the spool.
pub type Answer = Result<u64, Refusal>;

/// Makes the name of spool batch `sequence` (and of every batch before it) durable:
/// [`Spool::make_durable`], or a stand-in in tests.
pub type MakeDurable = Arc<dyn Fn(u64) -> std::io::Result<()> + Send + Sync>;

/// Why the collector did not take a received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The spool is full (`when_full = "block"`) or cannot be written.
    SpoolUnavailable,
    /// The agent is shutting down.
    ShuttingDown,
}

impl Refusal {
    fn into_status(self) -> Status {
        match self {
            Refusal::SpoolUnavailable => Status::with_error_details(
                tonic::Code::Unavailable,
                "the agent's spool cannot take more records now; retry later",
                ErrorDetails::with_retry_info(Some(RETRY_AFTER_SPOOL_REFUSAL)),
            ),
            Refusal::ShuttingDown => Status::unavailable("the agent is shutting down"),
        }
    }
}

/// One received record, encoded as a `ScopeLogs.log_records` field for the batch
/// builder.
#[derive(Debug, Clone)]
pub struct EncodedRecord {
    pub bytes: Vec<u8>,
    pub observed_unix_nano: u64,
}

/// One request on its way from a handler to the collector.
pub struct ReceivedExport {
    /// The records not yet in a batch, in the order they came.
    pub records: VecDeque<EncodedRecord>,
    reply: oneshot::Sender<Answer>,
}

/// The collector's end of the receiver: requests waiting for a batch, and requests
/// whose records are in the open batch, waiting for it to be spooled.
pub struct ReceivedExports {
    queue: mpsc::Receiver<ReceivedExport>,
    /// Handlers whose records are all in the open batch (or in batches already
    /// spooled).
    awaiting_seal: Vec<oneshot::Sender<Answer>>,
}

impl ReceivedExports {
    /// Whether a request is waiting for the collector.
    pub fn has_waiting(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next request to put into the open batch. Requests whose caller has already
    /// gone are skipped: the caller retries them.
    pub fn next_export(&mut self) -> Option<ReceivedExport> {
        loop {
            let export = self.queue.try_recv().ok()?;
            if !export.reply.is_closed() {
                return Some(export);
            }
            debug!("skipping a received request whose caller has gone");
        }
    }

    /// Notes that every record of `export` is in the open batch: its handler is answered
    /// once that batch is spooled.
    pub fn await_seal(&mut self, export: ReceivedExport) {
        debug_assert!(
            export.records.is_empty(),
            "only a request wholly in a batch waits"
        );
        self.awaiting_seal.push(export.reply);
    }

    /// The open batch is in the spool as batch `sequence`: answers every request whose
    /// records were in it.
    pub fn batch_spooled(&mut self, sequence: u64) {
        for reply in self.awaiting_seal.drain(..) {
            // A handler that has gone (its caller gave up) needs no answer.
            let _ = reply.send(Ok(sequence));
        }
    }

    /// Answers every request still in the queue with `refusal` at once, so that no
    /// application waits on a collector that cannot spool.
    pub fn refuse_waiting(&mut self, refusal: Refusal) {
        while let Ok(export) = self.queue.try_recv() {
            let _ = export.reply.send(Err(refusal));
        }
    }

    /// The open batch could not be spooled and its records were dropped: refuses the
    /// requests waiting for it, and `partly_taken`, whose records were being put in.
    pub fn refuse_awaiting(&mut self, partly_taken: Option<ReceivedExport>, refusal: Refusal) {
        let partly_taken = partly_taken.map(|export| export.reply);
        let mut refused = 0;
        for reply in self.awaiting_seal.drain(..).chain(partly_taken) {
            refused += 1;
            let _ = reply.send(Err(refusal));
        }
        debug!(
            refused,
            ?refusal,
            "refused received requests the spool did not take"
        );
    }
}

/// What a handler needs: how to merge identities and the way to the collector.
#[derive(Clone)]
pub struct ExportHandler {
    identity_merge: Arc<IdentityMerge>,
    to_collector: mpsc::Sender<ReceivedExport>,
    make_durable: MakeDurable,
}

impl ExportHandler {
    async fn export(
        &self,
        request: ExportLogsServiceRequest,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
        validate(&request)?;
        let records = self
            .identity_merge
            .records_of(request, unix_nanos(SystemTime::now()));
        if records.is_empty() {
            return Ok(tonic::Response::new(ExportLogsServiceResponse::default()));
        }
        let records = records
            .iter()
            .map(|record| {
                let mut bytes = Vec::with_capacity(record.encoded_len() + 8);
                encode_record(record, &mut bytes);
                EncodedRecord {
                    bytes,
                    observed_unix_nano: record.observed_time_unix_nano,
                }
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        let export = ReceivedExport { records, reply };
        if self.to_collector.send(export).await.is_err() {
            return Err(Refusal::ShuttingDown.into_status());
        }
        let sequence = match answer.await {
            Ok(Ok(sequence)) => sequence,
            Ok(Err(refusal)) => return Err(refusal.into_status()),
            // The collector stopped before the records were spooled.
            Err(_) => return Err(Refusal::ShuttingDown.into_status()),
        };
        // The batch file is written and fsynced; its name becomes durable with a fsync of
        // the spool directory, which the collector leaves to whoever needs it first (the
        // shipper, or this answer) so that one fsync serves many batches.
        let make_durable = self.make_durable.clone();
        match tokio::task::spawn_blocking(move || make_durable(sequence)).await {
            Ok(Ok(())) => Ok(tonic::Response::new(ExportLogsServiceResponse::default())),
            Ok(Err(sync_error)) => {
                error!(%sync_error, sequence, "cannot sync the spool directory");
                Err(Refusal::SpoolUnavailable.into_status())
            }
            Err(_) => Err(Refusal::ShuttingDown.into_status()),
        }
    }
}

/// Rejects what decodes but is not valid OTLP: ids of the wrong length.
pub fn validate(request: &ExportLogsServiceRequest) -> Result<(), Status> {
    for resource_logs in &request.resource_logs {
        for scope_logs in &resource_logs.scope_logs {
            for record in &scope_logs.log_records {
                if !matches!(record.trace_id.len(), 0 | 16) {
                    return Err(Status::invalid_argument(format!(
                        "a log record's trace_id has {} bytes; it must have 16 or none",
                        record.trace_id.len()
                    )));
                }
                if !matches!(record.span_id.len(), 0 | 8) {
                    return Err(Status::invalid_argument(format!(
                        "a log record's span_id has {} bytes; it must have 8 or none",
                        record.span_id.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Starts the receiver on the runtime: it listens on `config.listen` (retrying every few
/// seconds while the address is in use, so a port conflict costs the receiver, not the
/// file shipping) and serves until `collector_done` turns true or the collector drops
/// its end. Returns that end, for [`crate::collector::Collector::with_received_exports`].
pub fn start(
    config: &OtlpReceiverConfig,
    agent_resource: &Resource,
    spool: Arc<Spool>,
    collector_done: watch::Receiver<bool>,
) -> anyhow::Result<(ReceivedExports, JoinHandle<()>)> {
    let address = config.listen_address()?;
    let (to_collector, queue) = mpsc::channel(QUEUED_EXPORTS);
    let handler = ExportHandler {
        identity_merge: Arc::new(IdentityMerge::new(agent_resource)),
        to_collector,
        make_durable: Arc::new(move |sequence| spool.make_durable(sequence)),
    };
    let service = LogsReceiverService::new(handler.clone(), config.max_request_bytes);
    let task = tokio::spawn(serve(address, service, handler, collector_done));
    let exports = ReceivedExports {
        queue,
        awaiting_seal: Vec::new(),
    };
    Ok((exports, task))
}

async fn serve(
    address: SocketAddr,
    service: LogsReceiverService,
    handler: ExportHandler,
    mut collector_done: watch::Receiver<bool>,
) {
    let stopped = async move {
        tokio::select! {
            _ = collector_done.wait_for(|done| *done) => {}
            _ = handler.to_collector.closed() => {}
        }
    };
    tokio::pin!(stopped);
    let mut failed_binds = 0u32;
    let listener = loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => break listener,
            Err(bind_error) => {
                if failed_binds == 0 {
                    error!(%address, %bind_error, "otlp receiver cannot listen; retrying every few seconds");
                }
                failed_binds += 1;
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(REBIND_INTERVAL) => {}
        }
    };
    info!(%address, "otlp receiver listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let served = tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(service, incoming, stopped)
        .await;
    match served {
        Ok(()) => debug!("otlp receiver stopped"),
        Err(serve_error) => error!(%serve_error, "otlp receiver failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epitaph_proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn request_of(records: usize, body_bytes: usize) -> ExportLogsServiceRequest {
        let record = LogRecord {
            body: Some(epitaph_proto::common::v1::AnyValue {
                value: Some(epitaph_proto::common::v1::any_value::Value::StringValue(
                    "x".repeat(body_bytes),
                )),
            }),
            ..Default::default()
        };
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record; records],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn only_loopback_addresses_are_accepted_by_default() {
        let config = OtlpReceiverConfig::default();
        assert_eq!(
            config.listen_address().unwrap().to_string(),
            "127.0.0.1:4317"
        );
        for loopback in ["[::1]:4317", "127.0.0.2:9000"] {
            let config = OtlpReceiverConfig {
                listen: loopback.to_string(),
                ..Default::default()
            };
            config.validate().unwrap();
        }
        let public = OtlpReceiverConfig {
            listen: "0.0.0.0:4317".to_string(),
            ..Default::default()
        };
        let error = format!("{:#}", public.validate().unwrap_err());
        assert!(error.contains("allow_non_loopback"), "{error}");
        OtlpReceiverConfig {
            allow_non_loopback: true,
            ..public
        }
        .validate()
        .unwrap();
        let nonsense = OtlpReceiverConfig {
            listen: "localhost".to_string(),
            ..Default::default()
        };
        assert!(format!("{:#}", nonsense.validate().unwrap_err()).contains("otlp_receiver.listen"));
    }

    #[test]
    fn the_otlp_receiver_table_parses_and_is_off_by_default() {
        let config = crate::config::Config::from_toml_str(
            "[otlp_receiver]\nenabled = true\nlisten = \"[::1]:14317\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert!(config.otlp_receiver.enabled);
        assert_eq!(
            config.otlp_receiver.listen_address().unwrap().to_string(),
            "[::1]:14317"
        );
        assert!(!crate::config::Config::default().otlp_receiver.enabled);
        let public =
            crate::config::Config::from_toml_str("[otlp_receiver]\nlisten = \"10.0.0.5:4317\"\n")
                .unwrap();
        assert!(public.validate().is_err());
    }

    #[test]
    fn ids_of_the_wrong_length_are_invalid_arguments() {
        let mut request = request_of(1, 1);
        validate(&request).unwrap();
        request.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![1; 15];
        assert_eq!(
            validate(&request).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        request.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![1; 16];
        request.resource_logs[0].scope_logs[0].log_records[0].span_id = vec![1; 3];
        assert_eq!(
            validate(&request).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        request.resource_logs[0].scope_logs[0].log_records[0].span_id = vec![1; 8];
        validate(&request).unwrap();
    }

    #[test]
    fn malformed_requests_decode_to_invalid_argument() {
        // Field 1 (resource_logs), length 200, but only 3 bytes follow.
        let truncated: &[u8] = &[0x0a, 0xc8, 0x01, 0x01, 0x02, 0x03];
        // A resource_logs whose resource has an attribute key that is not UTF-8.
        let not_utf8: &[u8] = &[0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
        for bad in [truncated, not_utf8] {
            let status = service::decode_request(bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        }
        let good = request_of(2, 10).encode_to_vec();
        assert_eq!(
            crate::batch::record_count(&service::decode_request(good.as_slice()).unwrap()),
            2
        );
    }

    fn export_of(records: usize) -> (ReceivedExport, oneshot::Receiver<Answer>) {
        let (reply, answer) = oneshot::channel();
        let record = EncodedRecord {
            bytes: vec![0x12, 0x00],
            observed_unix_nano: 1,
        };
        let export = ReceivedExport {
            records: std::iter::repeat_n(record, records).collect(),
            reply,
        };
        (export, answer)
    }

    #[tokio::test]
    async fn requests_are_answered_once_their_batch_is_spooled_or_refused_at_once() {
        let (to_collector, queue) = mpsc::channel(QUEUED_EXPORTS);
        let mut exports = ReceivedExports {
            queue,
            awaiting_seal: Vec::new(),
        };
        assert!(!exports.has_waiting());
        assert!(exports.next_export().is_none());
        let (spooled, mut spooled_answer) = export_of(2);
        let (gone, gone_answer) = export_of(1);
        drop(gone_answer);
        let (unlucky, unlucky_answer) = export_of(3);
        let (partly, partly_answer) = export_of(2);
        let (queued, queued_answer) = export_of(1);
        for export in [spooled, gone, unlucky, partly, queued] {
            to_collector.send(export).await.unwrap();
        }

        let mut spooled = exports.next_export().unwrap();
        assert_eq!(spooled.records.len(), 2);
        spooled.records.clear();
        exports.await_seal(spooled);
        assert!(
            spooled_answer.try_recv().is_err(),
            "answered before the seal"
        );
        exports.batch_spooled(7);
        assert_eq!(spooled_answer.await.unwrap(), Ok(7));

        // The caller that gave up is skipped. A seal fails with one request wholly and
        // one partly in the open batch: both are refused.
        let mut unlucky = exports.next_export().unwrap();
        assert_eq!(unlucky.records.len(), 3);
        unlucky.records.clear();
        exports.await_seal(unlucky);
        let mut partly = exports.next_export().unwrap();
        partly.records.pop_front();
        exports.refuse_awaiting(Some(partly), Refusal::SpoolUnavailable);
        assert_eq!(
            unlucky_answer.await.unwrap(),
            Err(Refusal::SpoolUnavailable)
        );
        assert_eq!(partly_answer.await.unwrap(), Err(Refusal::SpoolUnavailable));
        // A later seal answers nobody twice.
        exports.batch_spooled(8);

        // What still waits in the queue is refused at once while the spool is full.
        assert!(exports.has_waiting());
        exports.refuse_waiting(Refusal::ShuttingDown);
        assert!(!exports.has_waiting());
        assert_eq!(queued_answer.await.unwrap(), Err(Refusal::ShuttingDown));

        let status = Refusal::SpoolUnavailable.into_status();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status
                .get_details_retry_info()
                .and_then(|info| info.retry_delay),
            Some(RETRY_AFTER_SPOOL_REFUSAL)
        );
    }

    #[tokio::test]
    async fn ok_waits_for_the_spooled_batch_name_to_be_durable() {
        let (to_collector, mut queue) = mpsc::channel(QUEUED_EXPORTS);
        let synced = Arc::new(std::sync::Mutex::new(Vec::new()));
        let synced_by_handler = synced.clone();
        let handler = ExportHandler {
            identity_merge: Arc::new(IdentityMerge::new(&Resource::default())),
            to_collector,
            make_durable: Arc::new(move |sequence| {
                synced_by_handler.lock().unwrap().push(sequence);
                if sequence == 13 {
                    return Err(std::io::Error::other("disk gone"));
                }
                Ok(())
            }),
        };
        // A collector that spools the first request as batch 12, the second as 13.
        tokio::spawn(async move {
            let mut sequence = 12;
            while let Some(export) = queue.recv().await {
                let _ = export.reply.send(Ok(sequence));
                sequence += 1;
            }
        });
        handler.export(request_of(1, 1)).await.unwrap();
        let status = handler.export(request_of(1, 1)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(*synced.lock().unwrap(), [12, 13]);
    }

    #[tokio::test]
    async fn a_handler_answers_unavailable_when_the_collector_is_gone() {
        let (to_collector, queue) = mpsc::channel(QUEUED_EXPORTS);
        let handler = ExportHandler {
            identity_merge: Arc::new(IdentityMerge::new(&Resource::default())),
            to_collector,
            make_durable: Arc::new(|_| Ok(())),
        };
        // Nothing to store is answered at once, whatever the collector does.
        handler
            .export(ExportLogsServiceRequest::default())
            .await
            .unwrap();
        drop(queue);
        let status = handler.export(request_of(1, 1)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let mut bad = request_of(1, 1);
        bad.resource_logs[0].scope_logs[0].log_records[0].span_id = vec![0; 2];
        let status = handler.export(bad).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
