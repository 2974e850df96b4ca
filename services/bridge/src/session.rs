//! One open `BridgeService.OpenStream`: the event loop that connects the gateway to the
//! adapters while the stream lasts.
//!
//! Down frames: leases start and stop the per-account inbound pumps, acks confirm inbound
//! messages to their adapter, deliveries go to the [`Outbox`] (after the fencing check),
//! typing indicators are fired and forgotten. Up frames: inbound messages stamped with the
//! lease's fencing token, and delivery receipts. When the stream ends every pump stops and
//! every unacknowledged inbound handle is dropped, so adapters re-read those messages once
//! the bridge is connected again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pincer_proto::v1::bridge_down::Kind as Down;
use pincer_proto::v1::bridge_up::Kind as Up;
use pincer_proto::v1::{BridgeDown, BridgeUp, Delivery, DeliveryReceipt, LeaseAssignment};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use crate::adapter::{AckHandle, AdapterError, ChannelAdapter, ChatTarget, InboundItem};
use crate::backoff::Backoff;
use crate::lease::{AccountKey, Assigned, LeaseTable, SharedLeases};
use crate::outbox::{Outbox, receipt};

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Shutdown was requested; everything was drained.
    Shutdown,
    /// The gateway closed the stream.
    Closed,
    /// The stream failed.
    Failed(tonic::Status),
}

/// What a session needs from the bridge.
pub struct SessionParts<'a> {
    /// The adapters by account.
    pub adapters: &'a HashMap<AccountKey, Arc<dyn ChannelAdapter>>,
    /// The delivery workers.
    pub outbox: &'a mut Outbox,
    /// Receipts from the workers (outlives sessions).
    pub receipts: &'a mut mpsc::Receiver<DeliveryReceipt>,
    /// Frames to the gateway.
    pub up: mpsc::Sender<BridgeUp>,
    /// Frames from the gateway.
    pub down: Streaming<BridgeDown>,
    /// How long shutdown waits for sends in progress.
    pub drain_timeout: Duration,
    /// Backoff of a pump after an adapter error.
    pub pump_backoff: (Duration, Duration),
    /// This replica's leases (shared with the pumps and the delivery workers).
    pub leases: SharedLeases,
}

struct Pump {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs the session until the stream ends or `shutdown` fires. The flag says whether the
/// gateway sent at least one frame.
pub async fn run_session(
    parts: SessionParts<'_>,
    shutdown: &CancellationToken,
) -> (SessionEnd, bool) {
    let SessionParts {
        adapters,
        outbox,
        receipts,
        up,
        mut down,
        drain_timeout,
        pump_backoff,
        leases: shared,
    } = parts;
    // A new stream starts without leases: the gateway assigns them again.
    shared.lock().clear();
    let mut pumps: HashMap<AccountKey, Pump> = HashMap::new();
    let mut pending: HashMap<(AccountKey, String), AckHandle> = HashMap::new();
    let mut typing: JoinSet<()> = JoinSet::new();
    let (inbound_tx, mut inbound_rx) = mpsc::channel::<InboundItem>(16);
    let mut talked = false;

    let end = loop {
        let next_expiry = shared.lock().next_expiry();
        let frame = tokio::select! {
            () = shutdown.cancelled() => break SessionEnd::Shutdown,
            frame = down.message() => frame,
            Some(item) = inbound_rx.recv() => {
                let key = AccountKey::of(item.message.account.as_ref());
                let live = shared.lock().live(&key, Instant::now());
                let Some(token) = live else {
                    // The lease ended while the message was in flight: dropping the handle
                    // has the adapter read it again under the next lease.
                    continue;
                };
                let mut message = item.message;
                message.fencing_token = token;
                pending.insert((key, message.platform_message_id.clone()), item.ack);
                if up.send(BridgeUp { kind: Some(Up::Inbound(message)) }).await.is_err() {
                    break SessionEnd::Closed;
                }
                continue;
            }
            Some(receipt) = receipts.recv() => {
                if up.send(BridgeUp { kind: Some(Up::Receipt(receipt)) }).await.is_err() {
                    break SessionEnd::Closed;
                }
                continue;
            }
            () = sleep_until(next_expiry) => {
                let expired = shared.lock().expire(Instant::now());
                for key in expired {
                    tracing::warn!(account = %key, "lease expired without renewal; pausing the account");
                    stop_pump(&mut pumps, &key);
                }
                continue;
            }
            Some(_) = typing.join_next(), if !typing.is_empty() => continue,
        };
        let frame = match frame {
            Ok(Some(frame)) => {
                talked = true;
                frame
            }
            Ok(None) => break SessionEnd::Closed,
            Err(status) => break SessionEnd::Failed(status),
        };
        match frame.kind {
            Some(Down::Lease(lease)) => {
                on_lease(
                    &lease,
                    &shared,
                    &mut pumps,
                    adapters,
                    &inbound_tx,
                    pump_backoff,
                );
            }
            Some(Down::InboundAck(ack)) => {
                let key = AccountKey::of(ack.account.as_ref());
                match pending.remove(&(key, ack.platform_message_id)) {
                    Some(handle) => handle.ack(),
                    None => tracing::debug!("ack for a message this session did not send"),
                }
            }
            Some(Down::Delivery(delivery)) => {
                let answer = on_delivery(delivery, &shared.lock(), outbox);
                if let Some(receipt) = answer
                    && up
                        .send(BridgeUp {
                            kind: Some(Up::Receipt(receipt)),
                        })
                        .await
                        .is_err()
                {
                    break SessionEnd::Closed;
                }
            }
            Some(Down::Typing(t)) => {
                let key = AccountKey::of(t.account.as_ref());
                let live = shared.lock().live(&key, Instant::now());
                match (live, adapters.get(&key)) {
                    (Some(_), Some(adapter)) => {
                        let adapter = Arc::clone(adapter);
                        let target = ChatTarget {
                            chat_id: t.chat_id,
                            thread_id: Some(t.thread_id).filter(|s| !s.is_empty()),
                        };
                        typing.spawn(async move {
                            if let Err(e) = adapter.typing(target).await {
                                tracing::debug!(error = %e, "typing indicator failed");
                            }
                        });
                    }
                    _ => {
                        tracing::debug!(account = %key, "typing for an account without a lease; ignored")
                    }
                }
            }
            None => tracing::debug!("empty frame from the gateway; ignored"),
        }
    };

    for key in pumps.keys().cloned().collect::<Vec<_>>() {
        stop_pump(&mut pumps, &key);
    }
    // Without the stream nothing more may be sent under these leases: the gateway may
    // already have handed the accounts to another replica.
    shared.lock().clear();
    typing.abort_all();
    if matches!(end, SessionEnd::Shutdown) {
        outbox.drain(drain_timeout).await;
        while let Ok(receipt) = receipts.try_recv() {
            let _closed = up
                .send(BridgeUp {
                    kind: Some(Up::Receipt(receipt)),
                })
                .await;
        }
    }
    // Dropping `pending` here nacks whatever the gateway did not acknowledge.
    drop(pending);
    (end, talked)
}

fn on_lease(
    lease: &LeaseAssignment,
    shared: &SharedLeases,
    pumps: &mut HashMap<AccountKey, Pump>,
    adapters: &HashMap<AccountKey, Arc<dyn ChannelAdapter>>,
    inbound: &mpsc::Sender<InboundItem>,
    backoff: (Duration, Duration),
) {
    let key = AccountKey::of(lease.account.as_ref());
    let Some(adapter) = adapters.get(&key) else {
        tracing::warn!(account = %key, "the gateway leased an account this replica does not serve; ignored");
        return;
    };
    let assigned = shared.lock().assign(lease, Instant::now(), now_ms());
    match assigned {
        Assigned::Started => {
            tracing::info!(account = %key, fencing_token = lease.fencing_token, "lease acquired; polling the account");
        }
        Assigned::Renewed => {}
        Assigned::Ignored => {
            tracing::debug!(account = %key, "stale or expired lease assignment ignored");
            return;
        }
    }
    let running = pumps.get(&key).is_some_and(|p| !p.task.is_finished());
    if !running {
        let stop = CancellationToken::new();
        let task = tokio::spawn(pump(
            Arc::clone(adapter),
            shared.clone(),
            inbound.clone(),
            stop.clone(),
            backoff,
        ));
        pumps.insert(key, Pump { stop, task });
    }
}

/// Returns the receipt to send now, if the delivery is answered without a send.
fn on_delivery(
    delivery: Delivery,
    leases: &LeaseTable,
    outbox: &Outbox,
) -> Option<DeliveryReceipt> {
    if let Some(done) = outbox.completed(&delivery.delivery_id) {
        return Some(done);
    }
    let key = AccountKey::of(delivery.account.as_ref());
    if let Err(refusal) = leases.check(&key, delivery.fencing_token, Instant::now()) {
        tracing::warn!(delivery_id = %delivery.delivery_id, %refusal, "delivery refused");
        return Some(receipt(
            &delivery.delivery_id,
            false,
            Vec::new(),
            refusal.to_string(),
            true,
        ));
    }
    let id = delivery.delivery_id.clone();
    match outbox.enqueue(&key, delivery) {
        Ok(()) => None,
        Err(e) => Some(receipt(&id, false, Vec::new(), format!("{e}: {key}"), true)),
    }
}

fn stop_pump(pumps: &mut HashMap<AccountKey, Pump>, key: &AccountKey) {
    if let Some(p) = pumps.remove(key) {
        p.stop.cancel();
    }
}

/// Reads an adapter's inbound messages into the session until stopped.
async fn pump(
    adapter: Arc<dyn ChannelAdapter>,
    leases: SharedLeases,
    out: mpsc::Sender<InboundItem>,
    stop: CancellationToken,
    (initial, max): (Duration, Duration),
) {
    let mut backoff = Backoff::new(initial, max);
    let account = AccountKey::of(Some(&adapter.account()));
    loop {
        let Some(lease_until) = leases.lock().expiry(&account, Instant::now()) else {
            // The session stops this pump when the lease ends; until then, wait.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        };
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = adapter.next_inbound(lease_until) => next,
        };
        match next {
            Ok(item) => {
                backoff.reset();
                tokio::select! {
                    () = stop.cancelled() => return,
                    sent = out.send(item) => if sent.is_err() { return },
                }
            }
            Err(e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff.next_delay());
                if matches!(e, AdapterError::LeaseEnding { .. }) {
                    tracing::debug!(%account, error = %e, "waiting for the lease's renewal");
                } else if e.needs_operator() || !e.is_retryable() {
                    tracing::error!(%account, error = %e, wait_ms = wait.as_millis() as u64, "inbound polling failed; fix the cause, retrying");
                } else {
                    tracing::warn!(%account, error = %e, wait_ms = wait.as_millis() as u64, "inbound polling failed; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
