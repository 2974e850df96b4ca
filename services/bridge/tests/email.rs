//! The e-mail adapter against a real dovecot (IMAP, LMTP) and a real OpenSMTPD, all on
//! 127.0.0.1 (see `pincer_testkit::dovecot`). The test plays "alice" over SMTP and reads
//! mailboxes and flags over IMAP itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use pincer_bridge::ChannelAdapter;
use pincer_bridge::adapter::{AdapterError, InboundItem, OutboundText};
use pincer_bridge::email::{EmailAdapter, EmailSettings, ImapSettings, Security, SmtpSettings};
use pincer_proto::v1::ChatKind;
use pincer_runtime::Secret;
use pincer_testkit::dovecot::{MailServer, MailServerOptions, password};
use tempfile::TempDir;

const BOT: &str = "bot@test.local";
const ALICE: &str = "alice@test.local";
const WAIT: Duration = Duration::from_secs(15);

struct Mail {
    _dir: TempDir,
    server: MailServer,
}

fn mail_server() -> Mail {
    mail_server_with(&MailServerOptions::default())
}

fn mail_server_with(options: &MailServerOptions) -> Mail {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("pincer_bridge=debug")
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let server = MailServer::start_with(dir.path(), options).unwrap_or_else(|e| panic!("{e}"));
    Mail { _dir: dir, server }
}

fn settings(server: &MailServer) -> EmailSettings {
    let mut s = EmailSettings::new(
        BOT.to_owned(),
        ImapSettings {
            host: "127.0.0.1".to_owned(),
            port: server.imap_addr.port(),
            security: Security::Plain,
            username: BOT.to_owned(),
            password: Secret::new(password(BOT).unwrap().to_owned()),
            mailbox: "INBOX".to_owned(),
        },
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: server.smtp_addr.port(),
            security: Security::Plain,
            username: None,
            password: None,
        },
    );
    // New mail must arrive through IDLE (or the search after an ack), never a poll.
    s.poll_interval = Duration::from_secs(3600);
    s.io_timeout = Duration::from_secs(10);
    s
}

fn lease() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

async fn next(adapter: &EmailAdapter) -> InboundItem {
    tokio::time::timeout(WAIT, adapter.next_inbound(lease()))
        .await
        .expect("no inbound e-mail in time")
        .expect("next_inbound failed")
}

/// Asserts that nothing is handed out for a while (the lease ends first).
async fn nothing_more(adapter: &EmailAdapter) {
    let soon = Instant::now() + Duration::from_millis(2500);
    match adapter.next_inbound(soon).await {
        Err(AdapterError::LeaseEnding { .. }) => {}
        Ok(item) => panic!("unexpected message: {:?}", item.message),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn mail(from: &str, subject: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {BOT}\r\nSubject: {subject}\r\n\
         Date: Tue, 1 Jul 2025 10:00:00 +0000\r\n{extra_headers}\r\n{body}\r\n"
    )
}

type Session = async_imap::Session<tokio::net::TcpStream>;

async fn imap_login(server: &MailServer, user: &str) -> Session {
    let tcp = tokio::net::TcpStream::connect(server.imap_addr)
        .await
        .unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    let mut session = client
        .login(user, password(user).unwrap())
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    session.select("INBOX").await.unwrap();
    session
}

/// `(uid, seen, raw message)` of every message in `user`'s INBOX, without changing flags.
async fn mailbox(server: &MailServer, user: &str) -> Vec<(u32, bool, Vec<u8>)> {
    let mut session = imap_login(server, user).await;
    let fetches: Vec<_> = session
        .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<_> = fetches
        .iter()
        .map(|f| {
            let seen = f
                .flags()
                .any(|flag| matches!(flag, async_imap::types::Flag::Seen));
            (f.uid.unwrap(), seen, f.body().unwrap_or_default().to_vec())
        })
        .collect();
    out.sort_by_key(|(uid, _, _)| *uid);
    let _ = session.logout().await;
    out
}

/// Waits until the message `uid` of the bot's mailbox has the wanted `\Seen` state.
async fn wait_seen(server: &MailServer, uid: u32, seen: bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = mailbox(server, BOT)
            .await
            .into_iter()
            .find(|(u, _, _)| *u == uid)
            .map(|(_, s, _)| s);
        if state == Some(seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "uid {uid}: seen is {state:?}, wanted {seen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn uid_of(platform_message_id: &str) -> u32 {
    platform_message_id
        .split_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

async fn send(m: &Mail, from: &str, message: &str) {
    let before = m.server.delivered(BOT);
    m.server.send_raw(from, &[BOT], message).await.unwrap();
    assert!(
        m.server.wait_delivered(BOT, before + 1, WAIT).await,
        "not delivered:\n{}",
        m.server.logs()
    );
}

fn reply(to: &str, text: &str, reply_to: Option<String>) -> OutboundText {
    OutboundText {
        chat_id: to.to_owned(),
        thread_id: None,
        text: text.to_owned(),
        reply_to,
        skip_chunks: 0,
        lease_until: Some(lease()),
    }
}

#[tokio::test]
async fn mail_is_seen_only_after_the_ack_and_unacked_mail_comes_back() {
    let m = mail_server();
    send(
        &m,
        ALICE,
        &mail(
            "Alice <Alice@test.local>",
            "Lunch?",
            "",
            "Shall we meet at noon?",
        ),
    )
    .await;

    let adapter = EmailAdapter::new(settings(&m.server)).unwrap();
    let item = next(&adapter).await;
    let msg = &item.message;
    assert_eq!(msg.account.as_ref().unwrap().channel, "email");
    assert_eq!(msg.account.as_ref().unwrap().account_id, "default");
    assert_eq!(msg.sender_id, ALICE);
    assert_eq!(msg.chat_id, ALICE);
    assert_eq!(msg.sender_display_name, "Alice");
    assert_eq!(msg.chat_kind, ChatKind::Direct as i32);
    assert!(!msg.mentions_bot);
    assert_eq!(msg.text, "Lunch?\n\nShall we meet at noon?");
    assert_eq!(msg.sent_at_ms, 1_751_364_000_000);
    let uid = uid_of(&msg.platform_message_id);

    // Handed out but not acked: still unseen, and not handed out a second time.
    wait_seen(&m.server, uid, false).await;
    nothing_more(&adapter).await;
    item.ack.ack();
    wait_seen(&m.server, uid, true).await;
    drop(adapter);

    // A restart does not deliver the acked mail again; an unacked one comes back.
    send(&m, ALICE, &mail(ALICE, "Second", "", "not acked")).await;
    let restarted = EmailAdapter::new(settings(&m.server)).unwrap();
    let second = next(&restarted).await;
    assert_eq!(second.message.text, "Second\n\nnot acked");
    let second_id = second.message.platform_message_id.clone();
    drop(second);
    drop(restarted);
    wait_seen(&m.server, uid_of(&second_id), false).await;

    let again = EmailAdapter::new(settings(&m.server)).unwrap();
    let redelivered = next(&again).await;
    assert_eq!(redelivered.message.platform_message_id, second_id);
    redelivered.ack.ack();
    wait_seen(&m.server, uid_of(&second_id), true).await;
    nothing_more(&again).await;
}

#[tokio::test]
async fn replies_are_threaded_and_rendered() {
    let m = mail_server();
    let headers = "Message-ID: <alice-1@test.local>\r\nReferences: <older@test.local>\r\n";
    send(&m, ALICE, &mail(ALICE, "Lunch", headers, "Noon?")).await;
    let adapter = EmailAdapter::new(settings(&m.server)).unwrap();
    let item = next(&adapter).await;
    let original = item.message.platform_message_id.clone();
    item.ack.ack();

    let sent = adapter
        .send(reply(
            ALICE,
            "**Sure**, see you *there*.",
            Some(original.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(sent.platform_message_ids.len(), 1);
    let our_id = sent.platform_message_ids[0].clone();
    assert!(our_id.ends_with("@test.local"), "{our_id}");
    assert!(
        m.server.wait_delivered(ALICE, 1, WAIT).await,
        "{}",
        m.server.logs()
    );

    // A new adapter has no cache: it looks the original up over IMAP.
    let fresh = EmailAdapter::new(settings(&m.server)).unwrap();
    fresh
        .send(reply(ALICE, "Again", Some(original)))
        .await
        .unwrap();
    assert!(
        m.server.wait_delivered(ALICE, 2, WAIT).await,
        "{}",
        m.server.logs()
    );

    let inbox = mailbox(&m.server, ALICE).await;
    assert_eq!(inbox.len(), 2);
    let parser = mail_parser::MessageParser::default();
    for (i, (_, _, raw)) in inbox.iter().enumerate() {
        let got = parser.parse(raw.as_slice()).unwrap();
        assert_eq!(got.subject(), Some("Re: Lunch"));
        assert_eq!(got.from().unwrap().first().unwrap().address(), Some(BOT));
        assert_eq!(got.in_reply_to().as_text(), Some("alice-1@test.local"));
        let refs: Vec<String> = got
            .references()
            .as_text_list()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(refs, vec!["older@test.local", "alice-1@test.local"]);
        let text = got.body_text(0).unwrap();
        if i == 0 {
            assert_eq!(got.message_id(), Some(our_id.as_str()));
            assert_eq!(text.trim(), "Sure, see you there.");
            let html = got.body_html(0).unwrap();
            assert!(html.contains("<strong>Sure</strong>"), "{html}");
        } else {
            assert_eq!(text.trim(), "Again");
        }
    }
}

#[tokio::test]
async fn mail_arriving_while_idle_is_delivered_promptly() {
    let m = mail_server();
    send(&m, ALICE, &mail(ALICE, "first", "", "one")).await;
    let adapter = EmailAdapter::new(settings(&m.server)).unwrap();
    let first = next(&adapter).await;
    let uid = uid_of(&first.message.platform_message_id);
    first.ack.ack();
    // Once the ack is stored the inbox task searches once more and goes back to IDLE.
    wait_seen(&m.server, uid, true).await;

    let started = Instant::now();
    send(&m, ALICE, &mail(ALICE, "second", "", "two")).await;
    let second = next(&adapter).await;
    assert_eq!(second.message.text, "second\n\ntwo");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?} (polling is hourly)",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_idle_the_adapter_polls() {
    let m = mail_server_with(&MailServerOptions {
        idle: false,
        ..MailServerOptions::default()
    });
    let mut s = settings(&m.server);
    s.poll_interval = Duration::from_secs(1);
    let adapter = EmailAdapter::new(s).unwrap();
    // Nothing there yet: the first search finds nothing, the mail is found by a later poll.
    nothing_more(&adapter).await;
    send(&m, ALICE, &mail(ALICE, "polled", "", "found")).await;
    let item = next(&adapter).await;
    assert_eq!(item.message.text, "polled\n\nfound");
    let uid = uid_of(&item.message.platform_message_id);
    item.ack.ack();
    wait_seen(&m.server, uid, true).await;
}

#[tokio::test]
async fn a_refused_login_is_reported_for_the_operator_without_the_password() {
    let m = mail_server();
    let mut s = settings(&m.server);
    s.imap.password = Secret::new("wrong-password-123".to_owned());
    let adapter = EmailAdapter::new(s).unwrap();
    let err = match tokio::time::timeout(WAIT, adapter.next_inbound(lease())).await {
        Ok(Err(e)) => e,
        Ok(Ok(item)) => panic!("unexpected message {:?}", item.message),
        Err(_) => panic!("no error reported"),
    };
    assert!(err.needs_operator(), "{err}");
    let text = err.to_string();
    assert!(text.contains("login"), "{text}");
    assert!(!text.contains("wrong-password-123"), "{text}");
}

#[tokio::test]
async fn imap_over_tls_and_starttls_with_an_extra_ca() {
    let m = mail_server_with(&MailServerOptions {
        tls: true,
        ..MailServerOptions::default()
    });
    // SMTP stays plaintext to loopback (see `MailServerOptions::tls`).
    let tls_settings = |security: Security, ca: bool| {
        let mut s = settings(&m.server);
        s.imap.security = security;
        if security == Security::Tls {
            s.imap.port = m.server.imaps_addr.unwrap().port();
        }
        if ca {
            s.extra_ca_pem = m.server.ca_pem.clone();
        }
        s
    };
    send(&m, ALICE, &mail(ALICE, "Secure", "", "over TLS")).await;

    let adapter = EmailAdapter::new(tls_settings(Security::Tls, true)).unwrap();
    let item = next(&adapter).await;
    assert_eq!(item.message.text, "Secure\n\nover TLS");
    let original = item.message.platform_message_id.clone();
    drop(item);
    drop(adapter);

    let adapter = EmailAdapter::new(tls_settings(Security::StartTls, true)).unwrap();
    let again = next(&adapter).await;
    assert_eq!(
        again.message.platform_message_id, original,
        "not acked before"
    );
    let uid = uid_of(&original);
    again.ack.ack();
    wait_seen(&m.server, uid, true).await;
    // A reply to a message the new adapter never cached: its headers come over STARTTLS.
    adapter
        .send(reply(ALICE, "via STARTTLS lookup", Some(original)))
        .await
        .unwrap();
    assert!(m.server.wait_delivered(ALICE, 1, WAIT).await);
    let (_, _, raw) = mailbox(&m.server, ALICE).await.remove(0);
    let got = mail_parser::MessageParser::default()
        .parse(raw.as_slice())
        .unwrap();
    assert_eq!(got.subject(), Some("Re: Secure"));
    drop(adapter);

    // Without the test CA the certificate is refused, with either kind of TLS.
    for security in [Security::Tls, Security::StartTls] {
        let untrusting = EmailAdapter::new(tls_settings(security, false)).unwrap();
        let err = tokio::time::timeout(WAIT, untrusting.next_inbound(lease()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
        assert!(err.is_retryable());
    }
}

/// SMTP over implicit TLS (port 465 style) with the extra CA, against the real OpenSMTPD
/// behind a TLS front (its own TLS is broken on Debian bookworm, see the testkit); and the
/// certificate refused without the CA.
#[tokio::test]
async fn smtp_over_implicit_tls_with_an_extra_ca() {
    let m = mail_server_with(&MailServerOptions {
        tls: true,
        ..MailServerOptions::default()
    });
    let smtps = m.server.smtps_front().await.unwrap();
    let tls_smtp = |ca: bool| {
        let mut s = settings(&m.server);
        s.smtp.host = "localhost".to_owned();
        s.smtp.port = smtps.port();
        s.smtp.security = Security::Tls;
        if ca {
            s.extra_ca_pem = m.server.ca_pem.clone();
        }
        s
    };
    let adapter = EmailAdapter::new(tls_smtp(true)).unwrap();
    adapter
        .send(reply(ALICE, "over **TLS**", None))
        .await
        .unwrap();
    assert!(
        m.server.wait_delivered(ALICE, 1, WAIT).await,
        "{}",
        m.server.logs()
    );
    let (_, _, raw) = mailbox(&m.server, ALICE).await.remove(0);
    let got = mail_parser::MessageParser::default()
        .parse(raw.as_slice())
        .unwrap();
    assert_eq!(got.body_text(0).as_deref().map(str::trim), Some("over TLS"));

    let untrusting = EmailAdapter::new(tls_smtp(false)).unwrap();
    let err = untrusting
        .send(reply(ALICE, "must not arrive", None))
        .await
        .unwrap_err();
    assert!(err.sent.is_empty());
    assert_eq!(m.server.delivered(ALICE), 1, "nothing more was delivered");
}

#[tokio::test]
async fn auto_replies_bulk_mail_and_loops_are_never_answered() {
    let m = mail_server();
    send(
        &m,
        ALICE,
        &mail(
            ALICE,
            "Out of office",
            "Auto-Submitted: auto-replied\r\n",
            "away",
        ),
    )
    .await;
    send(
        &m,
        ALICE,
        &mail(ALICE, "Newsletter", "Precedence: bulk\r\n", "news"),
    )
    .await;
    send(&m, BOT, &mail(BOT, "Re: x", "", "from myself")).await;
    send(&m, ALICE, &mail(ALICE, "Real", "", "a question")).await;

    let adapter = EmailAdapter::new(settings(&m.server)).unwrap();
    let item = next(&adapter).await;
    assert_eq!(item.message.text, "Real\n\na question");
    let real = uid_of(&item.message.platform_message_id);
    nothing_more(&adapter).await;
    let flags = mailbox(&m.server, BOT).await;
    assert_eq!(flags.len(), 4);
    for (uid, seen, _) in flags {
        assert_eq!(seen, uid != real, "uid {uid}");
    }
}

#[tokio::test]
async fn unauthenticated_senders_are_skipped_when_an_authserv_id_is_set() {
    let m = mail_server();
    send(&m, ALICE, &mail(ALICE, "no results", "", "x")).await;
    let other = "Authentication-Results: mx.elsewhere.example; dmarc=pass\r\n";
    send(&m, ALICE, &mail(ALICE, "other authserv", other, "x")).await;
    let ours = "Authentication-Results: mx.test.local; dkim=pass header.d=test.local\r\n";
    send(&m, ALICE, &mail(ALICE, "verified", ours, "ok")).await;

    let mut s = settings(&m.server);
    s.authserv_id = Some("mx.test.local".to_owned());
    let adapter = EmailAdapter::new(s).unwrap();
    let item = next(&adapter).await;
    assert_eq!(item.message.text, "verified\n\nok");
    let verified = uid_of(&item.message.platform_message_id);
    nothing_more(&adapter).await;
    for (uid, seen, _) in mailbox(&m.server, BOT).await {
        assert_eq!(seen, uid != verified, "uid {uid}");
    }
}

#[tokio::test]
async fn attachments_are_references_not_content() {
    let m = mail_server();
    let pdf = b"%PDF-1.4\n% a tiny test document\n";
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(pdf)
    };
    let body = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=SEP\r\n\r\n\
         --SEP\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe report.\r\n\
         --SEP\r\nContent-Type: application/pdf; name=report.pdf\r\n\
         Content-Disposition: attachment; filename=report.pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--SEP--"
    );
    let raw = format!("From: {ALICE}\r\nTo: {BOT}\r\nSubject: Report\r\n{body}\r\n");
    send(&m, ALICE, &raw).await;

    let adapter = EmailAdapter::new(settings(&m.server)).unwrap();
    let item = next(&adapter).await;
    assert_eq!(item.message.text, "Report\n\nThe report.");
    assert_eq!(item.message.media.len(), 1);
    let media = &item.message.media[0];
    assert_eq!(media.kind, "file");
    assert_eq!(media.mime_type, "application/pdf");
    assert_eq!(media.size_bytes, pdf.len() as u64);
    assert!(
        media
            .platform_file_id
            .starts_with(&format!("{}/", item.message.platform_message_id)),
        "{}",
        media.platform_file_id
    );
    assert!(!item.message.text.contains("PDF-1.4"));
}

#[tokio::test]
async fn smtp_rejections_are_permanent() {
    let m = mail_server();
    let adapter = EmailAdapter::new(settings(&m.server)).unwrap();
    let failure = adapter
        .send(reply("someone@elsewhere.example", "hi", None))
        .await
        .unwrap_err();
    assert!(failure.sent.is_empty());
    assert!(!failure.error.is_retryable(), "{}", failure.error);
    let bad = adapter
        .send(reply("not an address", "hi", None))
        .await
        .unwrap_err();
    assert!(
        matches!(bad.error, AdapterError::BadTarget { .. }),
        "{}",
        bad.error
    );
}

#[test]
fn plaintext_to_a_remote_host_is_refused() {
    let server_less = |imap_host: &str, smtp_host: &str| {
        let mut s = EmailSettings::new(
            BOT.to_owned(),
            ImapSettings {
                host: imap_host.to_owned(),
                port: 143,
                security: Security::Plain,
                username: BOT.to_owned(),
                password: Secret::new("secret-password".to_owned()),
                mailbox: "INBOX".to_owned(),
            },
            SmtpSettings {
                host: smtp_host.to_owned(),
                port: 25,
                security: Security::Plain,
                username: None,
                password: None,
            },
        );
        s.account_id = "work".to_owned();
        EmailAdapter::new(s)
    };
    for (imap, smtp) in [
        ("mail.example.org", "127.0.0.1"),
        ("127.0.0.1", "192.0.2.1"),
    ] {
        let err = server_less(imap, smtp).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("loopback"), "{text}");
        assert!(!text.contains("secret-password"));
        assert!(err.needs_operator());
    }
    let ok = server_less("127.0.0.1", "::1").unwrap();
    assert_eq!(ok.account().account_id, "work");
}
