//! IRC through the whole stack against a real ngircd: a stranger queries the bot, gets a
//! pairing code, is approved with `pincer pairing approve irc`, and chats; in a served
//! channel with `requireMention`, plain talk is context only and `pincerbot: …` is
//! answered, addressed back to the sender.

use std::time::Duration;

use pincer_testkit::ngircd::Ngircd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::stack::{Stack, WAIT};

const BOT: &str = "pincerbot";

/// A human on IRC, speaking the protocol by hand.
struct Human {
    nick: String,
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Human {
    async fn connect(server: &Ngircd, nick: &str) -> Self {
        let (read, write) = TcpStream::connect(server.addr).await.unwrap().into_split();
        let mut human = Self {
            nick: nick.to_owned(),
            read: BufReader::new(read),
            write,
        };
        human.send(&format!("NICK {nick}")).await;
        human.send(&format!("USER {nick} 0 * :{nick}")).await;
        let welcome = human.wait_for(|l| l.split(' ').nth(1) == Some("001")).await;
        assert!(welcome.is_some(), "{nick} was not welcomed");
        human
    }

    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads lines (answering PINGs) until one satisfies `want`; returns it, or `None`
    /// after [`WAIT`].
    async fn wait_for(&mut self, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut line = String::new();
            let Ok(read) = tokio::time::timeout_at(deadline, self.read.read_line(&mut line)).await
            else {
                return None;
            };
            let read = read.unwrap();
            assert!(read > 0, "{}: the server closed the connection", self.nick);
            let line = line.trim_end().to_owned();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}")).await;
                continue;
            }
            if want(&line) {
                return Some(line);
            }
        }
    }

    /// The text of the next PRIVMSG from the bot to `target`.
    async fn next_from_bot(&mut self, target: &str, stack: &Stack) -> String {
        let prefix = format!(":{BOT}!");
        let command = format!(" PRIVMSG {target} :");
        let line = self
            .wait_for(|l| l.starts_with(&prefix) && l.contains(&command))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "nothing from the bot to {target}; log:\n{}",
                    stack.log_text()
                )
            });
        line.split_once(&command).unwrap().1.to_owned()
    }

    /// No PRIVMSG from the bot arrives for `quiet`.
    async fn hears_nothing_from_bot(&mut self, quiet: Duration) {
        let prefix = format!(":{BOT}!");
        let heard = tokio::time::timeout(
            quiet,
            self.wait_for(|l| l.starts_with(&prefix) && l.contains(" PRIVMSG ")),
        )
        .await;
        assert!(matches!(heard, Err(_) | Ok(None)), "unexpected: {heard:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_stranger_pairs_and_chats_and_a_channel_needs_a_mention() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(dir.path()).unwrap();
    let mut alice = Human::connect(&server, "alice").await;
    alice.send("JOIN #room").await;

    let channels = format!(
        r##"{{ irc: {{ host: "127.0.0.1", port: {port}, tls: false, nick: "{BOT}",
              floodIntervalMs: 200, groups: {{ "#room": {{}} }} }} }}"##,
        port = server.addr.port(),
    );
    let stack = Stack::start(&channels, &[]).await;
    // The bot joins the served channel (alice sees its JOIN, or it in the NAMES list
    // when it was there first).
    let join = format!(":{BOT}!");
    let names = |l: &str| l.split(' ').nth(1) == Some("353") && l.contains(BOT);
    let joined = alice
        .wait_for(|l| (l.starts_with(&join) && l.contains(" JOIN ")) || names(l))
        .await;
    assert!(
        joined.is_some(),
        "the bot never joined; log:\n{}",
        stack.log_text()
    );

    // 1. A stranger's query: the pairing message (several lines), no model call.
    alice
        .send(&format!("PRIVMSG {BOT} :hello, who are you?"))
        .await;
    let mut code_line = None;
    for _ in 0..4 {
        let line = alice.next_from_bot("alice", &stack).await;
        if line.contains("pairing code: ") {
            code_line = Some(line);
            break;
        }
    }
    let code_line = code_line.expect("a line with the pairing code");
    assert!(
        stack.llm.requests().is_empty(),
        "a stranger reached the model"
    );

    // 2. Approved, the next query is answered by the model.
    stack.approve_code_in("irc", &code_line).await;
    alice.send(&format!("PRIVMSG {BOT} :hi again")).await;
    let answer = loop {
        let line = alice.next_from_bot("alice", &stack).await;
        if line.starts_with("You said:") {
            break line;
        }
    };
    assert_eq!(answer, "You said: hi again");

    // 3. In the channel: plain talk is context only; a mention is answered to its sender.
    alice.send("PRIVMSG #room :just chatting here").await;
    alice.hears_nothing_from_bot(Duration::from_secs(3)).await;
    alice
        .send(&format!("PRIVMSG #room :{BOT}: what do you think?"))
        .await;
    let in_room = alice.next_from_bot("#room", &stack).await;
    assert!(
        in_room.starts_with("alice: You said: ") && in_room.contains("what do you think?"),
        "{in_room}"
    );
    stack.stop().await;
}
