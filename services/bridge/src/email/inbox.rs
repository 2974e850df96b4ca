//! The inbox task: one IMAP connection that finds unseen mail, hands it out, and marks it
//! `\Seen` once the gateway has stored it.
//!
//! Loop per connection: LOGIN, SELECT (remember UIDVALIDITY), then repeatedly
//! 1. apply ack outcomes: acked UIDs get `UID STORE +FLAGS.SILENT (\Seen)`, released ones
//!    (handle dropped unacked) are forgotten so the next search finds them again;
//! 2. `UID SEARCH UNSEEN`, and for every UID not already handed out (at most
//!    [`MAX_PENDING`] at a time) `UID FETCH <uid> (UID BODY.PEEK[])` (PEEK: fetching does not
//!    set `\Seen`), normalise, and hand out or, for skipped mail, mark seen at once;
//! 3. wait: IDLE (renewed every `idle_refresh` ≤ 25 min) when the server has it, else
//!    `poll_interval`; an ack outcome ends the wait early.
//!
//! On any IMAP error the connection is dropped and re-opened with backoff. Handed-out UIDs
//! are remembered per UIDVALIDITY; when it changes, every remembered UID is void (its
//! handle may still be acked, which then changes nothing) and the mailbox is read afresh.
//! A UID handed out and not yet settled is never handed out again by this process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_imap::extensions::idle::IdleResponse;
use pincer_proto::v1::ChannelAccount;
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::ClientConfig;

use super::imap::{self, Session};
use super::normalize::{Context, MessageLocation, Normalized, ThreadInfo, normalize};
use super::settings::{EmailSettings, MAX_IDLE};
use crate::adapter::{AckHandle, AckState, InboundItem, PlatformError};
use crate::backoff::Backoff;

/// Most messages handed out and not yet acked or released.
pub const MAX_PENDING: usize = 32;
/// How many messages' threading headers are remembered for replies.
const THREAD_CACHE: usize = 1024;

/// Threading headers of received messages by `platform_message_id`, bounded (oldest out).
#[derive(Debug, Default)]
pub struct ThreadCache {
    inner: Mutex<(HashMap<String, ThreadInfo>, VecDeque<String>)>,
}

impl ThreadCache {
    /// Remembers a message's headers.
    pub fn insert(&self, platform_message_id: String, info: ThreadInfo) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let (map, order) = &mut *guard;
        if map.insert(platform_message_id.clone(), info).is_none() {
            order.push_back(platform_message_id);
        }
        while order.len() > THREAD_CACHE {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// A remembered message's headers.
    pub fn get(&self, platform_message_id: &str) -> Option<ThreadInfo> {
        let guard = self.inner.lock().ok()?;
        guard.0.get(platform_message_id).cloned()
    }
}

/// What happened to a handed-out message.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Acked(MessageLocation),
    Released(MessageLocation),
}

/// Everything the task needs.
#[derive(Debug)]
pub struct Inbox {
    pub(crate) settings: Arc<EmailSettings>,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) account: ChannelAccount,
    pub(crate) threads: Arc<ThreadCache>,
    pub(crate) items: mpsc::UnboundedSender<InboundItem>,
    /// The last connection failure, `None` while connected: `next_inbound` reports it.
    pub(crate) status: watch::Sender<Option<PlatformError>>,
}

/// The task's mutable state.
struct State {
    inbox: Inbox,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes_rx: mpsc::UnboundedReceiver<Outcome>,
    /// Outcomes received while waiting, not yet applied.
    buffered: Vec<Outcome>,
    /// The UIDVALIDITY the remembered UIDs belong to.
    validity: Option<u32>,
    /// UIDs handed out and not yet settled.
    pending: HashSet<u32>,
    /// Acked UIDs still to be marked seen.
    to_mark: Vec<u32>,
}

/// Why a session ended.
enum End {
    /// The adapter is gone.
    Closed,
    /// An error: reconnect.
    Failed(PlatformError),
}

impl From<PlatformError> for End {
    fn from(e: PlatformError) -> Self {
        Self::Failed(e)
    }
}

impl Inbox {
    /// Runs until the adapter drops its receiver (or the task is aborted).
    pub async fn run(self) {
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let mut state = State {
            inbox: self,
            outcomes_tx,
            outcomes_rx,
            buffered: Vec::new(),
            validity: None,
            pending: HashSet::new(),
            to_mark: Vec::new(),
        };
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(120));
        loop {
            match state.session(&mut backoff).await {
                End::Closed => return,
                End::Failed(e) => {
                    state.inbox.status.send_replace(Some(copy_error(&e)));
                    if e.needs_operator {
                        tracing::error!(error = %e, "e-mail inbox failed; reconnecting");
                    } else {
                        tracing::warn!(error = %e, "e-mail inbox failed; reconnecting");
                    }
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = state.inbox.items.closed() => return,
            }
        }
    }
}

impl State {
    async fn session(&mut self, backoff: &mut Backoff) -> End {
        let settings = Arc::clone(&self.inbox.settings);
        let session =
            match imap::connect(&settings.imap, &self.inbox.tls, settings.io_timeout).await {
                Ok(s) => s,
                Err(e) => return e.into(),
            };
        let (end, session) = self.serve(session, backoff).await;
        if let Some(mut session) = session {
            // Best effort; the connection is dropped either way.
            let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
        }
        end
    }

    /// Runs one logged-in session; gives it back (when still usable) for the LOGOUT.
    async fn serve(
        &mut self,
        mut session: Session,
        backoff: &mut Backoff,
    ) -> (End, Option<Session>) {
        let settings = Arc::clone(&self.inbox.settings);
        let io = settings.io_timeout;
        let selected = imap::timed(
            io,
            "SELECT",
            imap::select(&mut session, &settings.imap.mailbox),
        )
        .await;
        let validity = match selected {
            Ok(v) => v,
            Err(e) => return (e.into(), Some(session)),
        };
        if self.validity.is_some_and(|old| old != validity) {
            tracing::warn!(
                mailbox = %settings.imap.mailbox,
                validity,
                "the mailbox's UIDVALIDITY changed; reading it afresh"
            );
        }
        if self.validity != Some(validity) {
            self.pending.clear();
            self.to_mark.clear();
            self.validity = Some(validity);
        }
        let idle = match imap::timed(io, "CAPABILITY", imap::has_idle(&mut session)).await {
            Ok(idle) => idle,
            Err(e) => return (e.into(), Some(session)),
        };
        if !idle {
            tracing::info!(
                every_s = settings.poll_interval.as_secs(),
                "IMAP server has no IDLE; polling"
            );
        }
        backoff.reset();
        self.inbox.status.send_replace(None);
        loop {
            if let Err(e) = self.apply_outcomes(&mut session, validity).await {
                return (e.into(), Some(session));
            }
            match self.fetch_new(&mut session, validity).await {
                Ok(true) => {}
                Ok(false) => return (End::Closed, Some(session)),
                Err(e) => return (e.into(), Some(session)),
            }
            if idle {
                match self.idle(session).await {
                    Ok(s) => session = s,
                    Err(e) => return (e.into(), None),
                }
            } else {
                self.poll_wait().await;
            }
            if self.inbox.items.is_closed() {
                return (End::Closed, Some(session));
            }
        }
    }

    /// Collects outcomes without waiting and applies them.
    async fn apply_outcomes(
        &mut self,
        session: &mut Session,
        validity: u32,
    ) -> Result<(), PlatformError> {
        while let Ok(outcome) = self.outcomes_rx.try_recv() {
            self.buffered.push(outcome);
        }
        for outcome in std::mem::take(&mut self.buffered) {
            match outcome {
                Outcome::Acked(at) if at.uid_validity == validity => self.to_mark.push(at.uid),
                Outcome::Released(at) if at.uid_validity == validity => {
                    tracing::debug!(uid = at.uid, "message not acknowledged; it stays unseen");
                    self.pending.remove(&at.uid);
                }
                Outcome::Acked(at) | Outcome::Released(at) => {
                    tracing::debug!(
                        platform_message_id = %at.platform_message_id(),
                        "outcome for a previous UIDVALIDITY ignored"
                    );
                }
            }
        }
        if self.to_mark.is_empty() {
            return Ok(());
        }
        let io = self.inbox.settings.io_timeout;
        imap::timed(io, "UID STORE", imap::mark_seen(session, &self.to_mark)).await?;
        for uid in self.to_mark.drain(..) {
            self.pending.remove(&uid);
        }
        Ok(())
    }

    /// Hands out new unseen mail. `Ok(false)` when the adapter is gone.
    async fn fetch_new(
        &mut self,
        session: &mut Session,
        validity: u32,
    ) -> Result<bool, PlatformError> {
        let room = MAX_PENDING.saturating_sub(self.pending.len());
        if room == 0 {
            return Ok(true);
        }
        let settings = Arc::clone(&self.inbox.settings);
        let io = settings.io_timeout;
        let uids = imap::timed(io, "UID SEARCH", imap::unseen(session)).await?;
        let new: Vec<u32> = uids
            .into_iter()
            .filter(|uid| !self.pending.contains(uid))
            .take(room)
            .collect();
        for uid in new {
            let raw = imap::timed(
                io.saturating_mul(4),
                "UID FETCH",
                imap::fetch(session, uid, "(UID BODY.PEEK[])"),
            )
            .await?;
            let Some(raw) = raw else {
                continue; // expunged meanwhile
            };
            let at = MessageLocation {
                uid_validity: validity,
                uid,
            };
            let cx = Context {
                account: &self.inbox.account,
                bot_address: &settings.address,
                authserv_id: settings.authserv_id.as_deref(),
                now_ms: now_ms(),
            };
            match normalize(&raw, at, cx) {
                Normalized::Message(message, thread) => {
                    self.inbox
                        .threads
                        .insert(message.platform_message_id.clone(), thread);
                    let (ack, mut watch) = AckHandle::new();
                    self.pending.insert(uid);
                    let outcomes = self.outcomes_tx.clone();
                    tokio::spawn(async move {
                        let outcome = match watch.settled().await {
                            AckState::Acked => Outcome::Acked(at),
                            AckState::Dropped | AckState::Pending => Outcome::Released(at),
                        };
                        // The inbox task may be gone (adapter dropped): nothing to do then.
                        let _ = outcomes.send(outcome);
                    });
                    let item = InboundItem {
                        message: *message,
                        ack,
                    };
                    if self.inbox.items.send(item).is_err() {
                        return Ok(false);
                    }
                }
                Normalized::Skip(reason) => {
                    tracing::info!(uid, reason, "skipping e-mail (marked seen, not answered)");
                    imap::timed(io, "UID STORE", imap::mark_seen(session, &[uid])).await?;
                }
                Normalized::Unauthenticated(reason) => {
                    tracing::warn!(
                        uid,
                        reason,
                        "skipping e-mail from an unauthenticated sender (marked seen)"
                    );
                    imap::timed(io, "UID STORE", imap::mark_seen(session, &[uid])).await?;
                }
            }
        }
        Ok(true)
    }

    /// IDLE until the server reports something, an outcome arrives, or the refresh time.
    async fn idle(&mut self, session: Session) -> Result<Session, PlatformError> {
        let settings = Arc::clone(&self.inbox.settings);
        let io = settings.io_timeout;
        let refresh = settings
            .idle_refresh
            .min(MAX_IDLE)
            .max(Duration::from_secs(1));
        let mut handle = session.idle();
        imap::timed(io, "IDLE", async {
            handle
                .init()
                .await
                .map_err(|e| PlatformError::transient(super::CHANNEL, format!("IMAP IDLE: {e}")))
        })
        .await?;
        let woke = {
            // async-imap's timeout restarts with every server keepalive (`* OK Still
            // here`), so the renewal deadline is kept here as well.
            let (wait, stop) = handle.wait_with_timeout(refresh);
            let woke = tokio::select! {
                () = tokio::time::sleep(refresh) => Ok("refresh"),
                response = wait => match response {
                    Ok(IdleResponse::NewData(_)) => Ok("new data"),
                    Ok(IdleResponse::Timeout) => Ok("refresh"),
                    Ok(IdleResponse::ManualInterrupt) => Ok("interrupted"),
                    Err(e) => Err(PlatformError::transient(
                        super::CHANNEL,
                        format!("IMAP IDLE: {e}"),
                    )),
                },
                outcome = self.outcomes_rx.recv() => {
                    self.buffered.extend(outcome);
                    Ok("ack")
                }
                () = self.inbox.items.closed() => Ok("closed"),
            };
            drop(stop);
            woke
        };
        let reason = woke?;
        tracing::trace!(reason, "IMAP IDLE woke up");
        imap::timed(io, "DONE", async {
            handle
                .done()
                .await
                .map_err(|e| PlatformError::transient(super::CHANNEL, format!("IMAP DONE: {e}")))
        })
        .await
    }

    /// Waits the poll interval, or less when an outcome arrives.
    async fn poll_wait(&mut self) {
        let interval = self
            .inbox
            .settings
            .poll_interval
            .max(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            outcome = self.outcomes_rx.recv() => self.buffered.extend(outcome),
            () = self.inbox.items.closed() => {}
        }
    }
}

/// A copy of a failure (the error type is not `Clone`).
pub(crate) fn copy_error(e: &PlatformError) -> PlatformError {
    PlatformError {
        channel: e.channel,
        message: e.message.clone(),
        retryable: e.retryable,
        needs_operator: e.needs_operator,
        retry_after: e.retry_after,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_cache_is_bounded_oldest_out() {
        let cache = ThreadCache::default();
        let info = |n: usize| ThreadInfo {
            message_id: Some(format!("m{n}@x")),
            references: Vec::new(),
            subject: format!("s{n}"),
        };
        for n in 0..THREAD_CACHE + 10 {
            cache.insert(format!("1:{n}"), info(n));
        }
        assert_eq!(cache.get("1:0"), None);
        assert_eq!(cache.get("1:9"), None);
        assert_eq!(cache.get("1:10"), Some(info(10)));
        // Re-inserting an id does not count twice.
        cache.insert("1:10".into(), info(10));
        let last = THREAD_CACHE + 9;
        assert_eq!(cache.get(&format!("1:{last}")), Some(info(last)));
        assert_eq!(cache.get("1:10"), Some(info(10)));
    }
}
