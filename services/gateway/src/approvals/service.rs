//! The approval book behind a lock, written through to the `approvals` table (a change is
//! computed, persisted, and only then made visible), with events for operators and a wait
//! for the executor's call: it returns as soon as the owner decides, or after the wait.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use super::binding::Binding;
use super::book::{
    Approval, ApprovalBook, ApprovalId, BookError, Decision, Found, Requester, Taken,
};
use crate::operator::events::EventBus;
use crate::store::approvals as table;
use crate::store::db::now_ms;
use crate::store::{Store, StoreError};

/// Why an approval operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalsError {
    /// The book's rules refused it.
    #[error(transparent)]
    Book(#[from] BookError),
    /// The database failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the executor's call may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Run it (an allow-once was used up for it).
    AllowedOnce(ApprovalId),
    /// Run it (covered by allow-always).
    AllowedAlways(ApprovalId),
    /// The owner refused.
    Denied(ApprovalId),
    /// No answer within the wait; the request stays open until it expires.
    Pending(ApprovalId),
}

/// Exec approvals.
#[derive(Debug)]
pub struct Approvals {
    store: Store,
    book: Mutex<ApprovalBook>,
    bus: EventBus,
    changed: watch::Sender<u64>,
    wait: Duration,
    shutdown: CancellationToken,
}

impl Approvals {
    /// Loads the book; calls wait at most `wait` for the owner; waits end at `shutdown`.
    pub async fn open(
        store: Store,
        bus: EventBus,
        wait: Duration,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let rows = store.call(|c| table::load(c)).await?;
        Ok(Self {
            store,
            book: Mutex::new(ApprovalBook::restore(rows)),
            bus,
            changed: watch::channel(0).0,
            wait,
            shutdown,
        })
    }

    async fn persist(&self, row: &Approval) -> Result<(), StoreError> {
        let row = row.clone();
        self.store.call(move |c| table::save(c, &row)).await
    }

    /// An exec call of `requester` needs approval for `binding`: answers at once when an
    /// approval covers it, else opens (or joins) a request and waits for the owner.
    pub async fn request(
        &self,
        requester: Requester,
        binding: Binding,
        reason: String,
    ) -> Result<Answer, ApprovalsError> {
        let mut changed = self.changed.subscribe();
        let now = now_ms();
        let id = {
            let mut book = self.book.lock().await;
            self.forget_stale(&mut book, now).await?;
            match book.find(&requester, binding.hash(), now) {
                Found::Always(id) => return Ok(Answer::AllowedAlways(id)),
                Found::Once(used) => {
                    self.persist(&used).await?;
                    let id = used.id.clone();
                    book.put(*used);
                    return Ok(Answer::AllowedOnce(id));
                }
                Found::Pending(id) => id,
                Found::Nothing => {
                    let row = book.open(ApprovalId::random(), requester, binding, reason, now)?;
                    self.persist(&row).await?;
                    let event = requested_event(&row);
                    let id = row.id.clone();
                    book.put(row);
                    tracing::info!(approval = %id, "exec approval requested");
                    self.bus.publish("approval.requested", event);
                    id
                }
            }
        };
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            {
                let mut book = self.book.lock().await;
                match book.take(&id, now_ms()) {
                    Taken::Pending => {}
                    Taken::Once(used) => {
                        self.persist(&used).await?;
                        book.put(*used);
                        return Ok(Answer::AllowedOnce(id));
                    }
                    Taken::Always => return Ok(Answer::AllowedAlways(id)),
                    Taken::Denied => return Ok(Answer::Denied(id)),
                    Taken::Gone => return Ok(Answer::Pending(id)),
                }
            }
            tokio::select! {
                r = changed.changed() => {
                    if r.is_err() {
                        return Ok(Answer::Pending(id));
                    }
                }
                () = tokio::time::sleep_until(deadline) => return Ok(Answer::Pending(id)),
                () = self.shutdown.cancelled() => return Ok(Answer::Pending(id)),
            }
        }
    }

    /// The owner's decision.
    pub async fn resolve(
        &self,
        id: &ApprovalId,
        decision: Decision,
    ) -> Result<Approval, ApprovalsError> {
        let now = now_ms();
        let mut book = self.book.lock().await;
        let row = book.resolve(id, decision, now)?;
        self.persist(&row).await?;
        book.put(row.clone());
        drop(book);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        tracing::info!(approval = %id, state = row.state.name(), "exec approval resolved");
        self.bus.publish(
            "approval.resolved",
            json!({ "id": id.as_str(), "state": row.state.name() }),
        );
        Ok(row)
    }

    /// Every approval as operators see it, newest first.
    pub async fn list(&self) -> Vec<Value> {
        let now = now_ms();
        let book = self.book.lock().await;
        book.list().into_iter().map(|a| view(a, now)).collect()
    }

    async fn forget_stale(&self, book: &mut ApprovalBook, now: i64) -> Result<(), StoreError> {
        for id in book.stale(now) {
            let key = id.clone();
            self.store.call(move |c| table::delete(c, &key)).await?;
            book.remove(&id);
        }
        Ok(())
    }
}

/// An approval as operators see it.
pub fn view(a: &Approval, now_ms: i64) -> Value {
    json!({
        "id": a.id.as_str(),
        "state": a.state_name(now_ms),
        "agentId": a.requester.agent_id,
        "sessionKey": a.requester.session_key,
        "turnId": a.requester.turn_id,
        "command": a.binding.display_command(),
        "cwd": a.binding.cwd,
        "env": a.binding.env,
        "executables": a.binding.executables,
        "background": a.binding.background,
        "reason": a.reason,
        "createdAtMs": a.created_ms,
        "expiresAtMs": a.expires_ms(),
    })
}

fn requested_event(a: &Approval) -> Value {
    view(a, a.created_ms)
}
