//! The IRC adapter against a real ngircd (see `pincer_testkit::ngircd`), with a raw
//! line-based test client playing the human, plus a small fake server for SASL (ngircd
//! has none). Every test starts its own server on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_bridge::adapter::{AdapterError, ChannelAdapter, ChatTarget, InboundItem, OutboundText};
use pincer_bridge::format::{Markup, render};
use pincer_bridge::irc::{IrcAdapter, IrcChannel, IrcSettings, Message, SaslPlain, safe_lines};
use pincer_proto::v1::ChatKind;
use pincer_runtime::Secret;
use pincer_testkit::ngircd::{Ngircd, NgircdChannel, NgircdOptions, NgircdTls};
use pincer_testkit::tls::TestCertificates;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const WAIT: Duration = Duration::from_secs(15);

fn far_lease() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn settings(addr: SocketAddr, channels: &[&str]) -> IrcSettings {
    let mut s = IrcSettings::new("127.0.0.1", addr.port(), false, "pincer");
    s.channels = channels.iter().map(|c| IrcChannel::new(*c)).collect();
    s.flood.burst = 20;
    s.flood.interval = Duration::from_millis(20);
    s.reconnect_initial = Duration::from_millis(100);
    s.reconnect_max = Duration::from_millis(500);
    s.connect_timeout = Duration::from_secs(5);
    s.rejoin_initial = Duration::from_millis(100);
    s
}

fn text(chat_id: &str, text: &str) -> OutboundText {
    OutboundText {
        chat_id: chat_id.to_owned(),
        thread_id: None,
        text: text.to_owned(),
        reply_to: None,
        skip_chunks: 0,
        lease_until: None,
    }
}

async fn wait_connected(adapter: &IrcAdapter) -> String {
    adapter.start();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(nick) = adapter.current_nick() {
            return nick;
        }
        assert!(
            Instant::now() < deadline,
            "the adapter did not register in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_inbound(adapter: &IrcAdapter) -> InboundItem {
    tokio::time::timeout(WAIT, adapter.next_inbound(far_lease()))
        .await
        .expect("no inbound message in time")
        .expect("next_inbound failed")
}

/// A human on IRC: a plain TCP client speaking raw lines.
struct Human {
    nick: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// One line as received: the raw bytes (without CR LF) and the parsed message.
struct Received {
    raw: Vec<u8>,
    message: Message,
}

impl Human {
    async fn connect(addr: SocketAddr, nick: &str) -> Self {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut human = Self {
            nick: nick.to_owned(),
            reader: BufReader::new(read),
            writer,
        };
        human.send(&format!("NICK {nick}")).await;
        human.send(&format!("USER {nick} 0 * :Human {nick}")).await;
        human.expect("welcome", |m| m.command == "001").await;
        human
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line (answering PINGs), or `None` at the deadline / on close.
    async fn next(&mut self, deadline: Instant) -> Option<Received> {
        loop {
            let mut raw = Vec::new();
            let read =
                tokio::time::timeout_at(deadline.into(), self.reader.read_until(b'\n', &mut raw));
            match read.await {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("{} read error: {e}", self.nick),
            }
            while matches!(raw.last(), Some(b'\n' | b'\r')) {
                raw.pop();
            }
            let message = Message::parse(&String::from_utf8_lossy(&raw)).unwrap();
            if message.command == "PING" {
                let token = message.param(0).unwrap_or("").to_owned();
                self.send(&format!("PONG :{token}")).await;
                continue;
            }
            return Some(Received { raw, message });
        }
    }

    async fn expect(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Received {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let Some(received) = self.next(deadline).await else {
                panic!("{}: no {what} in time; skipped {skipped:#?}", self.nick);
            };
            if want(&received.message) {
                return received;
            }
            skipped.push(String::from_utf8_lossy(&received.raw).into_owned());
        }
    }

    async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}")).await;
        self.expect("end of names", |m| m.command == "366").await;
    }

    /// Bounded polling (NAMES) until `nick` is in `channel`.
    async fn wait_member(&mut self, channel: &str, nick: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.send(&format!("NAMES {channel}")).await;
            let mut present = false;
            loop {
                let r = self
                    .expect("names", |m| m.command == "353" || m.command == "366")
                    .await;
                if r.message.command == "366" {
                    break;
                }
                let names = r.message.params.last().cloned().unwrap_or_default();
                present |= names
                    .split(' ')
                    .any(|n| n.trim_start_matches(['@', '+']) == nick);
            }
            if present {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{nick} did not join {channel} in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// PRIVMSG texts from `from` to `target`, until `count` arrived.
    async fn privmsgs(&mut self, from: &str, target: &str, count: usize) -> Vec<Received> {
        let mut got = Vec::new();
        while got.len() < count {
            let r = self
                .expect("PRIVMSG", |m| {
                    m.command == "PRIVMSG"
                        && m.source_nick() == Some(from)
                        && m.param(0).is_some_and(|t| t.eq_ignore_ascii_case(target))
                })
                .await;
            got.push(r);
        }
        got
    }
}

fn text_of(r: &Received) -> &str {
    r.message.param(1).unwrap()
}

#[tokio::test]
async fn a_query_arrives_direct_and_the_reply_reaches_the_human() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let adapter = IrcAdapter::new(settings(server.addr, &[]));
    assert_eq!(adapter.account().channel, "irc");
    assert_eq!(adapter.account().account_id, "default");
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;
    alice.send("PRIVMSG pincer :hello bot").await;

    let item = next_inbound(&adapter).await;
    let m = &item.message;
    assert_eq!(m.chat_kind, ChatKind::Direct as i32);
    assert_eq!(m.chat_id, "alice");
    assert!(
        m.sender_id.starts_with("alice!") && m.sender_id.contains('@'),
        "{}",
        m.sender_id
    );
    assert_eq!(m.sender_display_name, "alice");
    assert_eq!(m.text, "hello bot");
    assert!(!m.platform_message_id.is_empty());
    let reply_to = m.platform_message_id.clone();
    item.ack.ack();

    let mut reply = text("alice", "hi **alice**");
    reply.reply_to = Some(reply_to);
    let sent = adapter.send(reply).await.unwrap();
    assert_eq!(sent.platform_message_ids.len(), 1);
    let got = alice.privmsgs("pincer", "alice", 1).await;
    assert_eq!(text_of(&got[0]), "hi \x02alice\x02");
    // ngircd has no message-tags: typing is a successful no-op.
    let target = ChatTarget {
        chat_id: "alice".into(),
        thread_id: None,
    };
    adapter.typing(target).await.unwrap();
}

#[tokio::test]
async fn rejoins_after_a_kick() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    // Alice creates the channel first, so she is its operator.
    let mut alice = Human::connect(server.addr, "alice").await;
    alice.join("#ops").await;
    let adapter = IrcAdapter::new(settings(server.addr, &["#ops"]));
    wait_connected(&adapter).await;
    alice.wait_member("#ops", "pincer").await;
    alice.send("KICK #ops pincer :out").await;
    alice
        .expect("the kick", |m| {
            m.command == "KICK" && m.param(1) == Some("pincer")
        })
        .await;
    alice
        .expect("the rejoin", |m| {
            m.command == "JOIN" && m.source_nick() == Some("pincer")
        })
        .await;
    alice.send("PRIVMSG #ops :pincer: welcome back").await;
    let item = next_inbound(&adapter).await;
    assert_eq!(item.message.chat_id, "#ops");
    assert!(item.message.mentions_bot);
}

#[tokio::test]
async fn channel_messages_detect_mentions_and_unacked_ones_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let adapter = IrcAdapter::new(settings(server.addr, &["#Pincer"]));
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;
    alice.join("#pincer").await;
    alice.wait_member("#pincer", "pincer").await;

    alice.send("PRIVMSG #pincer :just chatting").await;
    let item = next_inbound(&adapter).await;
    assert_eq!(item.message.chat_kind, ChatKind::Group as i32);
    assert_eq!(item.message.chat_id, "#pincer");
    assert_eq!(item.message.text, "just chatting");
    assert!(!item.message.mentions_bot);
    let first_id = item.message.platform_message_id.clone();
    // Dropped without an ack: handed out again.
    drop(item);
    let again = next_inbound(&adapter).await;
    assert_eq!(again.message.platform_message_id, first_id);
    again.ack.ack();

    alice.send("PRIVMSG #pincer :pincer: hi").await;
    let item = next_inbound(&adapter).await;
    assert!(item.message.mentions_bot);
    assert_eq!(item.message.text, "pincer: hi");
    assert_ne!(item.message.platform_message_id, first_id);
    // A reply in a channel addresses the sender.
    let mut reply = text("#pincer", "hello");
    reply.reply_to = Some(item.message.platform_message_id.clone());
    item.ack.ack();
    adapter.send(reply).await.unwrap();
    let got = alice.privmsgs("pincer", "#pincer", 1).await;
    assert_eq!(text_of(&got[0]), "alice: hello");

    // A dropped next_inbound future loses nothing.
    let pending = adapter.next_inbound(far_lease());
    drop(pending);
    alice.send("PRIVMSG #pincer :after a cancelled wait").await;
    assert_eq!(
        next_inbound(&adapter).await.message.text,
        "after a cancelled wait"
    );
}

#[tokio::test]
async fn a_long_reply_is_split_into_lines_within_512_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let adapter = IrcAdapter::new(settings(server.addr, &[]));
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;

    let mut long = String::new();
    let mut n = 0;
    while long.len() < 3000 {
        long.push_str(&format!("Grüße {n} — 日本語のテキスト ✓ ünïcödé 🦀 words"));
        n += 1;
        long.push(if n % 9 == 0 { '\n' } else { ' ' });
        if n % 27 == 0 {
            long.push('\n');
        }
    }
    let expected = safe_lines(&render(&long, Markup::Irc));
    let sent = adapter.send(text("alice", &long)).await.unwrap();
    let count = sent.platform_message_ids.len();
    assert!(
        count > expected.len(),
        "long lines were split: {count} chunks"
    );
    let got = alice.privmsgs("pincer", "alice", count).await;
    for r in &got {
        // The relayed line plus CR LF.
        assert!(r.raw.len() + 2 <= 512, "{} bytes", r.raw.len() + 2);
        assert!(
            std::str::from_utf8(&r.raw).is_ok(),
            "split inside a UTF-8 sequence"
        );
    }
    // The chunks are the rendered text in order; only the spaces at which a line was
    // broken are gone (servers strip trailing spaces).
    let expected = expected.concat();
    let mut rest = expected.as_str();
    for r in &got {
        let chunk = text_of(r);
        rest = rest
            .strip_prefix(chunk)
            .unwrap_or_else(|| panic!("{chunk:?} is not next in the rendered text: {rest:?}"))
            .trim_start_matches(' ');
    }
    assert_eq!(rest, "", "not everything arrived");
}

#[tokio::test]
async fn text_cannot_inject_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let adapter = IrcAdapter::new(settings(server.addr, &["#pincer"]));
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;
    alice.join("#pincer").await;
    alice.wait_member("#pincer", "pincer").await;
    let mut watcher = Human::connect(server.addr, "watcher").await;
    watcher.join("#other").await;

    adapter
        .send(text("#pincer", "one\r\nQUIT :x"))
        .await
        .unwrap();
    adapter
        .send(text(
            "#pincer",
            "two\nPRIVMSG #other :spam\r\u{0}JOIN #other",
        ))
        .await
        .unwrap();
    // A sentinel the watcher gets directly: anything the bot sent to #other comes before it.
    adapter.send(text("watcher", "sentinel")).await.unwrap();

    let got = alice.privmsgs("pincer", "#pincer", 5).await;
    let texts: Vec<&str> = got.iter().map(text_of).collect();
    assert_eq!(
        texts,
        [
            "one",
            "QUIT :x",
            "two",
            "PRIVMSG #other :spam",
            "JOIN #other"
        ]
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let r = watcher.next(deadline).await.expect("no sentinel");
        let m = &r.message;
        assert!(
            !(m.source_nick() == Some("pincer") && m.param(0) == Some("#other")),
            "the bot reached #other: {}",
            String::from_utf8_lossy(&r.raw)
        );
        assert_ne!(m.command, "JOIN", "the bot joined #other");
        if m.command == "PRIVMSG" && m.param(1) == Some("sentinel") {
            break;
        }
    }
    // Still connected: a later line arrives.
    adapter.send(text("#pincer", "still here")).await.unwrap();
    let got = alice.privmsgs("pincer", "#pincer", 1).await;
    assert_eq!(text_of(&got[0]), "still here");
}

#[tokio::test]
async fn reconnects_and_rejoins_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Ngircd::start(dir.path()).unwrap();
    let addr = server.addr;
    let adapter = IrcAdapter::new(settings(addr, &["#pincer"]));
    wait_connected(&adapter).await;

    server.kill();
    // While down, next_inbound reports a retryable error.
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            adapter.next_inbound(far_lease()),
        )
        .await
        {
            Ok(Err(e)) => {
                assert!(e.is_retryable(), "{e}");
                break;
            }
            Ok(Ok(item)) => panic!("unexpected message {:?}", item.message),
            Err(_) => assert!(Instant::now() < deadline, "no error while disconnected"),
        }
    }

    let dir2 = tempfile::tempdir().unwrap();
    let options = NgircdOptions {
        port: Some(addr.port()),
        ..NgircdOptions::default()
    };
    let _server2 = Ngircd::start_with(dir2.path(), options).unwrap();
    wait_connected(&adapter).await;
    let mut alice = Human::connect(addr, "alice").await;
    alice.join("#pincer").await;
    alice.wait_member("#pincer", "pincer").await;
    alice.send("PRIVMSG #pincer :welcome back").await;
    let deadline = Instant::now() + WAIT;
    let item = loop {
        match tokio::time::timeout(WAIT, adapter.next_inbound(far_lease())).await {
            Ok(Ok(item)) => break item,
            Ok(Err(e)) => assert!(e.is_retryable() && Instant::now() < deadline, "{e}"),
            Err(_) => panic!("no message after the reconnect"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(item.message.text, "welcome back");
    assert_eq!(item.message.chat_id, "#pincer");
}

#[tokio::test]
async fn a_taken_nick_gets_an_underscore() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let mut squatter = Human::connect(server.addr, "pincer").await;
    let adapter = IrcAdapter::new(settings(server.addr, &[]));
    assert_eq!(wait_connected(&adapter).await, "pincer_");
    squatter.send("PRIVMSG pincer_ :are you there?").await;
    let item = next_inbound(&adapter).await;
    assert_eq!(item.message.chat_id, "pincer");
    assert_eq!(item.message.chat_kind, ChatKind::Direct as i32);
}

#[tokio::test]
async fn flood_pacing_delivers_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let mut s = settings(server.addr, &[]);
    s.flood.burst = 3;
    s.flood.interval = Duration::from_millis(250);
    let adapter = IrcAdapter::new(s);
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;

    let lines: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    let started = Instant::now();
    let sent = adapter
        .send(text("alice", &lines.join("\n")))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(sent.platform_message_ids.len(), 10);
    let got = alice.privmsgs("pincer", "alice", 10).await;
    let texts: Vec<&str> = got.iter().map(text_of).collect();
    assert_eq!(texts, lines);
    // 7 lines beyond the burst of 3 at 250 ms each: not all went out at once.
    assert!(
        took >= Duration::from_millis(1000),
        "sent 10 lines in {took:?}"
    );
}

#[tokio::test]
async fn a_send_past_the_lease_stops_and_reports_the_chunks_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let mut s = settings(server.addr, &[]);
    s.flood.burst = 2;
    s.flood.interval = Duration::from_millis(1500);
    let adapter = IrcAdapter::new(s);
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;

    let mut out = text("alice", "a\nb\nc\nd");
    out.lease_until = Some(Instant::now() + Duration::from_secs(1));
    let failure = adapter.send(out.clone()).await.unwrap_err();
    assert_eq!(failure.sent.len(), 2);
    assert!(failure.error.is_retryable());
    let got = alice.privmsgs("pincer", "alice", 2).await;
    assert_eq!(got.iter().map(text_of).collect::<Vec<_>>(), ["a", "b"]);

    // The retry skips what was sent; its ids are those of the remaining chunks.
    out.skip_chunks = failure.sent.len();
    out.lease_until = None;
    let sent = adapter.send(out).await.unwrap();
    assert_eq!(sent.platform_message_ids.len(), 2);
    assert!(
        sent.platform_message_ids
            .iter()
            .all(|id| !failure.sent.contains(id))
    );
    let got = alice.privmsgs("pincer", "alice", 2).await;
    assert_eq!(got.iter().map(text_of).collect::<Vec<_>>(), ["c", "d"]);
}

#[tokio::test]
async fn joins_a_channel_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let options = NgircdOptions {
        channels: vec![NgircdChannel {
            name: "#secret".into(),
            key: Some("hunter2".into()),
        }],
        ..NgircdOptions::default()
    };
    let server = Ngircd::start_with(dir.path(), options).unwrap();
    let mut s = settings(server.addr, &[]);
    s.channels = vec![IrcChannel {
        name: "#secret".into(),
        key: Some(Secret::new("hunter2")),
    }];
    let adapter = IrcAdapter::new(s);
    wait_connected(&adapter).await;
    let mut alice = Human::connect(server.addr, "alice").await;
    alice.send("JOIN #secret hunter2").await;
    alice.expect("end of names", |m| m.command == "366").await;
    alice.wait_member("#secret", "pincer").await;
    alice.send("PRIVMSG #secret :psst").await;
    assert_eq!(next_inbound(&adapter).await.message.chat_id, "#secret");
}

// --- SASL, against a small fake server (ngircd has no SASL) ---

/// Serves one connection: offers `caps`, accepts SASL PLAIN for `acct` / `pw`. Returns
/// the lines the client sent, once it disconnects.
async fn fake_sasl_server(
    caps: &'static str,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut seen = Vec::new();
        let mut line = String::new();
        let mut nick = String::from("*");
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return seen,
                Ok(_) => {}
            }
            let got = line.trim_end().to_owned();
            seen.push(got.clone());
            let m = Message::parse(&got).unwrap();
            let reply: Vec<String> = match (m.command.as_str(), m.param(0)) {
                ("NICK", Some(n)) => {
                    nick = n.to_owned();
                    vec![]
                }
                ("CAP", Some("LS")) => vec![format!(":fake CAP * LS :{caps}")],
                ("CAP", Some("REQ")) => vec![format!(":fake CAP * ACK :{}", m.param(1).unwrap())],
                ("AUTHENTICATE", Some("PLAIN")) => vec!["AUTHENTICATE +".into()],
                ("AUTHENTICATE", Some(payload)) => {
                    use base64::Engine as _;
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(payload)
                        .unwrap();
                    if decoded == b"acct\0acct\0pw" {
                        vec![
                            format!(":fake 900 {nick} {nick}!u@h acct :You are now logged in"),
                            format!(":fake 903 {nick} :SASL authentication successful"),
                        ]
                    } else {
                        vec![format!(":fake 904 {nick} :SASL authentication failed")]
                    }
                }
                ("CAP", Some("END")) => vec![format!(":fake 001 {nick} :Welcome {nick}!u@h")],
                _ => vec![],
            };
            for r in reply {
                write
                    .write_all(format!("{r}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        }
    });
    (addr, task)
}

fn sasl_settings(addr: SocketAddr, password: &str) -> IrcSettings {
    let mut s = settings(addr, &[]);
    s.sasl = Some(SaslPlain {
        account: "acct".into(),
        password: Secret::new(password),
    });
    // One attempt per test: the fake serves a single connection.
    s.reconnect_initial = Duration::from_secs(30);
    s.reconnect_max = Duration::from_secs(30);
    s
}

async fn first_error(adapter: &IrcAdapter) -> AdapterError {
    match tokio::time::timeout(WAIT, adapter.next_inbound(far_lease())).await {
        Ok(Err(e)) => e,
        Ok(Ok(item)) => panic!("unexpected message {:?}", item.message),
        Err(_) => panic!("no error in time"),
    }
}

#[tokio::test]
async fn sasl_plain_logs_in_before_registering() {
    let (addr, server) = fake_sasl_server("sasl=PLAIN,EXTERNAL message-tags").await;
    let adapter = IrcAdapter::new(sasl_settings(addr, "pw"));
    assert_eq!(wait_connected(&adapter).await, "pincer");
    drop(adapter);
    let seen = server.await.unwrap();
    let position = |prefix: &str| seen.iter().position(|l| l.starts_with(prefix)).unwrap();
    assert!(
        position("CAP REQ") < position("AUTHENTICATE PLAIN"),
        "{seen:?}"
    );
    assert!(
        position("AUTHENTICATE PLAIN") < position("CAP END"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("CAP REQ") && l.contains("sasl") && l.contains("message-tags"))
    );
}

#[tokio::test]
async fn sasl_refused_or_not_offered_fails_closed() {
    for (caps, password) in [
        ("message-tags", "pw"),
        ("sasl=PLAIN", "wrong"),
        ("sasl=EXTERNAL", "pw"),
    ] {
        let (addr, server) = fake_sasl_server(caps).await;
        let adapter = IrcAdapter::new(sasl_settings(addr, password));
        let error = first_error(&adapter).await;
        assert!(error.needs_operator(), "{caps}: {error}");
        assert!(
            !error.to_string().contains(password) || password == "pw",
            "{error}"
        );
        assert!(adapter.current_nick().is_none());
        drop(adapter);
        let seen = server.await.unwrap();
        assert!(
            !seen.iter().any(|l| l == "CAP END"),
            "{caps}: continued without SASL: {seen:?}"
        );
    }
}

// --- TLS ---

/// A private CA and a `localhost` certificate it signed, in `dir`; the CA's PEM.
fn make_certificates(dir: &std::path::Path) -> (NgircdTls, Vec<u8>) {
    let c = TestCertificates::make(dir).unwrap();
    let tls = NgircdTls {
        cert_file: c.cert_file,
        key_file: c.key_file,
    };
    (tls, c.ca_pem.into_bytes())
}

#[tokio::test]
async fn tls_with_the_operators_ca_works_and_without_it_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (tls, ca) = make_certificates(certs.path());
    let options = NgircdOptions {
        tls: Some(tls),
        ..NgircdOptions::default()
    };
    let server = Ngircd::start_with(dir.path(), options).unwrap();

    let mut s = settings(server.addr, &[]);
    s.host = "localhost".into();
    s.tls = true;
    s.extra_ca_pem = Some(ca);
    let adapter = IrcAdapter::new(s.clone());
    wait_connected(&adapter).await;
    adapter
        .send(text("pincer", "talking to myself over TLS"))
        .await
        .unwrap();

    s.extra_ca_pem = None;
    s.reconnect_initial = Duration::from_secs(30);
    s.reconnect_max = Duration::from_secs(30);
    let untrusting = IrcAdapter::new(s);
    let error = first_error(&untrusting).await;
    assert!(error.needs_operator(), "{error}");
    assert!(error.to_string().contains("extra_ca_pem"), "{error}");
}

/// With replicas, the nick belongs to the lease holder: when this replica's lease lapses
/// (the bridge stops asking for messages), the bot leaves the server so the next holder
/// can connect under the same nick; a new lease brings it back.
#[tokio::test]
async fn a_lapsed_lease_frees_the_nick_and_a_new_one_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let mut human = Human::connect(server.addr, "watcher").await;
    human.join("#room").await;
    let adapter = IrcAdapter::new(settings(server.addr, &["#room"]));

    // A short lease, never renewed: next_inbound gives up at its end.
    let short = Instant::now() + Duration::from_millis(1500);
    let ended = tokio::time::timeout(WAIT, adapter.next_inbound(short))
        .await
        .expect("next_inbound returns at the lease's end");
    assert!(ended.is_err(), "nothing was sent, the lease just ended");
    human.wait_member("#room", "pincer").await;
    human
        .expect("the bot quits once the lease lapsed", |m| {
            m.command == "QUIT"
                && m.prefix
                    .as_deref()
                    .is_some_and(|p| p.starts_with("pincer!"))
        })
        .await;
    assert!(!adapter.is_connected());

    // A new lease: the bot is back under its nick, and messages flow again.
    let adapter = Arc::new(adapter);
    let pending = {
        let adapter = Arc::clone(&adapter);
        tokio::spawn(async move { adapter.next_inbound(far_lease()).await })
    };
    human.wait_member("#room", "pincer").await;
    human.send("PRIVMSG #room :pincer: welcome back").await;
    let item = tokio::time::timeout(WAIT, pending)
        .await
        .expect("a message after the new lease")
        .unwrap()
        .unwrap();
    assert_eq!(item.message.text, "pincer: welcome back");
    assert_eq!(adapter.current_nick().as_deref(), Some("pincer"));
}
