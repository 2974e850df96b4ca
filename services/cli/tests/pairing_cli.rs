//! Sender pairing as the owner meets it: a real `pincer-gateway` process, a bridge replica
//! (played by the test over the real `BridgeService` stream with the bridge credential), an
//! agent (played by the test: it records every turn) and `pincer pairing list|approve|
//! reject`. A stranger's DM gets exactly one code and never reaches the agent; after
//! `pincer pairing approve telegram <CODE>` their next DM does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use pincer_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use pincer_proto::v1::bridge_down::Kind as Down;
use pincer_proto::v1::bridge_service_client::BridgeServiceClient;
use pincer_proto::v1::bridge_up::Kind as Up;
use pincer_proto::v1::turn_event::Kind;
use pincer_proto::v1::{
    BridgeHello, BridgeUp, ChannelAccount, ChatKind, DeliveryReceipt, FinalMessage, InboundMessage,
    RunTurnRequest, TurnEvent,
};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{PresentCredential, RequireCaller, ServiceName};
use serde_json::Value;
use tokio::sync::mpsc;

struct Gateway {
    child: Child,
    config: PathBuf,
    grpc: u16,
    dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Default)]
struct RecordingAgent {
    texts: Arc<Mutex<Vec<String>>>,
}

type Events = Pin<Box<dyn Stream<Item = Result<TurnEvent, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for RecordingAgent {
    type RunTurnStream = Events;

    async fn run_turn(
        &self,
        request: tonic::Request<RunTurnRequest>,
    ) -> Result<tonic::Response<Events>, tonic::Status> {
        let req = request.into_inner();
        self.texts.lock().unwrap().push(req.user_text.clone());
        let event = TurnEvent {
            kind: Some(Kind::Final(FinalMessage {
                text: format!("echo: {}", req.user_text),
                stop_reason: "stop".into(),
            })),
        };
        Ok(tonic::Response::new(Box::pin(futures::stream::iter([Ok(
            event,
        )]))))
    }
}

async fn start_agent() -> (u16, RecordingAgent) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let agent = RecordingAgent::default();
    let incoming = futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    });
    let auth = RequireCaller::new(vec![(ServiceName::Gateway, Secret::new("g-cred"))]);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::with_interceptor(agent.clone(), auth))
            .serve_with_incoming(incoming),
    );
    (port, agent)
}

fn start_gateway(agent_port: u16) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc) = (free_port(), free_port());
    let config = dir.path().join("pincer.json5");
    let text = format!(
        r#"{{ gateway: {{ port: {port}, auth: {{ token: "pairing-test-operator-token-0123456789" }} }},
  models: {{ providers: {{ p: {{ api: "anthropic", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
  agents: {{ defaults: {{ model: "p/m" }} }},
  channels: {{ telegram: {{ botToken: "unused-by-the-gateway", owners: ["1"] }} }},
  services: {{ gateway: {{ listen: "127.0.0.1:{grpc}" }}, agent: {{ url: "http://127.0.0.1:{agent_port}" }},
              credentials: {{ gateway: "g-cred", bridge: "b-cred", agent: "a-cred", executor: "e-cred" }} }} }}"#
    );
    pincer_runtime::paths::write_private_file(&config, text.as_bytes()).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pincer"))
        .parent()
        .unwrap()
        .join("pincer-gateway");
    assert!(
        bin.is_file(),
        "build the service binaries first: cargo build --workspace --bins"
    );
    let child = Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "--state-dir"])
        .arg(dir.path().join("gateway-state"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_port(port, "the gateway");
    wait_port(grpc, "the gateway's gRPC");
    Gateway {
        child,
        config,
        grpc,
        dir,
    }
}

fn pincer(gw: &Gateway, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pincer"))
        .arg("--config")
        .arg(&gw.config)
        .args(args)
        .env("PINCER_STATE_DIR", gw.dir.path().join("owner"))
        .output()
        .unwrap()
}

/// The bridge replica: sends DMs, confirms deliveries, collects them per chat.
struct Bridge {
    up: mpsc::Sender<BridgeUp>,
    sent: Arc<Mutex<Vec<(String, String)>>>,
    next: u32,
}

impl Bridge {
    async fn connect(gw: &Gateway) -> Self {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", gw.grpc))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let cred = PresentCredential::new(ServiceName::Bridge, &Secret::new("b-cred")).unwrap();
        let (up, rx) = mpsc::channel::<BridgeUp>(16);
        up.send(BridgeUp {
            kind: Some(Up::Hello(BridgeHello {
                replica_id: "pairing-test".into(),
                accounts: vec![ChannelAccount {
                    channel: "telegram".into(),
                    account_id: "default".into(),
                }],
            })),
        })
        .await
        .unwrap();
        let outbound = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        let mut down = BridgeServiceClient::with_interceptor(channel, cred)
            .open_stream(outbound)
            .await
            .unwrap()
            .into_inner();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (leased_tx, mut leased) = mpsc::channel(4);
        let (record, reply) = (Arc::clone(&sent), up.clone());
        tokio::spawn(async move {
            while let Ok(Some(frame)) = down.message().await {
                match frame.kind {
                    Some(Down::Delivery(d)) => {
                        record
                            .lock()
                            .unwrap()
                            .push((d.chat_id.clone(), d.text.clone()));
                        let receipt = DeliveryReceipt {
                            delivery_id: d.delivery_id,
                            ok: true,
                            platform_message_ids: vec!["1".into()],
                            error: String::new(),
                            retryable: false,
                        };
                        let _ = reply
                            .send(BridgeUp {
                                kind: Some(Up::Receipt(receipt)),
                            })
                            .await;
                    }
                    Some(Down::Lease(_)) => {
                        let _ = leased_tx.try_send(());
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), leased.recv())
            .await
            .expect("a lease");
        Self { up, sent, next: 0 }
    }

    async fn dm(&mut self, sender: &str, text: &str) {
        self.next += 1;
        let msg = InboundMessage {
            account: Some(ChannelAccount {
                channel: "telegram".into(),
                account_id: "default".into(),
            }),
            sender_id: sender.into(),
            chat_id: sender.into(),
            chat_kind: ChatKind::Direct.into(),
            text: text.into(),
            platform_message_id: format!("{sender}:{}", self.next),
            ..Default::default()
        };
        self.up
            .send(BridgeUp {
                kind: Some(Up::Inbound(msg)),
            })
            .await
            .unwrap();
    }

    fn to(&self, chat: &str) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == chat)
            .map(|(_, t)| t.clone())
            .collect()
    }

    async fn wait_to(&self, chat: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.to(chat);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages to {chat}: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pincer_pairing_approve_lets_a_stranger_in() {
    let (agent_port, agent) = start_agent().await;
    let gw = start_gateway(agent_port);
    let mut bridge = Bridge::connect(&gw).await;

    bridge.dm("42", "hello").await;
    let first = bridge.wait_to("42", 1).await.remove(0);
    let code: String = first
        .split("pairing code: ")
        .nth(1)
        .expect("a pairing code")
        .chars()
        .take(8)
        .collect();
    assert!(
        first.contains(&format!("pincer pairing approve telegram {code}")),
        "{first}"
    );
    bridge.dm("42", "hello?").await;
    bridge.dm("77", "me too").await;
    let other = bridge.wait_to("77", 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(bridge.to("42").len(), 1, "one code per request");
    assert!(agent.texts.lock().unwrap().is_empty());

    let listed = tokio::task::block_in_place(|| pincer(&gw, &["pairing", "list", "--json"]));
    let listed: Value = serde_json::from_str(&ok_stdout(&listed)).unwrap();
    let requests = listed["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{listed}");
    assert!(
        requests
            .iter()
            .any(|r| r["senderId"] == "42" && r["code"] == code.as_str()),
        "{listed}"
    );

    // Wrong channel, guessed code: refused, with a message that says what to check.
    for (channel, guess) in [("matrix", code.as_str()), ("telegram", "ZZZZ2222")] {
        let out =
            tokio::task::block_in_place(|| pincer(&gw, &["pairing", "approve", channel, guess]));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no pending pairing request"), "{err}");
    }

    // The other stranger is rejected; the owner approves the first.
    let other_code: String = other
        .split("pairing code: ")
        .nth(1)
        .unwrap()
        .chars()
        .take(8)
        .collect();
    let out = tokio::task::block_in_place(|| {
        pincer(&gw, &["pairing", "reject", "telegram", &other_code])
    });
    assert_eq!(ok_stdout(&out).trim(), "telegram 77: rejected");
    let out = tokio::task::block_in_place(|| {
        pincer(
            &gw,
            &["pairing", "approve", "telegram", &code.to_lowercase()],
        )
    });
    assert_eq!(ok_stdout(&out).trim(), "telegram 42: approved");

    bridge.dm("42", "now?").await;
    bridge.dm("77", "and me?").await;
    let replies = bridge.wait_to("42", 2).await;
    assert_eq!(replies[1], "echo: now?");
    assert_eq!(*agent.texts.lock().unwrap(), ["now?"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bridge.to("77").len(),
        1,
        "the rejected stranger got nothing more"
    );

    let out = tokio::task::block_in_place(|| pincer(&gw, &["pairing", "list"]));
    let text = ok_stdout(&out);
    assert!(
        text.contains("paired senders:") && text.contains("telegram 42"),
        "{text}"
    );
    assert!(text.contains("rejected"), "{text}");
}
