//! [`FakeLlm`]: the server, its script queue and its request log.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::script::{Conversation, Reply, Step, demo_brain};
use super::{anthropic, openai};
use crate::TestkitError;
use crate::server::{ServerHandle, lock};

/// Which API keys the fake demands; `None` accepts any (or no) key.
#[derive(Debug, Clone, Default)]
pub struct FakeLlmOptions {
    /// Expected `Authorization: Bearer <key>` on `/v1/chat/completions`.
    pub openai_api_key: Option<String>,
    /// Expected `x-api-key: <key>` on `/v1/messages`.
    pub anthropic_api_key: Option<String>,
}

/// One request as the fake received it (recorded before auth, so rejected ones count).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// The request path, e.g. `/v1/messages`.
    pub path: String,
    /// All request headers, names lower-cased (values that are not UTF-8 are dropped).
    pub headers: BTreeMap<String, String>,
    /// The parsed JSON body, or `Value::Null` when the body was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// State shared by the handlers.
pub(crate) struct Shared {
    pub(crate) options: FakeLlmOptions,
    pub(crate) stop: watch::Receiver<bool>,
    state: Mutex<LlmState>,
}

#[derive(Default)]
struct LlmState {
    queue: VecDeque<Step>,
    requests: Vec<RecordedRequest>,
    next_id: u64,
}

impl Shared {
    pub(crate) fn record(&self, path: &str, headers: &HeaderMap, body: Value) {
        let headers = headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        lock(&self.state).requests.push(RecordedRequest {
            path: path.to_owned(),
            headers,
            body,
        });
    }

    /// The next scripted step, or the demo brain's answer when the script is empty.
    pub(crate) fn next_reply(&self, conversation: &Conversation) -> Reply {
        match lock(&self.state).queue.pop_front() {
            Some(step) => Reply::from(step),
            None => demo_brain(conversation),
        }
    }

    /// A per-fake counter for response ids, so ids are unique and deterministic.
    pub(crate) fn next_id(&self) -> u64 {
        let mut state = lock(&self.state);
        state.next_id += 1;
        state.next_id
    }
}

/// A fake OpenAI + Anthropic endpoint on loopback. Dropping it stops the server.
///
/// ```no_run
/// # async fn demo() -> Result<(), pincer_testkit::TestkitError> {
/// use pincer_testkit::{FakeLlm, FakeLlmOptions, Step};
/// let fake = FakeLlm::start(FakeLlmOptions::default()).await?;
/// fake.push(Step::Text("hello".into()));
/// let url = format!("{}/v1/chat/completions", fake.base_url());
/// # let _ = url; Ok(()) }
/// ```
pub struct FakeLlm {
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl FakeLlm {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(options: FakeLlmOptions) -> Result<Self, TestkitError> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    /// Starts the fake on a chosen address (the binary uses this; tests use [`start`](Self::start)).
    pub async fn start_on(addr: SocketAddr, options: FakeLlmOptions) -> Result<Self, TestkitError> {
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            options,
            stop: stop_rx,
            state: Mutex::new(LlmState::default()),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(openai::handle))
            .route("/v1/messages", post(anthropic::handle))
            .route("/_fake/health", get(health))
            .route("/_fake/requests", get(requests))
            .with_state(Arc::clone(&shared));
        let server = ServerHandle::serve(addr, router, stop, "llm").await?;
        Ok(Self { shared, server })
    }

    /// `http://IP:PORT`; clients append `/v1/chat/completions` or `/v1/messages`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Queues a step; each request (either API) consumes the oldest queued step.
    pub fn push(&self, step: Step) {
        lock(&self.shared.state).queue.push_back(step);
    }

    /// Steps queued but not yet consumed.
    pub fn pending_steps(&self) -> usize {
        lock(&self.shared.state).queue.len()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// How many requests were received so far.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.state).requests.len()
    }

    /// Stops accepting requests and waits (briefly) for in-flight ones.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

async fn health() -> Json<Value> {
    Json(serde_json::json!({ "ok": true }))
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(lock(&shared.state).requests.clone())
}
