//! The turn runner: takes pending inbound messages (one turn at a time per session, a few
//! sessions in parallel), asks an agent to run the turn, streams updates to operator
//! clients, and records the outcome atomically (transcript + outbox + inbound done).
//!
//! If the agent cannot be reached the message stays pending and is retried; if the turn
//! itself fails the user gets a short error reply. A crash at any point re-runs the
//! message; the reply is queued only when the turn is recorded, so it is sent once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_proto::v1::turn_event::Kind as Event;
use pincer_proto::v1::{RunTurnRequest, WorkspaceAccess};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::agent_link::AgentClient;
use crate::bridge_link::BridgeHub;
use crate::grants::{GrantSigner, GrantSpec, TurnTools};
use crate::routing::ChatKind;
use crate::senders::SenderClass;
use crate::store::Store;
use crate::store::db::now_ms;
use crate::store::inbound::{Completion, PendingInbound, complete, is_pending, pending};
use crate::store::outbox::NewDelivery;
use crate::turn_events::{TurnEvents, TurnUpdate, event_key};

/// Sessions that may run turns at the same time.
const PARALLEL_TURNS: usize = 8;
/// How long a turn may take before the gateway gives up on it.
const TURN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a grant is valid.
const GRANT_TTL_MS: i64 = 15 * 60 * 1000;

/// What the runner needs.
pub struct TurnRunner {
    /// The store.
    pub store: Store,
    /// The agent.
    pub agent: AgentClient,
    /// Bridges (typing indicators).
    pub hub: Arc<BridgeHub>,
    /// Operator subscriptions.
    pub events: Arc<TurnEvents>,
    /// The agent id.
    pub agent_id: String,
    /// Which tools, network and exec policy turns are granted (never tools to groups).
    pub tools: TurnTools,
    /// Woken when a reply is queued.
    pub outbox_ready: Arc<tokio::sync::Notify>,
    /// Signs each turn's grant.
    pub grants: GrantSigner,
}

#[derive(Default)]
struct Busy {
    sessions: HashSet<String>,
    messages: HashSet<i64>,
    retry_at: HashMap<i64, (Instant, u32)>,
}

enum Outcome {
    Reply(String),
    /// Try again later (agent unreachable, shutting down).
    Retry(String),
}

impl TurnRunner {
    /// Runs turns until `shutdown`; in-flight turns finish (or stay pending) before it returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let busy = Arc::new(Mutex::new(Busy::default()));
        let slots = Arc::new(Semaphore::new(PARALLEL_TURNS));
        let mut tasks = tokio::task::JoinSet::new();
        let wake = Arc::clone(&self.hub.inbound_ready);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
            let batch = match self.store.call(|c| pending(c, 256)).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the inbound queue");
                    continue;
                }
            };
            for msg in batch {
                {
                    let mut b = lock(&busy);
                    if b.messages.contains(&msg.id) || b.sessions.contains(msg.session_key.as_str())
                    {
                        continue;
                    }
                    if b.retry_at
                        .get(&msg.id)
                        .is_some_and(|(at, _)| *at > Instant::now())
                    {
                        continue;
                    }
                    b.sessions.insert(msg.session_key.as_str().to_owned());
                    b.messages.insert(msg.id);
                }
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let me = Arc::clone(&self);
                let busy = Arc::clone(&busy);
                let stop = shutdown.clone();
                tasks.spawn(async move {
                    let outcome = me.run_one(&msg, &stop).await;
                    let mut b = lock(&busy);
                    b.sessions.remove(msg.session_key.as_str());
                    b.messages.remove(&msg.id);
                    match outcome {
                        Ok(()) => {
                            b.retry_at.remove(&msg.id);
                        }
                        Err(reason) => {
                            let tries = b.retry_at.get(&msg.id).map_or(0, |(_, n)| *n) + 1;
                            let wait = Duration::from_millis(500 * 2u64.saturating_pow(tries.min(6)));
                            tracing::warn!(inbound = msg.id, tries, ?wait, %reason, "turn postponed");
                            b.retry_at.insert(msg.id, (Instant::now() + wait, tries));
                        }
                    }
                    drop(permit);
                });
            }
        }
        // Drain: turns in flight finish; whatever does not stays pending for the next start.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(20), drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "turns still running at shutdown; they stay queued and re-run on the next start"
            );
        }
    }

    async fn run_one(
        &self,
        msg: &PendingInbound,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        // The batch this message came from may predate the end of an earlier turn for it
        // (that turn finished between the read and now): never run a message twice.
        let id = msg.id;
        match self.store.call(move |c| is_pending(c, id)).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(format!("cannot read the inbound queue: {e}")),
        }
        let key = event_key(&msg.channel, &msg.account_id, &msg.platform_message_id);
        let turn_id = format!("turn-{}", uuid::Uuid::new_v4().simple());
        if msg.chat_kind != ChatKind::Operator {
            self.hub
                .typing(&msg.channel, &msg.account_id, &msg.chat_id, &msg.thread_id);
        }
        let outcome = tokio::select! {
            o = self.call_agent(msg, &turn_id, &key) => o,
            () = shutdown.cancelled() => Outcome::Retry("shutting down".to_owned()),
        };
        let reply = match outcome {
            Outcome::Reply(text) => text,
            Outcome::Retry(reason) => return Err(reason),
        };
        let delivery =
            (msg.chat_kind != ChatKind::Operator && !reply.is_empty()).then(|| NewDelivery {
                channel: msg.channel.clone(),
                account_id: msg.account_id.clone(),
                chat_id: msg.chat_id.clone(),
                thread_id: msg.thread_id.clone(),
                reply_to: msg.platform_message_id.clone(),
                text: reply.clone(),
            });
        let done = Completion {
            turn_id,
            agent_id: self.agent_id.clone(),
            reply: reply.clone(),
            delivery,
        };
        let record = msg.clone();
        match self.store.call(move |c| complete(c, &record, &done)).await {
            Ok(_) => {
                self.outbox_ready.notify_one();
                self.events.publish(&key, TurnUpdate::Final { text: reply });
                Ok(())
            }
            Err(e) => Err(format!("cannot record the turn: {e}")),
        }
    }

    async fn call_agent(&self, msg: &PendingInbound, turn_id: &str, key: &str) -> Outcome {
        // Tools only for the owner and senders the owner allowed, in DMs (and the operator's
        // own API); groups and strangers under an open DM policy get none.
        let restricted =
            msg.chat_kind == ChatKind::Group || msg.sender_class == SenderClass::Stranger;
        let access = self.tools.for_turn(restricted);
        let request = RunTurnRequest {
            turn_id: turn_id.to_owned(),
            session_key: msg.session_key.as_str().to_owned(),
            agent_id: self.agent_id.clone(),
            user_text: msg.text.clone(),
            grant: Some(self.grants.sign(GrantSpec {
                turn_id: turn_id.to_owned(),
                session_key: msg.session_key.as_str().to_owned(),
                agent_id: self.agent_id.clone(),
                allowed_tools: access.tools,
                expires_at_ms: now_ms() + GRANT_TTL_MS,
                workspace: WorkspaceAccess::ReadWrite,
                network: access.network,
                exec_policy: access.exec_policy,
                sandbox_network: access.sandbox_network,
                sandbox_scope: access.sandbox_scope,
            })),
        };
        let mut agent = self.agent.clone();
        let stream = match agent.run_turn(request).await {
            Ok(s) => s.into_inner(),
            Err(status) => return classify(status),
        };
        match tokio::time::timeout(TURN_TIMEOUT, self.follow(stream, key)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Reply("Sorry, that took too long and was stopped.".to_owned()),
        }
    }

    async fn follow(
        &self,
        mut stream: tonic::Streaming<pincer_proto::v1::TurnEvent>,
        key: &str,
    ) -> Outcome {
        let mut streamed = String::new();
        loop {
            match stream.message().await {
                Ok(Some(event)) => match event.kind {
                    Some(Event::TextDelta(d)) => {
                        streamed.push_str(&d.text);
                        self.events.publish(key, TurnUpdate::Delta(d.text));
                    }
                    Some(Event::ToolCall(c)) => {
                        self.events.publish(
                            key,
                            TurnUpdate::ToolCall {
                                tool: c.tool,
                                arguments: c.arguments_json,
                            },
                        );
                    }
                    Some(Event::ToolResult(r)) => {
                        self.events.publish(
                            key,
                            TurnUpdate::ToolResult {
                                tool: r.tool,
                                ok: r.ok,
                                content: r.content,
                            },
                        );
                    }
                    Some(Event::Final(f)) => return Outcome::Reply(f.text),
                    Some(Event::Usage(_)) | None => {}
                },
                Ok(None) => {
                    return Outcome::Retry(format!(
                        "agent stream ended without a final message ({} bytes streamed)",
                        streamed.len()
                    ));
                }
                Err(status) => return classify(status),
            }
        }
    }
}

/// Transport-level failures are retried; a turn that failed inside the agent is answered.
fn classify(status: tonic::Status) -> Outcome {
    use tonic::Code;
    match status.code() {
        Code::Unavailable
        | Code::Unknown
        | Code::Cancelled
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Unauthenticated => {
            Outcome::Retry(format!("agent unavailable: {}", status.message()))
        }
        _ => Outcome::Reply(format!(
            "Sorry, I could not complete that: {}",
            status.message()
        )),
    }
}

fn lock(m: &Mutex<Busy>) -> std::sync::MutexGuard<'_, Busy> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
