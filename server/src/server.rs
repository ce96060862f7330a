//! Start-up, recovery and shutdown of the whole server.
//!
//! Order matters: both listeners are bound first and announced on stdout, so scripts
//! learn the ports at once; the HTTP API answers `/readyz` with 503 while the WAL is
//! replayed; gRPC ingest starts serving only after recovery, so nothing new is accepted
//! before the old is back. On shutdown gRPC stops first, the WAL writer drains, and the
//! indexer commits what it has.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use epitaph_proto::lifecycle::lifecycle_server::LifecycleServer;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

use crate::config::ServerConfig;
use crate::http::{ApiState, router};
use crate::index::catalog::SplitCatalog;
use crate::index::indexer::{DurableRecord, Indexer, IndexerSettings};
use crate::index::metric_schema::MetricSchema;
use crate::index::schema::LogSchema;
use crate::index::search::LogQueryParser;
use crate::ingest::auth::BearerAuth;
use crate::ingest::backlog::IndexingBacklog;
use crate::ingest::lifecycle::LifecycleIngest;
use crate::ingest::logs::logs_service;
use crate::ingest::metrics::metrics_service;
use crate::ingest::{BatchAdmission, IngestState};
use crate::registry::InstanceRegistry;
use crate::tail::TailHub;
use crate::wal;

/// Records handed from the WAL writer to the indexer and not yet taken. A full queue
/// stalls the writer, which stalls acks: back-pressure reaches clients.
const INDEXER_QUEUE_DEPTH: usize = 4096;
/// How long a shutdown waits for open connections to finish their calls.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the server until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let _lock = lock_data_dir(&config)?;

    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let grpc_addr: SocketAddr = grpc_listener.local_addr()?;
    let http_addr: SocketAddr = http_listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening grpc={grpc_addr} http={http_addr}")?;
        stdout.flush()?;
    }

    let (shutdown_sender, shutdown_receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = shutdown_sender.send(true);
    });

    let schema = LogSchema::new();
    let tail = Arc::new(TailHub::new(schema.clone(), shutdown_receiver.clone()));
    let catalog = Arc::new(SplitCatalog::default());
    let metric_catalog = Arc::new(SplitCatalog::default());
    let registry = Arc::new(RwLock::new(InstanceRegistry::default()));
    let api = Arc::new(ApiState {
        catalog: catalog.clone(),
        metric_catalog: metric_catalog.clone(),
        metric_parser: LogQueryParser::with_schema(MetricSchema::new().schema()),
        parser: LogQueryParser::new(&schema),
        schema,
        registry: registry.clone(),
        ready: AtomicBool::new(false),
        lost_after: config.lost_after,
        wal: RwLock::new(None),
        limits: config.search_limits(),
        tail: tail.clone(),
    });
    let mut http_shutdown = shutdown_receiver.clone();
    let http_server = tokio::spawn(
        axum::serve(http_listener, router(api.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );
    info!(%grpc_addr, %http_addr, data_dir = %config.data_dir.display(), "listening");

    let backlog = Arc::new(IndexingBacklog::new(config.max_indexing_backlog_bytes));
    let recovery_config = config.clone();
    let recovery_catalog = catalog.clone();
    let recovery_metric_catalog = metric_catalog.clone();
    let recovery_backlog = backlog.clone();
    let (indexer, next_lsn) = tokio::task::spawn_blocking(move || {
        recover(
            &recovery_config,
            recovery_catalog,
            recovery_metric_catalog,
            registry,
            recovery_backlog,
        )
    })
    .await
    .context("recovery task panicked")??;

    let wal_dir = config.data_dir.join("wal");
    let (record_sender, record_receiver) =
        std::sync::mpsc::sync_channel::<(u64, DurableRecord)>(INDEXER_QUEUE_DEPTH);
    let (wal_handle, wal_thread) = wal::start_writer(
        &wal_dir,
        next_lsn,
        config.wal_segment_bytes,
        move |lsn, record| {
            // Durable now: live tails may see it.
            tail.publish(lsn, &record);
            // The indexer only goes away at shutdown, after the writer; a failed send then
            // loses nothing, as the record is in the WAL.
            let _ = record_sender.send((lsn, record));
        },
    )?;
    let wal_closer = wal_handle.clone();
    let ledger = indexer.ledger().clone();
    let segments = wal_handle.segments();
    let indexer_thread = std::thread::Builder::new()
        .name("indexer".into())
        .spawn(move || indexer.run(record_receiver, segments))?;
    *api.wal.write().expect("wal lock poisoned") = Some(wal_handle.segments());

    let ingest = Arc::new(IngestState {
        wal: wal_handle,
        admission: Mutex::new(BatchAdmission::new(ledger)),
        backlog,
        heartbeat_interval: config.heartbeat_interval,
    });
    let logs = logs_service(ingest.clone(), config.max_request_bytes);
    let metrics = metrics_service(ingest.clone(), config.max_request_bytes);
    let lifecycle_service = LifecycleServer::new(LifecycleIngest {
        state: ingest.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .accept_compressed(CompressionEncoding::Zstd)
    .max_decoding_message_size(config.max_request_bytes);
    drop(ingest);
    let auth = BearerAuth::new(config.auth_token()?);
    api.ready.store(true, std::sync::atomic::Ordering::Release);
    info!("ready");

    let mut grpc_shutdown = shutdown_receiver.clone();
    let grpc_server = tonic::transport::Server::builder()
        // Pings find connections whose peer vanished (an instance destroyed mid-call),
        // so they neither pile up nor hold a shutdown hostage.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(InterceptedService::new(logs, auth.clone()))
        .add_service(InterceptedService::new(metrics, auth.clone()))
        .add_service(InterceptedService::new(lifecycle_service, auth))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small answer's last frame waits for the client's
            // delayed ACK (40 ms on Linux) whenever its first frame is still unacknowledged.
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            async move {
                let _ = grpc_shutdown.wait_for(|stop| *stop).await;
            },
        );
    let mut drain_deadline = shutdown_receiver.clone();
    tokio::select! {
        result = grpc_server => result.context("serving gRPC")?,
        _ = async {
            let _ = drain_deadline.wait_for(|stop| *stop).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            // Unanswered requests were never acknowledged; their senders retry them.
            warn!(timeout = ?DRAIN_TIMEOUT, "gRPC connections did not drain in time, closing them");
        }
    }
    info!("gRPC stopped; draining the write-ahead log");
    wal_closer.close().await;
    tokio::task::spawn_blocking(move || {
        let _ = wal_thread.join();
        let _ = indexer_thread.join();
    })
    .await?;
    if tokio::time::timeout(DRAIN_TIMEOUT, http_server)
        .await
        .is_err()
    {
        warn!(timeout = ?DRAIN_TIMEOUT, "HTTP connections did not drain in time, closing them");
    }
    info!("stopped");
    Ok(())
}

/// Opens the splits and checkpoint, then replays the WAL after the checkpoint.
fn recover(
    config: &ServerConfig,
    catalog: Arc<SplitCatalog>,
    metric_catalog: Arc<SplitCatalog>,
    registry: Arc<RwLock<InstanceRegistry>>,
    backlog: Arc<IndexingBacklog>,
) -> anyhow::Result<(Indexer, u64)> {
    let started = Instant::now();
    let settings = IndexerSettings {
        data_dir: config.data_dir.clone(),
        commit_interval: config.commit_interval,
        split_window: config.split_window,
        metric_split_window: config.metric_split_window,
        split_max_docs: config.split_max_docs,
        threads: config.indexer_threads,
        memory_bytes: config.indexer_memory_bytes,
    };
    let mut indexer = Indexer::open(settings, catalog, metric_catalog, registry, backlog)?;
    let mut replayed = 0u64;
    let wal_dir = config.data_dir.join("wal");
    let next_lsn = wal::recover(&wal_dir, |record| {
        let content = wal::record::decode_body(&record.body)
            .with_context(|| format!("decoding wal record {}", record.lsn))?;
        let durable = DurableRecord::decode(content)
            .with_context(|| format!("decoding wal record {}", record.lsn))?;
        indexer.apply(record.lsn, durable)?;
        replayed += 1;
        Ok(())
    })?;
    indexer.commit_and_checkpoint(None)?;
    let next_lsn = next_lsn.max(indexer.lsn_floor());
    info!(
        replayed,
        next_lsn,
        took_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    Ok((indexer, next_lsn))
}

/// Holds an exclusive lock on the data directory for the server's lifetime, so two
/// servers never write the same WAL.
fn lock_data_dir(config: &ServerConfig) -> anyhow::Result<std::fs::File> {
    let path = config.data_dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "data directory {} is in use by another epitaph-server",
            config.data_dir.display()
        )
    })?;
    Ok(file)
}
