//! [`IrcAdapter`]: one IRC connection (one nick on one server) as a [`ChannelAdapter`].
//!
//! The connection is driven by a background task ([`super::connection`]) started on first
//! use and aborted when the adapter is dropped. This file hands out what the task received
//! and paces what the bridge sends.
//!
//! Inbound and acks: IRC pushes messages and keeps no server-side buffer, so it cannot
//! redeliver anything: a message is read from the socket once, and "acknowledging" it to
//! IRC means nothing. What the adapter guarantees is per process: a received message waits
//! in a small in-memory queue until [`ChannelAdapter::next_inbound`] hands it out; if the
//! [`AckHandle`] is dropped unacknowledged, the message goes back to the front of the queue
//! and is handed out again. Messages are lost when the process dies before the gateway
//! stored them, or while the connection is down (nobody hears them) — inherent to IRC.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use pincer_proto::v1::ChannelAccount;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::connection::{Conn, Link, Shared, run};
use super::flood::TokenBucket;
use super::settings::IrcSettings;
use super::text::{is_channel, safe_lines};
use super::wire::{MAX_LINE, Message};
use crate::adapter::{
    AckHandle, AckState, AdapterError, ChannelAdapter, ChatTarget, InboundItem, OutboundText,
    PlatformError, SendFailure, SentRefs,
};
use crate::chunk::{LengthUnit, split_text};
use crate::format::{Markup, render};

/// The channel name on the wire.
pub const CHANNEL: &str = "irc";
/// The bytes assumed for our `:nick!user@host ` prefix before the server showed it.
const PREFIX_ESTIMATE: usize = 100;
/// Longest wait for the connection task to write one line.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// An IRC connection as a channel adapter (see the module docs).
#[derive(Debug)]
pub struct IrcAdapter {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Outbound pacing; held for a whole send so its lines stay together.
    pacing: tokio::sync::Mutex<TokenBucket>,
}

impl IrcAdapter {
    /// An adapter for one connection. Does no I/O: the connection starts on first use.
    pub fn new(settings: IrcSettings) -> Self {
        let account = ChannelAccount {
            channel: CHANNEL.to_owned(),
            account_id: settings.account_id.clone(),
        };
        let pacing = tokio::sync::Mutex::new(TokenBucket::new(settings.flood, Instant::now()));
        Self {
            shared: Arc::new(Shared::new(account, settings)),
            task: Mutex::new(None),
            pacing,
        }
    }

    /// The nick the connection currently uses, once registered (it may differ from the
    /// configured one when that was taken).
    pub fn current_nick(&self) -> Option<String> {
        match &self.shared.lock().link {
            Link::Up(conn) => Some(conn.nick.clone()),
            Link::Connecting | Link::Down(_) => None,
        }
    }

    /// Whether the connection is registered right now.
    pub fn is_connected(&self) -> bool {
        self.current_nick().is_some()
    }

    /// Starts connecting now rather than on the first `next_inbound` / `send` (must run
    /// inside a Tokio runtime). Idempotent.
    pub fn start(&self) {
        self.ensure_started();
    }

    /// Starts the connection task if it is not running (must run inside a Tokio runtime).
    fn ensure_started(&self) {
        let mut task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            // Not the last run's "down" (a released lease, say): a new run is starting.
            self.shared.set_link(Link::Connecting);
            *task = Some(tokio::spawn(run(Arc::clone(&self.shared))));
        }
    }

    /// Waits until the connection is registered (not past `deadline`).
    async fn wait_up(&self, deadline: Option<Instant>) -> Result<Conn, PlatformError> {
        self.ensure_started();
        let connect_limit = Instant::now() + self.shared.settings.connect_timeout;
        let deadline = deadline.map_or(connect_limit, |d| d.min(connect_limit));
        let mut changes = self.shared.subscribe();
        loop {
            changes.borrow_and_update();
            match &self.shared.lock().link {
                Link::Up(conn) => return Ok(conn.clone()),
                Link::Down(reason) => return Err(reason.to_error()),
                Link::Connecting => {}
            }
            let waited = tokio::time::timeout_at(deadline.into(), changes.changed()).await;
            if !matches!(waited, Ok(Ok(()))) {
                return Err(PlatformError::transient(CHANNEL, "not connected yet"));
            }
        }
    }

    async fn next_inbound_inner(&self, lease_until: Instant) -> Result<InboundItem, AdapterError> {
        // Recorded before (re)starting, so a task stopped for a lapsed lease starts again.
        self.shared.record_lease(lease_until);
        self.ensure_started();
        let mut changes = self.shared.subscribe();
        loop {
            changes.borrow_and_update();
            {
                let mut state = self.shared.lock();
                if let Some(message) = state.inbound.pop_front() {
                    drop(state);
                    return Ok(self.hand_out(message));
                }
                if let Link::Down(reason) = &state.link {
                    return Err(reason.to_error().into());
                }
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(PlatformError::transient(CHANNEL, "the connection task stopped").into());
                    }
                }
                () = tokio::time::sleep_until(lease_until.into()) => {
                    return Err(AdapterError::LeaseEnding { margin_ms: 0 });
                }
            }
        }
    }

    /// Wraps a message with an ack handle; a dropped handle puts the message back.
    fn hand_out(&self, message: pincer_proto::v1::InboundMessage) -> InboundItem {
        let (ack, mut watch) = AckHandle::new();
        let shared = Arc::clone(&self.shared);
        let copy = message.clone();
        tokio::spawn(async move {
            if watch.settled().await == AckState::Dropped {
                tracing::debug!(platform_message_id = %copy.platform_message_id, "IRC message not acknowledged; handing it out again");
                shared.requeue(copy);
            }
        });
        InboundItem { message, ack }
    }

    /// The nick to address a reply to, when `reply_to` is a message we received.
    fn reply_nick(&self, reply_to: Option<&str>) -> Option<String> {
        let reply_to = reply_to?;
        self.shared
            .lock()
            .recent
            .iter()
            .rev()
            .find(|(id, _)| id == reply_to)
            .map(|(_, nick)| nick.clone())
    }

    async fn send_inner(&self, out: OutboundText) -> Result<SentRefs, SendFailure> {
        let fail = |error: AdapterError| SendFailure {
            sent: Vec::new(),
            error,
        };
        validate_target(&out.chat_id).map_err(fail)?;
        let mut lines = safe_lines(&render(&out.text, Markup::Irc));
        if lines.is_empty() {
            return Err(fail(bad_target(
                "text",
                &out.text,
                "IRC cannot send an empty message",
            )));
        }
        if is_channel(&out.chat_id)
            && let (Some(nick), Some(first)) =
                (self.reply_nick(out.reply_to.as_deref()), lines.first_mut())
        {
            *first = format!("{nick}: {first}");
        }
        let mut pacing = self.pacing.lock().await;
        let conn = self
            .wait_up(out.lease_until)
            .await
            .map_err(|e| fail(e.into()))?;
        let budget = line_budget(conn.hostmask.as_deref(), &out.chat_id);
        // Servers strip trailing spaces, and a line break already separates the words: a
        // chunk split after a space is sent without it.
        let chunks: Vec<&str> = lines
            .iter()
            .flat_map(|line| split_text(line, budget, LengthUnit::Utf8))
            .map(str::trim_end)
            .filter(|chunk| !chunk.is_empty())
            .collect();
        let mut sent = Vec::new();
        for chunk in chunks.into_iter().skip(out.skip_chunks) {
            let result = self
                .send_line(&mut pacing, out.lease_until, &out.chat_id, chunk)
                .await;
            match result {
                Ok(id) => sent.push(id),
                Err(error) => return Err(SendFailure { sent, error }),
            }
        }
        Ok(SentRefs {
            platform_message_ids: sent,
        })
    }

    /// Paces, then sends one PRIVMSG on the current connection; its synthetic id.
    async fn send_line(
        &self,
        pacing: &mut TokenBucket,
        lease_until: Option<Instant>,
        target: &str,
        text: &str,
    ) -> Result<String, AdapterError> {
        loop {
            let now = Instant::now();
            if lease_until.is_some_and(|l| now >= l) {
                return Err(lease_over());
            }
            match pacing.try_take(now) {
                Ok(()) => break,
                Err(wait) => {
                    if lease_until.is_some_and(|l| now + wait >= l) {
                        return Err(lease_over());
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let conn = self.wait_up(lease_until).await?;
        let id = conn.next_id();
        write_via(&conn, Message::new("PRIVMSG", &[target, text])).await?;
        Ok(id)
    }

    async fn typing_inner(&self, target: ChatTarget) -> Result<(), AdapterError> {
        validate_target(&target.chat_id)?;
        let conn = match &self.shared.lock().link {
            Link::Up(conn) if conn.message_tags => conn.clone(),
            // Plain IRC has no typing notifications; nothing to do.
            _ => return Ok(()),
        };
        // Best effort: never wait for the flood bucket, skip when it is empty.
        let token = self
            .pacing
            .try_lock()
            .is_ok_and(|mut bucket| bucket.try_take(Instant::now()).is_ok());
        if !token {
            return Ok(());
        }
        let message =
            Message::new("TAGMSG", &[&target.chat_id]).with_tag("+typing", Some("active"));
        write_via(&conn, message).await?;
        Ok(())
    }
}

impl Drop for IrcAdapter {
    fn drop(&mut self) {
        let task = self
            .task
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

impl ChannelAdapter for IrcAdapter {
    fn account(&self) -> ChannelAccount {
        self.shared.account.clone()
    }

    fn next_inbound(
        &self,
        lease_until: Instant,
    ) -> BoxFuture<'_, Result<InboundItem, AdapterError>> {
        self.next_inbound_inner(lease_until).boxed()
    }

    fn send(&self, text: OutboundText) -> BoxFuture<'_, Result<SentRefs, SendFailure>> {
        self.send_inner(text).boxed()
    }

    fn typing(&self, target: ChatTarget) -> BoxFuture<'_, Result<(), AdapterError>> {
        self.typing_inner(target).boxed()
    }

    /// IRC has nothing to confirm: there is no server-side buffer (see the module docs).
    fn flush(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        async { Ok(()) }.boxed()
    }
}

/// Hands one line to the connection task and waits until it is written.
async fn write_via(conn: &Conn, message: Message) -> Result<(), AdapterError> {
    let (done, written) = oneshot::channel();
    let lost =
        || PlatformError::transient(CHANNEL, "the connection dropped before the line was sent");
    conn.out
        .send(super::connection::Outgoing { message, done })
        .await
        .map_err(|_| lost())?;
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(message))) => Err(PlatformError::transient(CHANNEL, message).into()),
        Ok(Err(_)) => Err(lost().into()),
        Err(_) => Err(PlatformError::transient(CHANNEL, "writing to the server timed out").into()),
    }
}

fn lease_over() -> AdapterError {
    PlatformError::transient(
        CHANNEL,
        "the lease ends before the next line may be sent (flood pacing)",
    )
    .into()
}

/// How many bytes of text fit in one `PRIVMSG target :text` so the line as relayed by
/// the server (`:nick!user@host PRIVMSG target :text\r\n`) stays within 512 bytes.
pub fn line_budget(hostmask: Option<&str>, target: &str) -> usize {
    let prefix = hostmask.map_or(PREFIX_ESTIMATE, |h| h.len() + 2);
    let fixed = prefix + "PRIVMSG ".len() + target.len() + " :".len() + "\r\n".len();
    MAX_LINE.saturating_sub(fixed).max(16)
}

fn bad_target(field: &'static str, value: &str, reason: &'static str) -> AdapterError {
    AdapterError::BadTarget {
        channel: CHANNEL,
        field,
        value: value.to_owned(),
        reason,
    }
}

/// A nick or channel: non-empty, no space, comma, colon prefix or control characters.
fn validate_target(chat_id: &str) -> Result<(), AdapterError> {
    let valid = !chat_id.is_empty()
        && chat_id.len() <= 200
        && !chat_id.starts_with(':')
        && !chat_id.contains([' ', ','])
        && !chat_id.chars().any(char::is_control);
    if valid {
        Ok(())
    } else {
        Err(bad_target(
            "chat_id",
            chat_id,
            "use a nick or a channel name",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_relayed_lines_within_512_bytes() {
        let mask = "pincer!~pincer@127.0.0.1";
        let budget = line_budget(Some(mask), "#chan");
        let line = format!(":{mask} PRIVMSG #chan :{}\r\n", "x".repeat(budget));
        assert_eq!(line.len(), 512);
        assert_eq!(line_budget(None, "#chan"), 512 - 100 - 8 - 5 - 2 - 2);
        assert_eq!(line_budget(None, &"#".repeat(600)), 16);
    }

    #[test]
    fn targets_are_validated() {
        assert!(validate_target("#chan").is_ok());
        assert!(validate_target("alice").is_ok());
        for bad in ["", "#a b", "a,b", ":x", "a\rb", "a\nPRIVMSG"] {
            assert!(validate_target(bad).is_err(), "{bad:?}");
        }
    }
}
