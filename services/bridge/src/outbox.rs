//! Outbound deliveries: one sequential worker per account (messages to a chat keep their
//! order) and a process-wide ledger that makes deliveries idempotent.
//!
//! The gateway retries a delivery until it gets a receipt, and redelivers after a reconnect.
//! The [`Ledger`] remembers recently completed delivery ids with their receipt, so a repeat
//! is answered from memory instead of being sent twice; after a partial failure it remembers
//! the chunks already sent, so a retry resumes after them. Receipts go to a channel that
//! outlives any one gateway connection: a receipt produced while disconnected is sent on the
//! next connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pincer_proto::v1::{Delivery, DeliveryReceipt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::adapter::{ChannelAdapter, OutboundText, SendFailure, SentRefs};
use crate::lease::{AccountKey, SharedLeases};

/// How many completed deliveries are remembered.
const LEDGER_CAPACITY: usize = 10_000;
/// Deliveries queued per account before new ones are refused (retryable).
const QUEUE_DEPTH: usize = 256;

#[derive(Debug, Clone)]
enum Entry {
    /// Some chunks went out, then a retryable failure.
    Partial { sent: Vec<String> },
    /// Finished (sent, or failed for good).
    Done(DeliveryReceipt),
}

/// Recently handled deliveries by id.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
}

impl Ledger {
    /// The stored receipt of a completed delivery.
    pub fn completed(&self, delivery_id: &str) -> Option<DeliveryReceipt> {
        match self.entries.get(delivery_id) {
            Some(Entry::Done(receipt)) => Some(receipt.clone()),
            _ => None,
        }
    }

    /// Chunk ids already sent by earlier attempts.
    pub fn already_sent(&self, delivery_id: &str) -> Vec<String> {
        match self.entries.get(delivery_id) {
            Some(Entry::Partial { sent }) => sent.clone(),
            _ => Vec::new(),
        }
    }

    /// Records the outcome of an attempt and returns the receipt to report.
    pub fn record(
        &mut self,
        delivery_id: &str,
        earlier: Vec<String>,
        outcome: Result<SentRefs, SendFailure>,
    ) -> DeliveryReceipt {
        let mut ids = earlier;
        let (entry, receipt) = match outcome {
            Ok(refs) => {
                ids.extend(refs.platform_message_ids);
                let receipt = receipt(delivery_id, true, ids, String::new(), false);
                (Entry::Done(receipt.clone()), receipt)
            }
            Err(failure) => {
                ids.extend(failure.sent);
                let retryable = failure.error.is_retryable();
                let error = failure.error.to_string();
                let receipt = receipt(delivery_id, false, ids.clone(), error, retryable);
                if retryable {
                    (Entry::Partial { sent: ids }, receipt)
                } else {
                    (Entry::Done(receipt.clone()), receipt)
                }
            }
        };
        if self.entries.insert(delivery_id.to_owned(), entry).is_none() {
            self.order.push_back(delivery_id.to_owned());
        }
        while self.order.len() > LEDGER_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        receipt
    }
}

/// A delivery receipt.
pub fn receipt(
    delivery_id: &str,
    ok: bool,
    platform_message_ids: Vec<String>,
    error: String,
    retryable: bool,
) -> DeliveryReceipt {
    DeliveryReceipt {
        delivery_id: delivery_id.to_owned(),
        ok,
        platform_message_ids,
        error,
        retryable,
    }
}

/// The delivery workers of all accounts.
pub struct Outbox {
    ledger: Arc<Mutex<Ledger>>,
    queues: HashMap<AccountKey, mpsc::Sender<Delivery>>,
    workers: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

/// Why a delivery could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// No adapter serves the account.
    #[error("this bridge replica does not serve the account")]
    UnknownAccount,
    /// The account's queue is full.
    #[error("the bridge's outbound queue for the account is full; retry later")]
    Busy,
    /// The bridge is shutting down.
    #[error("the bridge is shutting down; retry on another replica or after the restart")]
    Stopped,
}

impl Outbox {
    /// Starts one worker per adapter; receipts go to `receipts`. Each send is checked
    /// against `leases` right before it goes out.
    pub fn start(
        adapters: &[Arc<dyn ChannelAdapter>],
        leases: &SharedLeases,
        receipts: mpsc::Sender<DeliveryReceipt>,
    ) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = CancellationToken::new();
        let mut queues = HashMap::new();
        let mut workers = Vec::new();
        for adapter in adapters {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            queues.insert(AccountKey::of(Some(&adapter.account())), tx);
            workers.push(tokio::spawn(worker(
                Arc::clone(adapter),
                rx,
                Arc::clone(&ledger),
                leases.clone(),
                receipts.clone(),
                stop.clone(),
            )));
        }
        Self {
            ledger,
            queues,
            workers,
            stop,
        }
    }

    /// The stored receipt if this delivery already completed.
    pub fn completed(&self, delivery_id: &str) -> Option<DeliveryReceipt> {
        lock(&self.ledger).completed(delivery_id)
    }

    /// Queues a delivery for its account's worker.
    pub fn enqueue(&self, account: &AccountKey, delivery: Delivery) -> Result<(), QueueError> {
        let queue = self.queues.get(account).ok_or(QueueError::UnknownAccount)?;
        queue.try_send(delivery).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Busy,
            mpsc::error::TrySendError::Closed(_) => QueueError::Stopped,
        })
    }

    /// Stops taking work, lets each worker finish the send in progress (up to `deadline`),
    /// and drops queued deliveries (the gateway retries them: they have no receipt).
    pub async fn drain(&mut self, deadline: Duration) {
        self.stop.cancel();
        let workers = std::mem::take(&mut self.workers);
        let all = futures::future::join_all(workers);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                deadline_s = deadline.as_secs(),
                "outbound sends did not finish before the drain deadline"
            );
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    // The ledger is plain data updated in one step; a panic elsewhere cannot leave it torn.
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn worker(
    adapter: Arc<dyn ChannelAdapter>,
    mut queue: mpsc::Receiver<Delivery>,
    ledger: Arc<Mutex<Ledger>>,
    leases: SharedLeases,
    receipts: mpsc::Sender<DeliveryReceipt>,
    stop: CancellationToken,
) {
    let account = AccountKey::of(Some(&adapter.account()));
    loop {
        let delivery = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            next = queue.recv() => match next {
                Some(d) => d,
                None => return,
            },
        };
        // The lease may have ended while the delivery was queued (the gateway stream broke,
        // the process was frozen): then another replica may hold the account, and this one
        // must not send under its old fencing token.
        let (fenced, lease_until) = {
            let table = leases.lock();
            let now = std::time::Instant::now();
            (
                table.check(&account, delivery.fencing_token, now),
                table.expiry(&account, now),
            )
        };
        let receipt = match fenced {
            Err(refusal) => {
                tracing::warn!(delivery_id = %delivery.delivery_id, %refusal, "queued delivery refused");
                receipt(
                    &delivery.delivery_id,
                    false,
                    Vec::new(),
                    refusal.to_string(),
                    true,
                )
            }
            // Not cancelled by `stop`: a send in progress is finished.
            Ok(()) => deliver(adapter.as_ref(), &ledger, delivery, lease_until).await,
        };
        if receipts.send(receipt).await.is_err() {
            return;
        }
    }
}

async fn deliver(
    adapter: &dyn ChannelAdapter,
    ledger: &Mutex<Ledger>,
    delivery: Delivery,
    lease_until: Option<std::time::Instant>,
) -> DeliveryReceipt {
    let id = delivery.delivery_id.clone();
    let earlier = {
        let ledger = lock(ledger);
        if let Some(done) = ledger.completed(&id) {
            tracing::debug!(delivery_id = %id, "delivery already completed; answering with the stored receipt");
            return done;
        }
        ledger.already_sent(&id)
    };
    let out = OutboundText {
        chat_id: delivery.chat_id,
        thread_id: Some(delivery.thread_id).filter(|t| !t.is_empty()),
        text: delivery.text,
        reply_to: Some(delivery.reply_to_platform_message_id).filter(|r| !r.is_empty()),
        skip_chunks: earlier.len(),
        lease_until,
    };
    let outcome = adapter.send(out).await;
    match &outcome {
        Ok(refs) => {
            tracing::debug!(delivery_id = %id, chunks = refs.platform_message_ids.len(), "delivery sent");
        }
        Err(failure) => tracing::warn!(delivery_id = %id, error = %failure, "delivery failed"),
    }
    lock(ledger).record(&id, earlier, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::AdapterError;

    fn failure(sent: &[&str], retryable: bool) -> SendFailure {
        let error = if retryable {
            AdapterError::Telegram(crate::telegram::TelegramError::RateLimited {
                method: "sendMessage",
                retry_after: Duration::from_secs(999),
            })
        } else {
            AdapterError::BadTarget {
                channel: "telegram",
                field: "chat_id",
                value: "x".into(),
                reason: "test",
            }
        };
        SendFailure {
            sent: sent.iter().map(|s| (*s).to_owned()).collect(),
            error,
        }
    }

    #[test]
    fn completed_deliveries_are_remembered() {
        let mut ledger = Ledger::default();
        let refs = SentRefs {
            platform_message_ids: vec!["1:2".into()],
        };
        let r = ledger.record("d1", Vec::new(), Ok(refs));
        assert!(r.ok);
        assert_eq!(ledger.completed("d1"), Some(r));
        assert_eq!(ledger.completed("d2"), None);
    }

    #[test]
    fn partial_failures_resume_and_permanent_ones_stick() {
        let mut ledger = Ledger::default();
        let r = ledger.record("d", Vec::new(), Err(failure(&["1:1"], true)));
        assert!(!r.ok && r.retryable);
        assert_eq!(ledger.completed("d"), None);
        assert_eq!(ledger.already_sent("d"), vec!["1:1".to_owned()]);
        let refs = SentRefs {
            platform_message_ids: vec!["1:2".into()],
        };
        let r = ledger.record("d", ledger.already_sent("d"), Ok(refs));
        assert_eq!(
            r.platform_message_ids,
            vec!["1:1".to_owned(), "1:2".to_owned()]
        );
        let r = ledger.record("e", Vec::new(), Err(failure(&[], false)));
        assert!(!r.retryable);
        assert_eq!(ledger.completed("e"), Some(r));
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut ledger = Ledger::default();
        for i in 0..LEDGER_CAPACITY + 5 {
            ledger.record(&i.to_string(), Vec::new(), Ok(SentRefs::default()));
        }
        assert!(ledger.completed("0").is_none());
        assert!(
            ledger
                .completed(&(LEDGER_CAPACITY + 4).to_string())
                .is_some()
        );
        assert_eq!(ledger.entries.len(), LEDGER_CAPACITY);
    }
}
