//! The gateway side of `BridgeService.OpenStream`: bridge replicas connect, offer accounts,
//! get leases, push inbound messages (judged by [`crate::senders`], stored durably, then
//! acknowledged) and receive deliveries and typing indicators.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use pincer_proto::v1::bridge_down::Kind as Down;
use pincer_proto::v1::bridge_up::Kind as Up;
use pincer_proto::v1::{
    BridgeDown, BridgeUp, ChannelAccount, ChatKind as WireChatKind, Delivery, DeliveryReceipt,
    InboundAck, InboundMessage, LeaseAssignment, TypingIndicator,
    bridge_service_server::BridgeService,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::routing::ChatKind;
use crate::senders::{Incoming, SenderAccess};
use crate::store::db::now_ms;
use crate::store::outbox::NewDelivery;
use crate::store::{Store, leases};

pub use crate::bridge_status::{AccountActivity, AccountStatus};

/// How long a lease lasts without renewal. A replica that stops answering (killed without a
/// clean stream end, frozen, cut off) loses its accounts at most this long after the last
/// renewal; a bridge never keeps a `getUpdates` long poll open past its lease's expiry, so
/// the next holder cannot overlap with it.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often leases are renewed (and expired ones handed to another replica).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(1);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

type Account = (String, String);

struct Replica {
    tx: mpsc::Sender<Result<BridgeDown, Status>>,
    offered: Vec<Account>,
    held: HashMap<Account, u64>,
}

/// A delivery handed to a replica, waiting for its receipt.
struct AwaitedReceipt {
    replica: String,
    account: Account,
    done: oneshot::Sender<DeliveryReceipt>,
}

#[derive(Default)]
struct HubState {
    replicas: HashMap<String, Replica>,
    receipts: HashMap<String, AwaitedReceipt>,
    activity: HashMap<Account, AccountActivity>,
}

/// Why a delivery could not be handed to a bridge.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// No connected replica holds the account's lease.
    #[error("no bridge replica serves {0}/{1}")]
    NoBridge(String, String),
    /// The replica did not answer in time or went away.
    #[error("bridge did not confirm the delivery: {0}")]
    NoReceipt(&'static str),
}

/// Connected bridge replicas and the accounts they serve.
pub struct BridgeHub {
    store: Store,
    senders: Arc<SenderAccess>,
    state: Mutex<HubState>,
    closing: tokio_util::sync::CancellationToken,
    /// Woken when an inbound message is stored.
    pub inbound_ready: Arc<Notify>,
}

impl BridgeHub {
    /// A hub judging inbound messages with `senders`; `inbound_ready` is woken when a turn
    /// is queued.
    pub fn new(store: Store, senders: Arc<SenderAccess>, inbound_ready: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            store,
            senders,
            state: Mutex::new(HubState::default()),
            closing: tokio_util::sync::CancellationToken::new(),
            inbound_ready,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A poisoned lock means a panic mid-update of plain maps; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends every bridge stream (at shutdown); bridges reconnect to the next gateway.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Resolves once [`Self::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let token = self.closing.clone();
        async move { token.cancelled().await }
    }

    /// Every known account: lease holder, connection, last traffic and errors.
    pub async fn status(&self) -> Result<Vec<AccountStatus>, crate::store::db::StoreError> {
        let rows = self.store.call(leases::list).await?;
        let now = now_ms();
        let state = self.lock();
        let mut accounts: Vec<Account> = rows
            .iter()
            .map(|r| (r.channel.clone(), r.account_id.clone()))
            .chain(
                state
                    .replicas
                    .values()
                    .flat_map(|r| r.offered.iter().cloned()),
            )
            .chain(state.activity.keys().cloned())
            .collect();
        accounts.sort();
        accounts.dedup();
        Ok(accounts
            .into_iter()
            .map(|account| {
                let row = rows
                    .iter()
                    .find(|r| r.channel == account.0 && r.account_id == account.1);
                let (replica, token, expires) = row.map_or((String::new(), 0, 0), |r| {
                    (r.holder.clone(), r.fencing_token, r.expires_at_ms)
                });
                let connected = expires > now
                    && state
                        .replicas
                        .get(&replica)
                        .is_some_and(|r| r.held.contains_key(&account));
                let mut offered_by: Vec<String> = state
                    .replicas
                    .iter()
                    .filter(|(_, r)| r.offered.contains(&account))
                    .map(|(id, _)| id.clone())
                    .collect();
                offered_by.sort();
                let activity = state.activity.get(&account).cloned().unwrap_or_default();
                let (last_error_at_ms, last_error) = activity
                    .last_error
                    .map_or((None, None), |(at, e)| (Some(at), Some(e)));
                AccountStatus {
                    channel: account.0,
                    account_id: account.1,
                    replica,
                    fencing_token: token,
                    lease_expires_at_ms: expires,
                    connected,
                    offered_by,
                    last_inbound_at_ms: activity.last_inbound_at_ms,
                    last_outbound_at_ms: activity.last_outbound_at_ms,
                    last_error_at_ms,
                    last_error,
                }
            })
            .collect())
    }

    /// Number of connected replicas.
    pub fn replica_count(&self) -> usize {
        self.lock().replicas.len()
    }

    /// Sends a delivery to the replica holding the account and waits for its receipt.
    pub async fn deliver(
        &self,
        delivery_id: &str,
        d: &NewDelivery,
    ) -> Result<DeliveryReceipt, DeliverError> {
        let account = (d.channel.clone(), d.account_id.clone());
        let (rx, tx) = {
            let mut state = self.lock();
            let holder = state
                .replicas
                .values()
                .find_map(|r| r.held.get(&account).map(|t| (r.tx.clone(), *t)));
            let Some((tx, token)) = holder else {
                return Err(DeliverError::NoBridge(
                    d.channel.clone(),
                    d.account_id.clone(),
                ));
            };
            let (done, rx) = oneshot::channel();
            let replica = state
                .replicas
                .iter()
                .find(|(_, r)| r.held.contains_key(&account))
                .map(|(id, _)| id.clone())
                .unwrap_or_default();
            state.receipts.insert(
                delivery_id.to_owned(),
                AwaitedReceipt {
                    replica,
                    account: account.clone(),
                    done,
                },
            );
            let frame = BridgeDown {
                kind: Some(Down::Delivery(Delivery {
                    delivery_id: delivery_id.to_owned(),
                    account: Some(ChannelAccount {
                        channel: d.channel.clone(),
                        account_id: d.account_id.clone(),
                    }),
                    chat_id: d.chat_id.clone(),
                    text: d.text.clone(),
                    reply_to_platform_message_id: d.reply_to.clone(),
                    fencing_token: token,
                    thread_id: d.thread_id.clone(),
                })),
            };
            (rx, (tx, frame))
        };
        let (sender, frame) = tx;
        if sender.send(Ok(frame)).await.is_err() {
            self.lock().receipts.remove(delivery_id);
            return Err(DeliverError::NoReceipt("bridge stream closed"));
        }
        let result = tokio::time::timeout(RECEIPT_TIMEOUT, rx).await;
        self.lock().receipts.remove(delivery_id);
        match result {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(_)) => Err(DeliverError::NoReceipt("bridge disconnected")),
            Err(_) => Err(DeliverError::NoReceipt("timed out")),
        }
    }

    /// Shows a typing indicator in a chat, if a replica serves the account (best effort).
    pub fn typing(&self, channel: &str, account_id: &str, chat_id: &str, thread_id: &str) {
        let account = (channel.to_owned(), account_id.to_owned());
        let state = self.lock();
        if let Some(r) = state
            .replicas
            .values()
            .find(|r| r.held.contains_key(&account))
        {
            let frame = BridgeDown {
                kind: Some(Down::Typing(TypingIndicator {
                    account: Some(ChannelAccount {
                        channel: channel.to_owned(),
                        account_id: account_id.to_owned(),
                    }),
                    chat_id: chat_id.to_owned(),
                    thread_id: thread_id.to_owned(),
                })),
            };
            // Typing is advisory: a full queue just drops it.
            let _ = r.tx.try_send(Ok(frame));
        }
    }

    /// Grants or renews leases for every connected replica's offered accounts.
    pub async fn assign_leases(&self) {
        let offers: Vec<(String, Vec<Account>)> = self
            .lock()
            .replicas
            .iter()
            .map(|(id, r)| (id.clone(), r.offered.clone()))
            .collect();
        let mut granted: Vec<(String, Account, leases::Lease)> = Vec::new();
        let mut lost: Vec<(String, Account)> = Vec::new();
        for (replica, accounts) in offers {
            for account in accounts {
                let (ch, acct, holder) = (account.0.clone(), account.1.clone(), replica.clone());
                let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(30_000);
                let result = self
                    .store
                    .call(move |c| leases::acquire(c, &ch, &acct, &holder, now_ms(), ttl))
                    .await;
                match result {
                    Ok(Some(lease)) => granted.push((replica.clone(), account, lease)),
                    Ok(None) => lost.push((replica.clone(), account)),
                    Err(e) => tracing::error!(error = %e, "lease update failed"),
                }
            }
        }
        let mut state = self.lock();
        for (replica, account) in lost {
            if let Some(r) = state.replicas.get_mut(&replica) {
                r.held.remove(&account);
            }
        }
        for (replica, account, lease) in granted {
            let Some(r) = state.replicas.get_mut(&replica) else {
                continue;
            };
            r.held.insert(account.clone(), lease.fencing_token);
            let frame = BridgeDown {
                kind: Some(Down::Lease(LeaseAssignment {
                    account: Some(ChannelAccount {
                        channel: account.0,
                        account_id: account.1,
                    }),
                    fencing_token: lease.fencing_token,
                    expires_at_ms: lease.expires_at_ms,
                })),
            };
            if r.tx.try_send(Ok(frame)).is_err() {
                tracing::warn!(
                    replica,
                    "bridge stream is full; lease renewal skipped this round"
                );
            }
        }
    }

    /// Renews leases until `shutdown`.
    pub async fn lease_loop(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(LEASE_RENEW_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => self.assign_leases().await,
            }
        }
    }

    async fn on_inbound(&self, replica: &str, msg: InboundMessage) -> Result<InboundAck, Status> {
        let account = msg
            .account
            .clone()
            .ok_or_else(|| Status::invalid_argument("inbound message without account"))?;
        let key = (account.channel.clone(), account.account_id.clone());
        let offered = self
            .lock()
            .replicas
            .get(replica)
            .is_some_and(|r| r.offered.contains(&key));
        if !offered {
            return Err(Status::permission_denied(
                "inbound message for an account this replica did not offer",
            ));
        }
        if msg.platform_message_id.is_empty() || msg.platform_message_id.len() > 256 {
            return Err(Status::invalid_argument(
                "platform_message_id must be 1 to 256 bytes",
            ));
        }
        if msg.sender_id.is_empty()
            || msg.sender_id.len() > 256
            || msg.chat_id.is_empty()
            || msg.chat_id.len() > 256
        {
            return Err(Status::invalid_argument(
                "sender_id and chat_id must be 1 to 256 bytes",
            ));
        }
        let kind = match WireChatKind::try_from(msg.chat_kind) {
            Ok(WireChatKind::Direct) => ChatKind::Direct,
            Ok(WireChatKind::Group) => ChatKind::Group,
            _ => {
                return Err(Status::invalid_argument(
                    "chat_kind must be DIRECT or GROUP",
                ));
            }
        };
        let account_id = account.account_id.clone();
        let stored = self
            .senders
            .handle(Incoming {
                channel: account.channel.clone(),
                account_id,
                platform_message_id: msg.platform_message_id.clone(),
                sender_id: msg.sender_id,
                chat_id: msg.chat_id,
                kind,
                thread_id: msg.thread_id,
                text: msg.text,
                mentions_bot: msg.mentions_bot,
            })
            .await
            .map_err(|e| Status::unavailable(format!("cannot store the message: {e}")))?;
        self.lock()
            .activity
            .entry(key)
            .or_default()
            .last_inbound_at_ms = Some(now_ms());
        Ok(InboundAck {
            account: Some(account),
            platform_message_id: msg.platform_message_id,
            duplicate: matches!(stored, crate::store::inbound::Enqueued::Duplicate(_)),
        })
    }

    fn on_receipt(&self, receipt: DeliveryReceipt) {
        let mut state = self.lock();
        if let Some(awaited) = state.receipts.remove(&receipt.delivery_id) {
            let activity = state.activity.entry(awaited.account).or_default();
            if receipt.ok {
                activity.last_outbound_at_ms = Some(now_ms());
            } else {
                activity.last_error = Some((now_ms(), receipt.error.clone()));
            }
            let _ = awaited.done.send(receipt);
        }
    }

    /// Forgets a replica whose stream ended. Deliveries waiting for its receipts fail at
    /// once (they are retried, on another replica if need be). Its leases are not released:
    /// they run out on their own (at most [`LEASE_TTL`] after the last renewal), because a
    /// replica whose stream broke (frozen, cut off, or a keepalive timeout) may still be
    /// polling until its own copy of the lease ends, and a drained shutdown looks the same
    /// from here.
    async fn disconnect(&self, replica: &str) {
        let held = {
            let mut state = self.lock();
            state
                .receipts
                .retain(|_, awaited| awaited.replica != replica);
            match state.replicas.remove(replica) {
                Some(r) => r.held.len(),
                None => return,
            }
        };
        tracing::warn!(
            replica,
            accounts = held,
            lease_ttl_s = LEASE_TTL.as_secs(),
            "bridge replica disconnected; its accounts move once their leases expire"
        );
    }
}

/// The tonic service.
#[derive(Clone)]
pub struct BridgeLink {
    hub: Arc<BridgeHub>,
}

impl BridgeLink {
    /// Serves `hub`.
    pub fn new(hub: Arc<BridgeHub>) -> Self {
        Self { hub }
    }
}

type DownStream = Pin<Box<dyn Stream<Item = Result<BridgeDown, Status>> + Send>>;

#[tonic::async_trait]
impl BridgeService for BridgeLink {
    type OpenStreamStream = DownStream;

    async fn open_stream(
        &self,
        request: Request<Streaming<BridgeUp>>,
    ) -> Result<Response<DownStream>, Status> {
        let mut up = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, up.next())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 10 s"))?;
        let hello = match first {
            Some(Ok(BridgeUp {
                kind: Some(Up::Hello(h)),
            })) => h,
            Some(Err(e)) => return Err(e),
            _ => return Err(Status::invalid_argument("the first frame must be hello")),
        };
        if hello.replica_id.is_empty() || hello.replica_id.len() > 128 {
            return Err(Status::invalid_argument(
                "replica_id must be 1 to 128 bytes",
            ));
        }
        let offered: Vec<Account> = hello
            .accounts
            .iter()
            .map(|a| (a.channel.clone(), a.account_id.clone()))
            .collect();
        let unique: HashSet<&Account> = offered.iter().collect();
        if unique.len() != offered.len() || offered.len() > 64 {
            return Err(Status::invalid_argument(
                "accounts must be distinct (at most 64)",
            ));
        }
        let (tx, rx) = mpsc::channel(256);
        let replica = hello.replica_id.clone();
        {
            let mut state = self.hub.lock();
            if state.replicas.contains_key(&replica) {
                return Err(Status::already_exists(
                    "a replica with this id is connected",
                ));
            }
            state.replicas.insert(
                replica.clone(),
                Replica {
                    tx: tx.clone(),
                    offered,
                    held: HashMap::new(),
                },
            );
        }
        tracing::info!(
            replica,
            accounts = hello.accounts.len(),
            "bridge replica connected"
        );
        self.hub.assign_leases().await;

        let hub = Arc::clone(&self.hub);
        let closing = self.hub.closing.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    () = closing.cancelled() => break,
                    f = up.next() => match f { Some(f) => f, None => break },
                };
                let kind = match frame {
                    Ok(BridgeUp { kind: Some(kind) }) => kind,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(replica, error = %e, "bridge stream ended with an error");
                        break;
                    }
                };
                match kind {
                    Up::Inbound(msg) => {
                        let reply = match hub.on_inbound(&replica, msg).await {
                            Ok(ack) => Ok(BridgeDown {
                                kind: Some(Down::InboundAck(ack)),
                            }),
                            Err(status) => Err(status),
                        };
                        let fatal = reply.is_err();
                        if tx.send(reply).await.is_err() || fatal {
                            break;
                        }
                    }
                    Up::Receipt(receipt) => hub.on_receipt(receipt),
                    Up::Hello(_) => {
                        let _ = tx
                            .send(Err(Status::invalid_argument("hello sent twice")))
                            .await;
                        break;
                    }
                }
            }
            hub.disconnect(&replica).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
