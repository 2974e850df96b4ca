//! E-mail through the whole stack against a real dovecot (IMAP) and OpenSMTPD (SMTP): a
//! stranger mails the bot, gets one pairing code by mail, is approved with `pincer pairing
//! approve email`, and the next mail is answered, threaded under it.

use pincer_testkit::dovecot::{MailServer, password};

use crate::stack::{Stack, eventually};

const BOT: &str = "bot@test.local";
const ALICE: &str = "alice@test.local";

fn mail(subject: &str, message_id: &str, body: &str) -> String {
    format!(
        "From: Alice <{ALICE}>\r\nTo: {BOT}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Tue, 1 Jul 2025 10:00:00 +0000\r\n\r\n{body}\r\n"
    )
}

async fn alice_gets(stack: &Stack, server: &MailServer, n: usize) -> Vec<String> {
    eventually(&format!("{n} mails for alice"), stack, || async {
        let got = server.messages(ALICE);
        (got.len() >= n).then_some(got)
    })
    .await
}

/// The decoded text of a (possibly quoted-printable) mail, good enough to find words in.
fn text_of(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_stranger_pairs_and_gets_threaded_replies() {
    let dir = tempfile::tempdir().unwrap();
    let server = MailServer::start(dir.path()).unwrap();
    let channels = format!(
        r#"{{ email: {{ address: "{BOT}",
              imap: {{ host: "127.0.0.1", port: {imap}, security: "plain", password: "${{E2E_IMAP_PASSWORD}}" }},
              smtp: {{ host: "127.0.0.1", port: {smtp}, security: "plain" }},
              trustFromHeader: true, pollIntervalSeconds: 5 }} }}"#,
        imap = server.imap_addr.port(),
        smtp = server.smtp_addr.port(),
    );
    let stack = Stack::start(&channels, &[("E2E_IMAP_PASSWORD", password(BOT).unwrap())]).await;

    // 1. A stranger's mail: a pairing code, no model call.
    server
        .send_raw(
            ALICE,
            &[BOT],
            &mail("Hello", "first@alice.test.local", "who are you?"),
        )
        .await
        .unwrap();
    let first = alice_gets(&stack, &server, 1).await;
    let code_mail = text_of(&first[0]);
    assert!(code_mail.contains("pairing code: "), "{code_mail}");
    assert!(
        code_mail.contains("In-Reply-To: <first@alice.test.local>"),
        "the code is a reply to her mail: {code_mail}"
    );

    // 2. The owner approves the code; the next mail reaches the model.
    let body_start = code_mail.find("pairing code: ").unwrap();
    stack
        .approve_code_in("email", &code_mail[body_start..])
        .await;
    assert!(
        stack.llm.requests().is_empty(),
        "a stranger reached the model"
    );
    server
        .send_raw(
            ALICE,
            &[BOT],
            &mail("Lunch", "third@alice.test.local", "lunch at noon?"),
        )
        .await
        .unwrap();
    let got = alice_gets(&stack, &server, 2).await;
    let answer = text_of(&got[1]);
    assert!(answer.contains("You said: "), "{answer}");
    assert!(answer.contains("lunch at noon?"), "{answer}");
    assert!(answer.contains("Subject: Re: Lunch"), "{answer}");
    assert!(
        answer.contains("In-Reply-To: <third@alice.test.local>"),
        "threaded: {answer}"
    );
    assert_eq!(got.len(), 2, "one code, one answer");
    assert_eq!(
        got.iter()
            .filter(|m| text_of(m).contains("pairing code"))
            .count(),
        1,
        "one code only"
    );
    stack.stop().await;
}
