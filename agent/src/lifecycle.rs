//! Telling the server that this instance was born, is alive, and is about to die.
//!
//! `Hello` is retried in the background (with the shipper's back-off) until it succeeds;
//! tailing and shipping never wait for it, so a server that is down at boot costs the
//! instance nothing. After the hello, a `Heartbeat` goes out every interval — the
//! server's `heartbeat_interval_ms` when it names one, else the configured interval. A
//! failed heartbeat is only logged: the next one will say the same thing.
//!
//! `Goodbye` is sent by the run loop after the final flush, with the last sequence this
//! agent ever assigned, so the server can tell a complete record from a lost one.
//!
//! `ReportLoss` tells the server about records dropped from a full spool
//! ([`crate::spool::loss`]). [`report_losses`] runs in the background and sends whatever
//! the loss file holds, retrying with back-off until the server acknowledges it; the loss
//! stays in the state directory until then, so a crash or a shutdown does not forget it
//! (the next start reports it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use epitaph_proto::lifecycle::lifecycle_client::LifecycleClient;
use epitaph_proto::lifecycle::{
    GoodbyeRequest, GoodbyeResponse, HeartbeatRequest, HelloRequest, HelloResponse, LossReport,
};
use tokio::sync::watch;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::{debug, info, warn};

use crate::batch::unix_nanos;
use crate::identity::Identity;
use crate::ship::{authorized_request, backoff_with_full_jitter};
use crate::spool::{LossRange, SPOOL_FULL_REASON, Spool};
use crate::stats::AgentStats;

/// A lifecycle client that carries the agent's id and bearer token.
#[derive(Clone)]
pub struct Lifecycle {
    client: LifecycleClient<Channel>,
    agent_id: String,
    authorization: Option<MetadataValue<Ascii>>,
}

impl Lifecycle {
    pub fn new(
        channel: Channel,
        agent_id: String,
        authorization: Option<MetadataValue<Ascii>>,
    ) -> Self {
        Lifecycle {
            client: LifecycleClient::new(channel),
            agent_id,
            authorization,
        }
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = authorized_request(message, self.authorization.as_ref());
        request.set_timeout(timeout);
        request
    }

    pub async fn hello(&self, hello: HelloRequest) -> Result<HelloResponse, Status> {
        let request = self.request(hello, crate::ship::REQUEST_TIMEOUT);
        Ok(self.client.clone().hello(request).await?.into_inner())
    }

    pub async fn heartbeat(&self, last_sequence: u64) -> Result<u64, Status> {
        let heartbeat = HeartbeatRequest {
            agent_id: self.agent_id.clone(),
            last_sequence,
        };
        let request = self.request(heartbeat, crate::ship::REQUEST_TIMEOUT);
        Ok(self
            .client
            .clone()
            .heartbeat(request)
            .await?
            .into_inner()
            .stored_watermark)
    }

    pub async fn goodbye(
        &self,
        final_sequence: u64,
        reason: &str,
        unsent_records: u64,
        timeout: Duration,
    ) -> Result<GoodbyeResponse, Status> {
        let goodbye = GoodbyeRequest {
            agent_id: self.agent_id.clone(),
            final_sequence,
            reason: reason.to_string(),
            unsent_records,
        };
        let request = self.request(goodbye, timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(timeout, client.goodbye(request)).await {
            Ok(result) => Ok(result?.into_inner()),
            Err(_) => Err(Status::deadline_exceeded("goodbye timed out")),
        }
    }
}

impl Lifecycle {
    pub async fn report_loss(&self, loss: LossRange, timeout: Duration) -> Result<(), Status> {
        let report = LossReport {
            agent_id: self.agent_id.clone(),
            records: loss.records,
            first_observed_unix_nano: loss.first_observed_unix_nano,
            last_observed_unix_nano: loss.last_observed_unix_nano,
            reason: SPOOL_FULL_REASON.to_string(),
        };
        let request = self.request(report, timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(timeout, client.report_loss(request)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(Status::deadline_exceeded("loss report timed out")),
        }
    }
}

/// Sends the loss the spool recorded, if any, once. Returns whether nothing is left to
/// report (`Ok(true)`), or the server's refusal.
pub async fn report_pending_loss(
    lifecycle: &Lifecycle,
    spool: &Arc<Spool>,
    timeout: Duration,
) -> Result<bool, Status> {
    let loss_spool = spool.clone();
    let pending = tokio::task::spawn_blocking(move || loss_spool.loss.begin_report())
        .await
        .map_err(|join_error| Status::internal(join_error.to_string()))?
        .map_err(|io_error| Status::internal(format!("writing the loss file: {io_error}")))?;
    let Some(loss) = pending else {
        return Ok(true);
    };
    lifecycle.report_loss(loss, timeout).await?;
    info!(
        records = loss.records,
        first_observed_unix_nano = loss.first_observed_unix_nano,
        last_observed_unix_nano = loss.last_observed_unix_nano,
        "loss report acknowledged by the server"
    );
    AgentStats::add(&spool.stats.loss_reports_acked, 1);
    let loss_spool = spool.clone();
    tokio::task::spawn_blocking(move || loss_spool.loss.report_acknowledged())
        .await
        .map_err(|join_error| Status::internal(join_error.to_string()))?
        .map_err(|io_error| Status::internal(format!("writing the loss file: {io_error}")))?;
    Ok(!spool.loss.has_pending())
}

/// Reports losses until `stop` turns true: waits for the spool to record one, sends it,
/// retries with back-off until acknowledged.
pub async fn report_losses(
    lifecycle: Lifecycle,
    spool: Arc<Spool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        let delay = match report_pending_loss(&lifecycle, &spool, crate::ship::REQUEST_TIMEOUT)
            .await
        {
            Ok(true) => {
                failures = 0;
                tokio::select! {
                    _ = spool.loss.wakeup.notified() => continue,
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
            Ok(false) => continue, // more was lost meanwhile
            Err(status) => {
                let delay = backoff_with_full_jitter(failures, rand::random::<f64>());
                if failures.is_multiple_of(10) {
                    warn!(code = ?status.code(), detail = status.message(), retry_in = ?delay, "loss report failed, retrying");
                } else {
                    debug!(code = ?status.code(), "loss report failed, retrying");
                }
                failures = failures.saturating_add(1);
                delay
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// The hello message for this run.
pub fn hello_request(
    agent_id: &str,
    identity: &Identity,
    started: SystemTime,
    last_sequence: u64,
) -> HelloRequest {
    HelloRequest {
        agent_id: agent_id.to_string(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        resource: identity
            .attributes()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
        start_time_unix_nano: unix_nanos(started),
        last_sequence,
    }
}

/// Says hello (retrying until it works), then heartbeats until `stop` turns true.
pub async fn hello_then_heartbeat(
    lifecycle: Lifecycle,
    hello: HelloRequest,
    configured_interval: Duration,
    spool: Arc<Spool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    let response = loop {
        match lifecycle.hello(hello.clone()).await {
            Ok(response) => break response,
            Err(status) => {
                let delay = backoff_with_full_jitter(failures, rand::random::<f64>());
                if failures.is_multiple_of(10) {
                    warn!(code = ?status.code(), detail = status.message(), "hello failed, retrying in the background");
                } else {
                    debug!(code = ?status.code(), "hello failed, retrying");
                }
                if status.code() == Code::Unimplemented && failures == 0 {
                    warn!("the server does not implement the lifecycle service");
                }
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
    };
    let interval = match response.heartbeat_interval_ms {
        0 => configured_interval,
        ms => Duration::from_millis(ms),
    };
    info!(stored_watermark = response.stored_watermark, heartbeat = ?interval, "hello acknowledged by the server");

    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the hello just said it all
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match lifecycle.heartbeat(spool.gate.last_assigned()).await {
            Ok(stored_watermark) => debug!(stored_watermark, "heartbeat acknowledged"),
            Err(status) => {
                warn!(code = ?status.code(), detail = status.message(), "heartbeat failed")
            }
        }
    }
}
