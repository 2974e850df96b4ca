//! Shared by the gateway's integration tests: an echo agent, an in-process gateway on
//! loopback, WebSocket helpers, and a test device that answers `connect.challenge`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod channel;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use pincer_gateway::{GatewayListeners, GatewaySecrets};
use pincer_identity::{
    ClientId, ClientMode, ConnectClaims, ConnectToken, DeviceKey, Nonce, Role, ScopeSet, sign,
};
use pincer_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use pincer_proto::v1::turn_event::Kind;
use pincer_proto::v1::{FinalMessage, RunTurnRequest, TextDelta, TurnEvent};
use pincer_runtime::Secret;
use pincer_runtime::service_auth::{RequireCaller, ServiceName};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "operator-token-for-tests-0123456789abcdef";

struct EchoAgent;

type Events = Pin<Box<dyn Stream<Item = Result<TurnEvent, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for EchoAgent {
    type RunTurnStream = Events;

    async fn run_turn(
        &self,
        request: tonic::Request<RunTurnRequest>,
    ) -> Result<tonic::Response<Events>, tonic::Status> {
        let req = request.into_inner();
        assert!(req.grant.is_some(), "every turn carries a grant");
        let text = format!("echo: {}", req.user_text);
        let events = vec![
            Ok(TurnEvent {
                kind: Some(Kind::TextDelta(TextDelta { text: text.clone() })),
            }),
            Ok(TurnEvent {
                kind: Some(Kind::Final(FinalMessage {
                    text,
                    stop_reason: "stop".into(),
                })),
            }),
        ];
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(
            events,
        ))))
    }
}

pub struct Gateway {
    pub operator: std::net::SocketAddr,
    pub grpc: std::net::SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), pincer_gateway::GatewayError>>,
    pub state: tempfile::TempDir,
}

pub async fn start() -> Gateway {
    start_with("{}").await
}

pub async fn start_with(gateway: &str) -> Gateway {
    start_on(gateway, TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

/// A gateway keeping its state in `dir` (to restart on the same state).
pub async fn start_in(dir: &std::path::Path) -> Gateway {
    start_full(
        "{}",
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(dir),
    )
    .await
}

/// A gateway whose operator API listens on `operator`.
pub async fn start_on(gateway: &str, operator: TcpListener) -> Gateway {
    start_full(gateway, operator, None).await
}

async fn start_full(
    gateway: &str,
    operator: TcpListener,
    dir: Option<&std::path::Path>,
) -> Gateway {
    start_custom(gateway, "{}", operator, dir).await
}

/// A gateway with `gateway` and `tools` sections, state in `dir` (or a fresh temp dir).
pub async fn start_custom(
    gateway: &str,
    tools: &str,
    operator: TcpListener,
    dir: Option<&std::path::Path>,
) -> Gateway {
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr().unwrap();
    let agent_auth = RequireCaller::new(vec![(ServiceName::Gateway, Secret::new("gateway-cred"))]);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::with_interceptor(EchoAgent, agent_auth))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                agent_listener,
            )),
    );
    let config = pincer_runtime::config::parse_config(
        &format!(
            r#"{{ gateway: {gateway}, services: {{ agent: {{ url: "http://{agent_addr}" }} }},
                 models: {{ providers: {{ p: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
                 agents: {{ defaults: {{ model: "p/m" }} }}, tools: {tools} }}"#
        ),
        "test",
    )
    .unwrap();
    let listeners = GatewayListeners {
        operator,
        grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let (operator, grpc) = (
        listeners.operator.local_addr().unwrap(),
        listeners.grpc.local_addr().unwrap(),
    );
    let secrets = GatewaySecrets {
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
        dir.map_or_else(|| state.path().join("state"), std::path::Path::to_path_buf),
        listeners,
        secrets,
        shutdown.clone(),
    ));
    Gateway {
        operator,
        grpc,
        shutdown,
        task,
        state,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws(gw: &Gateway) -> Ws {
    let url = format!("ws://{}/ws", gw.operator);
    for _ in 0..50 {
        if let Ok((socket, _)) = tokio_tungstenite::connect_async(&url).await {
            return socket;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway did not accept WebSocket connections");
}

pub async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON frame, or None when the connection closed.
pub async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("frame within 15 s")
        {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// A WebSocket to the gateway from `source` (a loopback address such as 127.0.0.3) with
/// extra request headers.
pub async fn ws_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    headers: &[(&str, &str)],
) -> Result<Ws, String> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let socket = match source {
        Some(ip) => {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::new(ip, 0)).unwrap();
            s.connect(addr).await.map_err(|e| e.to_string())?
        }
        None => tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?,
    };
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(socket))
        .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            Err(format!("http {}", r.status().as_u16()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Reads frames until the `connect.challenge` event; returns its nonce.
pub async fn challenge(ws: &mut Ws) -> String {
    loop {
        let f = recv(ws).await.expect("challenge before close");
        if f["type"] == "event" && f["event"] == "connect.challenge" {
            assert_eq!(f["seq"], 1, "the challenge is the first event");
            return f["payload"]["nonce"].as_str().unwrap().to_owned();
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The credential a test device presents.
#[derive(Debug, Clone)]
pub enum Cred {
    Gateway(String),
    Device(String),
    Nothing,
}

/// A device with its own key.
pub struct Device {
    pub key: DeviceKey,
    pub token: Option<String>,
}

impl Device {
    pub fn new(seed: u8) -> Self {
        Self {
            key: DeviceKey::from_seed([seed; 32]),
            token: None,
        }
    }

    pub fn id(&self) -> String {
        self.key.device_id().to_string()
    }

    /// A signed `connect` frame for `nonce`.
    pub fn connect_frame(&self, nonce: &str, cred: &Cred, scopes: &[&str]) -> Value {
        self.connect_frame_at(nonce, cred, scopes, now_ms())
    }

    pub fn connect_frame_at(
        &self,
        nonce: &str,
        cred: &Cred,
        scopes: &[&str],
        signed_at: u64,
    ) -> Value {
        let (auth, token) = match cred {
            Cred::Gateway(t) => (json!({ "token": t }), t.clone()),
            Cred::Device(t) => (json!({ "deviceToken": t }), t.clone()),
            Cred::Nothing => (json!({}), String::new()),
        };
        let set = ScopeSet::parse_names(scopes).unwrap();
        let claims = ConnectClaims {
            device_id: self.key.device_id(),
            client_id: ClientId::new("test-client").unwrap(),
            client_mode: ClientMode::Cli,
            role: Role::Operator,
            scopes: set,
            signed_at_ms: signed_at,
            token: if token.is_empty() {
                ConnectToken::none()
            } else {
                ConnectToken::new(token).unwrap()
            },
            nonce: nonce.parse::<Nonce>().unwrap(),
        };
        let signed = sign(&self.key, &claims);
        json!({ "type": "req", "id": "c1", "method": "connect", "params": {
            "minProtocol": 2, "maxProtocol": 2,
            "client": { "id": "test-client", "version": "1", "mode": "cli" },
            "role": "operator",
            "scopes": scopes,
            "auth": auth,
            "device": {
                "id": self.id(),
                "publicKey": signed.public_key,
                "signature": signed.signature,
                "signedAt": signed_at,
                "nonce": nonce,
            },
        }})
    }

    /// Opens a socket (with `headers`), answers the challenge, returns the socket and the
    /// `connect` response. Keeps an issued device token.
    pub async fn connect_with(
        &mut self,
        gw: &Gateway,
        cred: &Cred,
        scopes: &[&str],
        headers: &[(&str, &str)],
    ) -> (Ws, Value) {
        let mut socket = ws_from(gw.operator, None, headers).await.unwrap();
        let nonce = challenge(&mut socket).await;
        send(&mut socket, self.connect_frame(&nonce, cred, scopes)).await;
        let res = recv(&mut socket).await.expect("connect response");
        if let Some(t) = res["payload"]["auth"]["deviceToken"].as_str() {
            self.token = Some(t.to_owned());
        }
        (socket, res)
    }

    pub async fn connect(&mut self, gw: &Gateway, cred: &Cred, scopes: &[&str]) -> (Ws, Value) {
        self.connect_with(gw, cred, scopes, &[]).await
    }
}

pub const ALL: &[&str] = &["admin", "approvals", "pairing", "read", "write"];

/// Sends a request and returns its response (skipping events).
pub async fn call(ws: &mut Ws, id: &str, method: &str, params: Value) -> Value {
    send(
        ws,
        json!({ "type": "req", "id": id, "method": method, "params": params }),
    )
    .await;
    loop {
        let f = recv(ws).await.expect("response before close");
        if f["type"] == "res" && f["id"] == id {
            return f;
        }
    }
}

/// Waits until the gateway accepts TCP connections.
pub async fn ready(gw: &Gateway) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(gw.operator).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gateway not listening");
}
