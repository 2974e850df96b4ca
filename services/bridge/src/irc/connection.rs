//! The background task that owns the IRC connection: connect, register, join, read,
//! answer `PING`, keep alive, rejoin after kicks, reconnect with capped backoff.
//!
//! It shares one [`Shared`] with the adapter: the link state (connecting / up / down, with
//! the reason), the queue of received messages not yet handed out, and a version counter
//! (a `watch` channel) bumped on every change so waiters wake without missed
//! notifications. Lines to send reach the task through the `Up` state's channel; the task
//! writes them in order and reports each write's outcome.
//!
//! Reconnects wait `reconnect_initial`, doubling up to `reconnect_max` (with jitter); the
//! delay starts over after each successful registration. Operator errors (SASL refused,
//! untrusted TLS certificate, bad server password) are retried on the same schedule but
//! logged at error level. Dropping the adapter aborts the task, which closes the socket.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pincer_proto::v1::{ChannelAccount, InboundMessage};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::normalize::{Normalized, normalize};
use super::register::{Registered, register};
use super::settings::IrcSettings;
use super::text::{irc_eq, irc_lowercase};
use super::transport::{Io, Line, LineReader, connect, write_message};
use super::wire::Message;
use crate::adapter::PlatformError;
use crate::backoff::Backoff;

const CHANNEL: &str = "irc";
/// Received messages kept while the bridge is not taking them; beyond, new ones are dropped
/// (with a warning) rather than growing without bound.
pub const INBOUND_QUEUE_LIMIT: usize = 1024;
/// Recent inbound ids remembered to address replies (`nick: …`).
const RECENT_SENDERS: usize = 512;

/// One line for the connection task to write, and where to report the outcome.
#[derive(Debug)]
pub struct Outgoing {
    /// The message.
    pub message: Message,
    /// Told `Ok` once written, or why not.
    pub done: oneshot::Sender<Result<(), String>>,
}

/// A registered connection, as senders see it.
#[derive(Debug, Clone)]
pub struct Conn {
    /// A random id for this connection (prefix of synthetic message ids).
    pub id: String,
    /// Our current nick.
    pub nick: String,
    /// Our `nick!user@host` as the server shows it, once known.
    pub hostmask: Option<String>,
    /// The server acknowledged `message-tags`.
    pub message_tags: bool,
    /// Lines to write.
    pub out: mpsc::Sender<Outgoing>,
    /// Counter for synthetic message ids on this connection.
    pub counter: Arc<AtomicU64>,
}

impl Conn {
    /// A new id `<connection id>:<n>`, unique per connection.
    pub fn next_id(&self) -> String {
        format!(
            "{}:{}",
            self.id,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Why the link is down, for the errors callers get meanwhile.
#[derive(Debug, Clone)]
pub struct DownReason {
    /// What happened (never a secret).
    pub message: String,
    /// Only an operator can fix it (credentials, TLS trust, SASL not offered).
    pub needs_operator: bool,
    /// The connection was closed on purpose because this replica's lease on the account
    /// ended: the task stops instead of reconnecting.
    pub released: bool,
}

impl DownReason {
    fn from_error(e: &PlatformError) -> Self {
        Self {
            message: e.message.clone(),
            needs_operator: e.needs_operator,
            released: false,
        }
    }

    fn lease_ended() -> Self {
        Self {
            message: "this replica's lease on the account ended; another replica serves it"
                .to_owned(),
            needs_operator: false,
            released: true,
        }
    }

    /// The error to report while down (always retryable: the task keeps reconnecting).
    pub fn to_error(&self) -> PlatformError {
        let message = format!("not connected: {}", self.message);
        if self.needs_operator {
            PlatformError::operator(CHANNEL, message)
        } else {
            PlatformError::transient(CHANNEL, message)
        }
    }
}

/// The connection's state.
#[derive(Debug, Clone)]
pub enum Link {
    /// Connecting or registering.
    Connecting,
    /// Registered.
    Up(Conn),
    /// Waiting to reconnect.
    Down(DownReason),
}

/// State shared by the adapter and the connection task.
#[derive(Debug)]
pub struct State {
    /// The link.
    pub link: Link,
    /// Received messages not handed out (or handed out and given back).
    pub inbound: VecDeque<InboundMessage>,
    /// `platform_message_id` → sender nick of recent inbound messages (for replies).
    pub recent: VecDeque<(String, String)>,
    /// Until when this replica holds the account's lease, as last told by the bridge
    /// (`None`: never told, e.g. when the adapter is driven without leases).
    pub leased_until: Option<Instant>,
}

/// What the adapter and the task share.
#[derive(Debug)]
pub struct Shared {
    /// The account, for normalised messages.
    pub account: ChannelAccount,
    /// The settings.
    pub settings: IrcSettings,
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

impl Shared {
    /// Fresh shared state (link: connecting).
    pub fn new(account: ChannelAccount, settings: IrcSettings) -> Self {
        Self {
            account,
            settings,
            state: Mutex::new(State {
                link: Link::Connecting,
                inbound: VecDeque::new(),
                recent: VecDeque::new(),
                leased_until: None,
            }),
            version: watch::channel(0).0,
        }
    }

    /// The state (a poisoned lock is recovered: the state stays consistent per operation).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.version.send_modify(|v| *v = v.wrapping_add(1));
        result
    }

    /// A receiver that sees every later [`Self::update`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Gives a handed-out message back (its ack handle was dropped): it is next in line.
    pub fn requeue(&self, message: InboundMessage) {
        self.update(|s| s.inbound.push_front(message));
    }

    /// Records the lease the bridge holds on the account (it only ever moves forward).
    pub fn record_lease(&self, until: Instant) {
        let mut state = self.lock();
        if state.leased_until.is_none_or(|known| known < until) {
            state.leased_until = Some(until);
        }
    }

    /// Whether a lease was recorded and it ended more than [`LEASE_GRACE`] ago.
    fn lease_lapsed(&self, now: Instant) -> bool {
        self.lock()
            .leased_until
            .is_some_and(|until| until + LEASE_GRACE <= now)
    }

    pub(crate) fn set_link(&self, link: Link) {
        self.update(|s| s.link = link);
    }
}

/// How long after the recorded lease end the connection stays up: the bridge renews every
/// second and asks again at once, so only a lease that moved away gets this old.
pub const LEASE_GRACE: Duration = Duration::from_secs(2);

/// Resolves once the recorded lease has lapsed (never, when no lease was recorded).
async fn lease_lapsed(shared: &Shared) {
    loop {
        let until = shared.lock().leased_until;
        let Some(until) = until else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::time::sleep_until((until + LEASE_GRACE).into()).await;
        if shared.lease_lapsed(Instant::now()) {
            return;
        }
    }
}

/// Runs the connection until the task is aborted: connect, register, serve, back off,
/// again.
pub async fn run(shared: Arc<Shared>) {
    let settings = &shared.settings;
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    loop {
        if shared.lease_lapsed(Instant::now()) {
            // Another replica serves the account: do not hold its nick.
            shared.set_link(Link::Down(DownReason::lease_ended()));
            return;
        }
        shared.set_link(Link::Connecting);
        let attempt = tokio::time::timeout(settings.connect_timeout, open(settings)).await;
        let reason = match attempt {
            Err(_) => DownReason {
                message: format!(
                    "connecting to {}:{} timed out after {:?}",
                    settings.host, settings.port, settings.connect_timeout
                ),
                needs_operator: false,
                released: false,
            },
            Ok(Err(e)) => DownReason::from_error(&e),
            Ok(Ok((io, reader, registered))) => {
                backoff.reset();
                serve(&shared, io, reader, registered).await
            }
        };
        if reason.released {
            tracing::info!(host = %settings.host, "IRC connection closed: the account's lease moved to another replica");
            shared.set_link(Link::Down(reason));
            return;
        }
        if reason.needs_operator {
            tracing::error!(host = %settings.host, reason = %reason.message, "IRC connection failed; an operator must fix this");
        } else {
            tracing::warn!(host = %settings.host, reason = %reason.message, "IRC connection lost; reconnecting");
        }
        shared.set_link(Link::Down(reason));
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn open(
    settings: &IrcSettings,
) -> Result<(Box<dyn Io>, LineReader, Registered), PlatformError> {
    let mut io = connect(
        &settings.host,
        settings.port,
        settings.tls,
        settings.extra_ca_pem.as_deref(),
    )
    .await?;
    let mut reader = LineReader::default();
    let registered = register(&mut io, &mut reader, settings).await?;
    Ok((io, reader, registered))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One registered connection's loop; returns why it ended.
struct Session<'a> {
    shared: &'a Shared,
    conn: Conn,
    writer: WriteHalf<Box<dyn Io>>,
    last_heard: Instant,
    ping_sent: bool,
    /// Channel (lower-cased) → when to rejoin and its kick backoff.
    rejoin: HashMap<String, (Option<Instant>, Backoff)>,
}

async fn serve(
    shared: &Shared,
    io: Box<dyn Io>,
    mut reader: LineReader,
    registered: Registered,
) -> DownReason {
    let (mut read_half, writer): (ReadHalf<Box<dyn Io>>, _) = tokio::io::split(io);
    let (out, mut lines) = mpsc::channel::<Outgoing>(16);
    let conn = Conn {
        id: format!("{:016x}", rand::random::<u64>()),
        nick: registered.nick.clone(),
        hostmask: registered.hostmask.clone(),
        message_tags: registered.message_tags(),
        out,
        counter: Arc::new(AtomicU64::new(0)),
    };
    tracing::info!(nick = %conn.nick, caps = ?registered.caps, "IRC registered");
    let settings = &shared.settings;
    let mut session = Session {
        shared,
        conn,
        writer,
        last_heard: Instant::now(),
        ping_sent: false,
        rejoin: HashMap::new(),
    };
    for channel in &settings.channels {
        if let Err(e) = session.join(&channel.name).await {
            return DownReason::from_error(&e);
        }
    }
    shared.set_link(Link::Up(session.conn.clone()));
    loop {
        let wake = session.next_wake();
        tokio::select! {
            line = reader.next_line(&mut read_half) => {
                let line = match line {
                    Ok(Line::Text(line)) => line,
                    Ok(Line::Closed) => return down("the server closed the connection"),
                    Err(e) => return down(&format!("reading from the server failed: {e}")),
                };
                session.last_heard = Instant::now();
                session.ping_sent = false;
                let Ok(message) = Message::parse(&line) else { continue };
                if let Err(reason) = session.handle(&message).await {
                    return reason;
                }
            }
            Some(outgoing) = lines.recv() => {
                let result = write_message(&mut session.writer, &outgoing.message).await;
                // A malformed line is refused before writing (permanent); only I/O errors
                // (retryable) end the link.
                let io_failure = match &result {
                    Err(e) if e.retryable => Some(DownReason::from_error(e)),
                    _ => None,
                };
                let _ = outgoing.done.send(result.map_err(|e| e.message));
                if let Some(reason) = io_failure {
                    return reason;
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if let Err(reason) = session.on_timer().await {
                    return reason;
                }
            }
            () = lease_lapsed(shared) => {
                // Leave, so the replica that now holds the lease can take the nick.
                let _ = session.write(&Message::new("QUIT", &["moving to another replica"])).await;
                return DownReason::lease_ended();
            }
        }
    }
}

fn down(message: &str) -> DownReason {
    DownReason {
        message: message.to_owned(),
        needs_operator: false,
        released: false,
    }
}

impl Session<'_> {
    async fn write(&mut self, message: &Message) -> Result<(), DownReason> {
        write_message(&mut self.writer, message)
            .await
            .map_err(|e| DownReason::from_error(&e))
    }

    async fn join(&mut self, name: &str) -> Result<(), PlatformError> {
        let key = self
            .shared
            .settings
            .channels
            .iter()
            .find(|c| irc_eq(&c.name, name))
            .and_then(|c| c.key.as_ref());
        let message = match key {
            Some(key) => Message::new("JOIN", &[name, key.expose()]),
            None => Message::new("JOIN", &[name]),
        };
        write_message(&mut self.writer, &message).await
    }

    /// When the loop must wake up without input: the keepalive or the next rejoin.
    fn next_wake(&self) -> Instant {
        let keepalive = self.shared.settings.keepalive.max(Duration::from_secs(1));
        let mut wake = self.last_heard
            + if self.ping_sent {
                keepalive * 2
            } else {
                keepalive
            };
        for (at, _) in self.rejoin.values() {
            if let Some(at) = at {
                wake = wake.min(*at);
            }
        }
        wake
    }

    async fn on_timer(&mut self) -> Result<(), DownReason> {
        let now = Instant::now();
        let keepalive = self.shared.settings.keepalive.max(Duration::from_secs(1));
        let silent = now.saturating_duration_since(self.last_heard);
        if self.ping_sent && silent >= keepalive * 2 {
            return Err(down(&format!(
                "no answer from the server for {}s",
                silent.as_secs()
            )));
        }
        if !self.ping_sent && silent >= keepalive {
            self.write(&Message::new("PING", &["pincer-keepalive"]))
                .await?;
            self.ping_sent = true;
        }
        let due: Vec<String> = self
            .rejoin
            .iter_mut()
            .filter_map(|(name, (at, _))| {
                at.filter(|at| *at <= now).map(|_| {
                    *at = None;
                    name.clone()
                })
            })
            .collect();
        for name in due {
            tracing::info!(channel = %name, "rejoining after a kick");
            self.join(&name)
                .await
                .map_err(|e| DownReason::from_error(&e))?;
        }
        Ok(())
    }

    async fn handle(&mut self, message: &Message) -> Result<(), DownReason> {
        let from_us = message
            .source_nick()
            .is_some_and(|n| irc_eq(n, &self.conn.nick));
        match message.command.as_str() {
            "PING" => {
                let token = message.param(0).unwrap_or("");
                self.write(&Message::new("PONG", &[token])).await?;
            }
            "PRIVMSG" => self.received(message),
            "JOIN" if from_us => {
                if let Some(prefix) = &message.prefix
                    && self.conn.hostmask.as_ref() != Some(prefix)
                {
                    self.conn.hostmask = Some(prefix.clone());
                    self.publish();
                }
            }
            "NICK" if from_us => {
                if let Some(nick) = message.param(0) {
                    self.conn.nick = nick.to_owned();
                    self.conn.hostmask =
                        self.conn.hostmask.as_ref().and_then(|h| {
                            h.split_once('!').map(|(_, rest)| format!("{nick}!{rest}"))
                        });
                    self.publish();
                }
            }
            "KICK" => {
                let kicked_us = message.param(1).is_some_and(|n| irc_eq(n, &self.conn.nick));
                if let (true, Some(channel)) = (kicked_us, message.param(0)) {
                    let configured = self
                        .shared
                        .settings
                        .channels
                        .iter()
                        .any(|c| irc_eq(&c.name, channel));
                    if configured {
                        let settings = &self.shared.settings;
                        let entry =
                            self.rejoin
                                .entry(irc_lowercase(channel))
                                .or_insert_with(|| {
                                    (
                                        None,
                                        Backoff::new(
                                            settings.rejoin_initial,
                                            settings.reconnect_max,
                                        ),
                                    )
                                });
                        let delay = entry.1.next_delay();
                        entry.0 = Some(Instant::now() + delay);
                        tracing::warn!(
                            channel,
                            delay_ms = delay.as_millis() as u64,
                            "kicked; will rejoin"
                        );
                    }
                }
            }
            "471" | "473" | "474" | "475" => {
                tracing::warn!(
                    channel = message.param(1).unwrap_or(""),
                    code = %message.command,
                    reason = message.params.last().map(String::as_str).unwrap_or(""),
                    "cannot join channel"
                );
            }
            "ERROR" => {
                return Err(down(&format!(
                    "the server closed the link: {}",
                    message.param(0).unwrap_or("")
                )));
            }
            _ => {}
        }
        Ok(())
    }

    fn publish(&self) {
        let conn = self.conn.clone();
        self.shared.update(|s| s.link = Link::Up(conn));
    }

    fn received(&self, message: &Message) {
        let conn = &self.conn;
        let normalized = normalize(
            message,
            &conn.nick,
            &self.shared.account,
            || conn.next_id(),
            now_ms(),
        );
        match normalized {
            Normalized::Skip(reason) => tracing::debug!(reason, "skipping IRC message"),
            Normalized::Message(inbound) => {
                let nick = message.source_nick().unwrap_or("").to_owned();
                self.shared.update(|s| {
                    if s.inbound.len() >= INBOUND_QUEUE_LIMIT {
                        tracing::warn!(
                            limit = INBOUND_QUEUE_LIMIT,
                            "inbound queue full; dropping an IRC message"
                        );
                        return;
                    }
                    if s.recent.len() >= RECENT_SENDERS {
                        s.recent.pop_front();
                    }
                    s.recent
                        .push_back((inbound.platform_message_id.clone(), nick));
                    s.inbound.push_back(*inbound);
                });
            }
        }
    }
}
