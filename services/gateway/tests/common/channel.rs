//! A gateway with chat channels configured, an agent that records every turn and answers
//! with the session's history (as the real agent reads it, over `GetHistory`), and a fake
//! bridge replica that pushes inbound messages over the real `BridgeService` stream and
//! confirms deliveries.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use pincer_proto::v1::bridge_down::Kind as Down;
use pincer_proto::v1::bridge_service_client::BridgeServiceClient;
use pincer_proto::v1::bridge_up::Kind as Up;
use pincer_proto::v1::gateway_service_client::GatewayServiceClient;
use pincer_proto::v1::turn_event::Kind;
use pincer_proto::v1::{
    BridgeHello, BridgeUp, ChannelAccount, ChatKind, Delivery, DeliveryReceipt, FinalMessage,
    GetHistoryRequest, GrantClaims, InboundAck, InboundMessage, RunTurnRequest, TurnEvent,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, RequireCaller, ServiceName};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{Gateway, TOKEN};

/// A turn the agent was asked to run.
#[derive(Debug, Clone)]
pub struct SeenTurn {
    /// The session.
    pub session_key: String,
    /// The user's text.
    pub text: String,
    /// Tools the grant allows.
    pub tools: Vec<String>,
    /// The history the agent read for it.
    pub history: Vec<String>,
}

#[derive(Clone)]
struct HistoryAgent {
    gateway: SocketAddr,
    seen: Arc<Mutex<Vec<SeenTurn>>>,
}

type Events =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<TurnEvent, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for HistoryAgent {
    type RunTurnStream = Events;

    async fn run_turn(
        &self,
        request: tonic::Request<RunTurnRequest>,
    ) -> Result<tonic::Response<Events>, tonic::Status> {
        let req = request.into_inner();
        let grant = req.grant.expect("every turn carries a grant");
        let claims = GrantClaims::decode(grant.claims.as_slice()).unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.gateway))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let cred = PresentCredential::new(ServiceName::Agent, &Secret::new("agent-cred")).unwrap();
        let history: Vec<String> = GatewayServiceClient::with_interceptor(channel, cred)
            .get_history(GetHistoryRequest {
                session_key: req.session_key.clone(),
                turn_id: req.turn_id.clone(),
                max_entries: 100,
            })
            .await
            .unwrap()
            .into_inner()
            .entries
            .into_iter()
            .map(|e| e.text)
            .collect();
        let text = format!(
            "echo: {} | history: [{}]",
            req.user_text,
            history.join(" / ")
        );
        self.seen.lock().unwrap().push(SeenTurn {
            session_key: req.session_key,
            text: req.user_text,
            tools: claims.allowed_tools,
            history,
        });
        let events = vec![Ok(TurnEvent {
            kind: Some(Kind::Final(FinalMessage {
                text,
                stop_reason: "stop".into(),
            })),
        })];
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(
            events,
        ))))
    }
}

/// A gateway with channels and its recording agent.
pub struct ChannelGateway {
    /// The gateway.
    pub gw: Gateway,
    /// Every turn the agent ran.
    pub turns: Arc<Mutex<Vec<SeenTurn>>>,
}

impl ChannelGateway {
    /// The turns so far.
    pub fn turns(&self) -> Vec<SeenTurn> {
        self.turns.lock().unwrap().clone()
    }

    /// Waits until the agent ran `n` turns.
    pub async fn wait_turns(&self, n: usize) -> Vec<SeenTurn> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let turns = self.turns();
            if turns.len() >= n {
                return turns;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} turns, got {turns:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a gateway whose config adds `sections` at the top level (e.g.
/// `channels: { telegram: { … } }, session: { … }`), with state in `dir` (or a temp dir).
pub async fn start_channels(sections: &str, dir: Option<&Path>) -> ChannelGateway {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let operator = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr().unwrap();
    let turns = Arc::new(Mutex::new(Vec::new()));
    let agent = HistoryAgent {
        gateway: grpc_addr,
        seen: Arc::clone(&turns),
    };
    let agent_auth = RequireCaller::new(vec![(ServiceName::Gateway, Secret::new("gateway-cred"))]);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::with_interceptor(agent, agent_auth))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                agent_listener,
            )),
    );
    let config = pincer_runtime::config::parse_config(
        &format!(
            r#"{{ services: {{ agent: {{ url: "http://{agent_addr}" }} }},
                 models: {{ providers: {{ p: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
                 agents: {{ defaults: {{ model: "p/m" }} }}, {sections} }}"#
        ),
        "test",
    )
    .unwrap();
    let listeners = pincer_gateway::GatewayListeners { operator, grpc };
    let (operator, grpc) = (
        listeners.operator.local_addr().unwrap(),
        listeners.grpc.local_addr().unwrap(),
    );
    let secrets = pincer_gateway::GatewaySecrets {
        operator_auth: pincer_gateway::operator::auth::OperatorAuth::Token(Secret::new(TOKEN)),
        gateway_credential: Secret::new("gateway-cred"),
        bridge_credential: Secret::new("bridge-cred"),
        agent_credential: Secret::new("agent-cred"),
        executor_credential: Secret::new("executor-cred"),
    };
    let state = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pincer_gateway::run(
        config,
        dir.map_or_else(|| state.path().join("state"), Path::to_path_buf),
        listeners,
        secrets,
        shutdown.clone(),
    ));
    let gw = Gateway {
        operator,
        grpc,
        shutdown,
        task,
        state,
    };
    super::ready(&gw).await;
    ChannelGateway { gw, turns }
}

/// Stops a gateway and waits until it drained.
pub async fn stop(gw: Gateway) {
    gw.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), gw.task)
        .await
        .expect("gateway drains")
        .unwrap()
        .unwrap();
}

/// A fake bridge replica on the real `BridgeService` stream.
pub struct FakeBridge {
    up: mpsc::Sender<BridgeUp>,
    acks: mpsc::Receiver<Result<InboundAck, tonic::Status>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    delivered: Arc<Notify>,
    next_id: u64,
}

impl FakeBridge {
    /// Connects as a replica offering `accounts` (`(channel, account)`) and waits for the
    /// first lease.
    pub async fn connect(gw: &Gateway, accounts: &[(&str, &str)]) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", gw.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let cred =
            PresentCredential::new(ServiceName::Bridge, &Secret::new("bridge-cred")).unwrap();
        let mut client = BridgeServiceClient::with_interceptor(channel, cred);
        let (up, rx) = mpsc::channel(64);
        up.send(BridgeUp {
            kind: Some(Up::Hello(BridgeHello {
                replica_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
                accounts: accounts
                    .iter()
                    .map(|(c, a)| ChannelAccount {
                        channel: (*c).to_owned(),
                        account_id: (*a).to_owned(),
                    })
                    .collect(),
            })),
        })
        .await
        .unwrap();
        let mut down = client
            .open_stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let (ack_tx, acks) = mpsc::channel(64);
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let delivered = Arc::new(Notify::new());
        let (leased_tx, mut leased) = mpsc::channel(4);
        {
            let (deliveries, delivered, up) =
                (Arc::clone(&deliveries), Arc::clone(&delivered), up.clone());
            tokio::spawn(async move {
                loop {
                    let frame = match down.message().await {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(status) => {
                            let _ = ack_tx.send(Err(status)).await;
                            break;
                        }
                    };
                    match frame.kind {
                        Some(Down::InboundAck(ack)) => {
                            let _ = ack_tx.send(Ok(ack)).await;
                        }
                        Some(Down::Delivery(d)) => {
                            let receipt = DeliveryReceipt {
                                delivery_id: d.delivery_id.clone(),
                                ok: true,
                                platform_message_ids: vec![format!("sent-{}", d.delivery_id)],
                                error: String::new(),
                                retryable: false,
                            };
                            deliveries.lock().unwrap().push(d);
                            delivered.notify_waiters();
                            let _ = up
                                .send(BridgeUp {
                                    kind: Some(Up::Receipt(receipt)),
                                })
                                .await;
                        }
                        Some(Down::Lease(_)) => {
                            let _ = leased_tx.try_send(());
                        }
                        Some(Down::Typing(_)) | None => {}
                    }
                }
            });
        }
        tokio::time::timeout(Duration::from_secs(10), leased.recv())
            .await
            .expect("a lease within 10 s");
        Self {
            up,
            acks,
            deliveries,
            delivered,
            next_id: 0,
        }
    }

    /// Sends an inbound message and waits for the gateway's answer.
    pub async fn send(&mut self, m: InboundMessage) -> Result<InboundAck, tonic::Status> {
        self.up
            .send(BridgeUp {
                kind: Some(Up::Inbound(m)),
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .expect("an ack within 10 s")
            .expect("the stream is open")
    }

    /// A new message id (unique across replicas and restarts).
    pub fn next_message_id(&mut self) -> String {
        self.next_id += 1;
        format!("m{}-{}", self.next_id, uuid::Uuid::new_v4().simple())
    }

    /// A Telegram DM from `sender`, stored.
    pub async fn dm(&mut self, sender: &str, text: &str) -> InboundAck {
        let id = self.next_message_id();
        self.send(message(
            "telegram",
            ChatKind::Direct,
            sender,
            sender,
            text,
            false,
            &id,
        ))
        .await
        .unwrap()
    }

    /// A Telegram group message, stored.
    pub async fn group(
        &mut self,
        chat: &str,
        sender: &str,
        text: &str,
        mentions_bot: bool,
    ) -> InboundAck {
        let id = self.next_message_id();
        self.send(message(
            "telegram",
            ChatKind::Group,
            sender,
            chat,
            text,
            mentions_bot,
            &id,
        ))
        .await
        .unwrap()
    }

    /// Deliveries to `chat` so far.
    pub fn delivered_to(&self, chat: &str) -> Vec<String> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.chat_id == chat)
            .map(|d| d.text.clone())
            .collect()
    }

    /// Every delivery so far.
    pub fn delivery_count(&self) -> usize {
        self.deliveries.lock().unwrap().len()
    }

    /// Waits until `chat` received `n` deliveries; returns them.
    pub async fn wait_delivered(&self, chat: &str, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let notified = self.delivered.notified();
            let got = self.delivered_to(chat);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("expected {n} deliveries to {chat}, got {got:?}");
            }
        }
    }
}

/// An inbound message.
pub fn message(
    channel: &str,
    kind: ChatKind,
    sender: &str,
    chat: &str,
    text: &str,
    mentions_bot: bool,
    id: &str,
) -> InboundMessage {
    InboundMessage {
        account: Some(ChannelAccount {
            channel: channel.into(),
            account_id: "default".into(),
        }),
        sender_id: sender.into(),
        sender_display_name: "Someone".into(),
        chat_id: chat.into(),
        chat_kind: kind.into(),
        mentions: Vec::new(),
        mentions_bot,
        text: text.into(),
        media: Vec::new(),
        platform_message_id: id.into(),
        sent_at_ms: super::now_ms() as i64,
        thread_id: String::new(),
        fencing_token: 0,
    }
}

/// The pairing code in a stranger's message.
pub fn code_in(text: &str) -> String {
    let after = text
        .split("pairing code: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no code in {text:?}"));
    after.chars().take(8).collect()
}
