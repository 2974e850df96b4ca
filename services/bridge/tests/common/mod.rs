//! Test harness: a fake gateway `BridgeService` on 127.0.0.1:0 that checks the bridge's
//! credential, grants a lease on hello, records inbound messages and receipts, acks (when
//! told to) and pushes deliveries; plus helpers to run a bridge against it and a
//! `FakeTelegram`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pincer_bridge::telegram::{RetryPolicy, TelegramSettings};
use pincer_bridge::{Bridge, BridgeError, BridgeSettings, LinkTiming};
use pincer_proto::v1::bridge_down::Kind as Down;
use pincer_proto::v1::bridge_service_server::{BridgeService, BridgeServiceServer};
use pincer_proto::v1::bridge_up::Kind as Up;
use pincer_proto::v1::{
    BridgeDown, BridgeHello, BridgeUp, ChannelAccount, Delivery, DeliveryReceipt, InboundAck,
    InboundMessage, LeaseAssignment, TypingIndicator,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{RequireCaller, ServiceName};
use pincer_testkit::telegram::{FakeTelegram, FakeTelegramOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::{Request, Response, Status, Streaming};

pub const CREDENTIAL: &str = "bridge-credential-for-tests";
pub const LEASE_TOKEN: u64 = 7;
pub const WAIT: Duration = Duration::from_secs(10);

pub fn telegram_account() -> ChannelAccount {
    ChannelAccount {
        channel: "telegram".into(),
        account_id: "default".into(),
    }
}

#[derive(Default)]
pub struct Recorded {
    pub hellos: Vec<BridgeHello>,
    pub inbound: Vec<InboundMessage>,
    pub receipts: Vec<DeliveryReceipt>,
    current: Option<mpsc::Sender<Result<BridgeDown, Status>>>,
}

struct Shared {
    recorded: Mutex<Recorded>,
    version: watch::Sender<u64>,
    attempts: AtomicUsize,
    auto_ack: AtomicBool,
    lease_token: AtomicU64,
    lease_ttl_ms: AtomicU64,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Recorded)) {
        f(&mut self.recorded.lock().unwrap());
        self.version.send_modify(|v| *v += 1);
    }
}

/// The fake gateway.
pub struct FakeGateway {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct Svc(Arc<Shared>);

#[tonic::async_trait]
impl BridgeService for Svc {
    type OpenStreamStream = ReceiverStream<Result<BridgeDown, Status>>;

    async fn open_stream(
        &self,
        request: Request<Streaming<BridgeUp>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        let mut up = request.into_inner();
        let hello = match up.message().await?.and_then(|f| f.kind) {
            Some(Up::Hello(hello)) => hello,
            _ => return Err(Status::invalid_argument("the first frame must be hello")),
        };
        let (tx, rx) = mpsc::channel(64);
        let account = hello.accounts.first().cloned();
        self.0.update(|r| {
            r.hellos.push(hello);
            r.current = Some(tx.clone());
        });
        let lease = LeaseAssignment {
            account,
            fencing_token: self.0.lease_token.load(Ordering::SeqCst),
            expires_at_ms: now_ms() + self.0.lease_ttl_ms.load(Ordering::SeqCst) as i64,
        };
        let _ = tx.send(Ok(down(Down::Lease(lease)))).await;
        let shared = Arc::clone(&self.0);
        tokio::spawn(async move {
            while let Ok(Some(frame)) = up.message().await {
                match frame.kind {
                    Some(Up::Inbound(m)) => {
                        let mut duplicate = false;
                        let ack = InboundAck {
                            account: m.account.clone(),
                            platform_message_id: m.platform_message_id.clone(),
                            duplicate: false,
                        };
                        shared.update(|r| {
                            duplicate = r
                                .inbound
                                .iter()
                                .any(|x| x.platform_message_id == m.platform_message_id);
                            r.inbound.push(m);
                        });
                        if shared.auto_ack.load(Ordering::SeqCst) {
                            let ack = InboundAck { duplicate, ..ack };
                            let _ = tx.send(Ok(down(Down::InboundAck(ack)))).await;
                        }
                    }
                    Some(Up::Receipt(receipt)) => shared.update(|r| r.receipts.push(receipt)),
                    _ => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Counts every call, then checks the credential like the real gateway.
#[derive(Clone)]
struct CountingAuth(Arc<Shared>, RequireCaller);

impl Interceptor for CountingAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        self.1.call(request)
    }
}

pub fn down(kind: Down) -> BridgeDown {
    BridgeDown { kind: Some(kind) }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl FakeGateway {
    /// Starts a gateway accepting `credential`, acking inbound messages automatically.
    pub async fn start(credential: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            recorded: Mutex::new(Recorded::default()),
            version: watch::channel(0).0,
            attempts: AtomicUsize::new(0),
            auto_ack: AtomicBool::new(true),
            lease_token: AtomicU64::new(LEASE_TOKEN),
            lease_ttl_ms: AtomicU64::new(30_000),
        });
        let auth = CountingAuth(
            Arc::clone(&shared),
            RequireCaller::new(vec![(ServiceName::Bridge, Secret::new(credential))]),
        );
        let svc = BridgeServiceServer::with_interceptor(Svc(Arc::clone(&shared)), auth);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped.cancelled())
                .await
                .unwrap();
        });
        Self { addr, shared, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_auto_ack(&self, on: bool) {
        self.shared.auto_ack.store(on, Ordering::SeqCst);
    }

    /// The lease granted on the next hello lasts this long (no renewals are sent).
    pub fn set_lease_ttl(&self, ttl: Duration) {
        self.shared
            .lease_ttl_ms
            .store(ttl.as_millis() as u64, Ordering::SeqCst);
    }

    /// Grants (or renews) the lease on the current stream.
    pub async fn grant_lease(&self, token: u64, ttl: Duration) {
        self.send(Down::Lease(LeaseAssignment {
            account: Some(telegram_account()),
            fencing_token: token,
            expires_at_ms: now_ms() + ttl.as_millis() as i64,
        }))
        .await;
    }

    /// Calls that reached the gateway, refused ones included.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    pub fn hellos(&self) -> Vec<BridgeHello> {
        self.shared.recorded.lock().unwrap().hellos.clone()
    }

    pub fn inbound(&self) -> Vec<InboundMessage> {
        self.shared.recorded.lock().unwrap().inbound.clone()
    }

    pub fn receipts(&self) -> Vec<DeliveryReceipt> {
        self.shared.recorded.lock().unwrap().receipts.clone()
    }

    /// Waits until `check` holds for the recorded frames.
    pub async fn wait_until<T>(&self, what: &str, check: impl Fn(&Recorded) -> Option<T>) -> T {
        let mut version = self.shared.version.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(t) = check(&self.shared.recorded.lock().unwrap()) {
                return t;
            }
            if tokio::time::timeout_at(deadline, version.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for {what}");
            }
        }
    }

    pub async fn wait_hellos(&self, n: usize) -> Vec<BridgeHello> {
        self.wait_until("hellos", |r| {
            (r.hellos.len() >= n).then(|| r.hellos.clone())
        })
        .await
    }

    pub async fn wait_inbound(&self, n: usize) -> Vec<InboundMessage> {
        self.wait_until("inbound messages", |r| {
            (r.inbound.len() >= n).then(|| r.inbound.clone())
        })
        .await
    }

    pub async fn wait_receipts(&self, delivery_id: &str, n: usize) -> Vec<DeliveryReceipt> {
        self.wait_until("receipts", |r| {
            let found: Vec<DeliveryReceipt> = r
                .receipts
                .iter()
                .filter(|x| x.delivery_id == delivery_id)
                .cloned()
                .collect();
            (found.len() >= n).then_some(found)
        })
        .await
    }

    /// Sends a frame down the current stream.
    pub async fn send(&self, kind: Down) {
        let tx = self.shared.recorded.lock().unwrap().current.clone();
        tx.expect("no bridge connected")
            .send(Ok(down(kind)))
            .await
            .unwrap();
    }

    pub async fn deliver(&self, id: &str, chat_id: &str, text: &str, reply_to: &str, token: u64) {
        self.send(Down::Delivery(Delivery {
            delivery_id: id.into(),
            account: Some(telegram_account()),
            chat_id: chat_id.into(),
            text: text.into(),
            reply_to_platform_message_id: reply_to.into(),
            fencing_token: token,
            thread_id: String::new(),
        }))
        .await;
    }

    pub async fn typing(&self, chat_id: &str) {
        self.send(Down::Typing(TypingIndicator {
            account: Some(telegram_account()),
            chat_id: chat_id.into(),
            thread_id: String::new(),
        }))
        .await;
    }

    /// Ends the current stream with an error, as a gateway restart would.
    pub async fn kick(&self) {
        let tx = self.shared.recorded.lock().unwrap().current.take();
        if let Some(tx) = tx {
            let _ = tx
                .send(Err(Status::unavailable("gateway restarting")))
                .await;
        }
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Fast timing for tests.
pub fn settings(gateway_url: &str, credential: &str) -> BridgeSettings {
    let mut s = BridgeSettings::new(gateway_url, Secret::new(credential));
    s.timing = LinkTiming {
        reconnect_initial: Duration::from_millis(100),
        reconnect_max: Duration::from_millis(800),
        connect_timeout: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(5),
    };
    s
}

pub fn telegram_settings(fake: &FakeTelegram, token: &str) -> TelegramSettings {
    let mut t = TelegramSettings::new(Secret::new(token), fake.base_url().parse().unwrap());
    t.poll_timeout = Duration::from_secs(1);
    t.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    };
    t
}

pub fn telegram_options(token: &str) -> FakeTelegramOptions {
    FakeTelegramOptions {
        token: token.into(),
        bot_username: "pincer_bot".into(),
        bot_id: 555,
    }
}

/// A running bridge.
pub struct RunningBridge {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), BridgeError>>,
}

impl RunningBridge {
    pub fn start(settings: BridgeSettings, telegram: TelegramSettings) -> Self {
        let bridge = Bridge::new(settings).with_telegram(telegram).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bridge.run(shutdown.clone()));
        Self { shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("bridge did not stop in time")
            .unwrap()
            .unwrap();
    }
}

/// A fake Telegram, a fake gateway and a bridge between them.
pub struct Stack {
    pub telegram: FakeTelegram,
    pub gateway: FakeGateway,
    pub bridge: RunningBridge,
    pub token: String,
}

impl Stack {
    pub async fn start(token: &str) -> Self {
        let telegram = FakeTelegram::start(telegram_options(token)).await.unwrap();
        let gateway = FakeGateway::start(CREDENTIAL).await;
        let bridge = RunningBridge::start(
            settings(&gateway.url(), CREDENTIAL),
            telegram_settings(&telegram, token),
        );
        gateway.wait_hellos(1).await;
        Self {
            telegram,
            gateway,
            bridge,
            token: token.into(),
        }
    }
}
