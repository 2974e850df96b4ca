//! The store's durability promises: de-duplication, append-only transcripts, a reply queued
//! once per inbound message even when a turn is recorded twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pincer_gateway::routing::{ChatKind, SessionKey};
use pincer_gateway::senders::SenderClass;
use pincer_gateway::store::Store;
use pincer_gateway::store::inbound::{
    Completion, Disposition, Enqueued, NewInbound, complete, enqueue, pending,
};
use pincer_gateway::store::outbox::{NewDelivery, due, mark_attempt_failed, mark_sent};
use pincer_gateway::store::transcript::history;

fn message(pmid: &str, text: &str) -> NewInbound {
    NewInbound {
        channel: "telegram".into(),
        account_id: "default".into(),
        platform_message_id: pmid.into(),
        sender_id: "42".into(),
        chat_id: "42".into(),
        chat_kind: ChatKind::Direct,
        thread_id: String::new(),
        text: text.into(),
        session_key: SessionKey::for_chat(
            "main",
            "telegram",
            "default",
            ChatKind::Direct,
            "42",
            "42",
        ),
        sender_class: SenderClass::Allowed,
        disposition: Disposition::Process,
    }
}

fn delivery(text: &str) -> NewDelivery {
    NewDelivery {
        channel: "telegram".into(),
        account_id: "default".into(),
        chat_id: "42".into(),
        thread_id: String::new(),
        reply_to: "42:1".into(),
        text: text.into(),
    }
}

#[tokio::test]
async fn redelivered_messages_are_stored_once() {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|c| {
            let first = enqueue(c, &message("42:1", "hi"))?;
            let again = enqueue(c, &message("42:1", "hi"))?;
            assert!(matches!(first, Enqueued::New(_)));
            assert_eq!(again, Enqueued::Duplicate(first.id()));
            assert_eq!(pending(c, 10)?.len(), 1);
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn completing_twice_queues_one_reply_and_one_transcript_pair() {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|c| {
            enqueue(c, &message("42:1", "hello"))?;
            let msg = pending(c, 10)?.remove(0);
            let done = Completion {
                turn_id: "t1".into(),
                agent_id: "main".into(),
                reply: "hi!".into(),
                delivery: Some(delivery("hi!")),
            };
            assert!(complete(c, &msg, &done)?);
            assert!(!complete(c, &msg, &done)?, "a second completion is a no-op");
            assert!(pending(c, 10)?.is_empty());
            let due_now = due(c, i64::MAX, 10)?;
            assert_eq!(due_now.len(), 1);
            let entries = history(c, msg.session_key.as_str(), 10)?;
            assert_eq!(
                entries.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
                ["hello", "hi!"]
            );
            mark_sent(c, &due_now[0].delivery_id, &["42:7".into()], 1)?;
            assert!(due(c, i64::MAX, 10)?.is_empty());
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn transcripts_refuse_update_and_delete() {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|c| {
            enqueue(c, &message("42:1", "hello"))?;
            let msg = pending(c, 10)?.remove(0);
            complete(
                c,
                &msg,
                &Completion {
                    turn_id: "t".into(),
                    agent_id: "main".into(),
                    reply: "r".into(),
                    delivery: None,
                },
            )?;
            assert!(
                c.execute("UPDATE transcript SET text = 'forged'", [])
                    .is_err()
            );
            assert!(c.execute("DELETE FROM transcript", []).is_err());
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn failed_deliveries_back_off_then_give_up() {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|c| {
            enqueue(c, &message("42:1", "hello"))?;
            let msg = pending(c, 10)?.remove(0);
            complete(
                c,
                &msg,
                &Completion {
                    turn_id: "t".into(),
                    agent_id: "main".into(),
                    reply: "r".into(),
                    delivery: Some(delivery("r")),
                },
            )?;
            let id = due(c, i64::MAX, 10)?.remove(0).delivery_id;
            mark_attempt_failed(c, &id, "429", true, 5_000)?;
            assert!(due(c, 4_999, 10)?.is_empty(), "not due before its backoff");
            assert_eq!(due(c, 5_000, 10)?.len(), 1);
            mark_attempt_failed(c, &id, "chat not found", false, 6_000)?;
            assert!(
                due(c, i64::MAX, 10)?.is_empty(),
                "non-retryable failure is final"
            );
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn reopening_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .call(|c| enqueue(c, &message("42:9", "persist me")).map(|_| ()))
            .await
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let left = store.call(|c| pending(c, 10)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].text, "persist me");
    assert_eq!(
        store.schema_version().await.unwrap(),
        pincer_gateway::store::db::SCHEMA_VERSION
    );
}

#[tokio::test]
async fn a_redelivered_strangers_message_sends_no_second_code() {
    use pincer_gateway::senders::codes::{PairingCode, RequestState, SenderKey, SenderRequest};
    use pincer_gateway::store::ingress::{Effect, IngressRecord, ReplyText, record};
    use pincer_gateway::store::senders::load;

    let store = Store::open_in_memory().unwrap();
    store
        .call(|c| {
            let request = SenderRequest {
                key: SenderKey {
                    channel: "telegram".into(),
                    account_id: "default".into(),
                    sender_id: "42".into(),
                },
                code: PairingCode::parse("ABCD2345").unwrap(),
                created_ms: 1,
                state: RequestState::Pending,
            };
            let rec = IngressRecord {
                channel: "telegram".into(),
                account_id: "default".into(),
                platform_message_id: "42:1".into(),
                sender_id: "42".into(),
                chat_id: "42".into(),
                chat_kind: ChatKind::Direct,
                thread_id: String::new(),
                text: "hi".into(),
                base_key: SessionKey::for_chat(
                    "main",
                    "telegram",
                    "default",
                    ChatKind::Direct,
                    "42",
                    "42",
                ),
                agent_id: "main".into(),
                sender_class: SenderClass::Stranger,
                note: "stranger; pairing code sent".into(),
                effect: Effect::Reply {
                    text: ReplyText::Fixed("your code: ABCD2345".into()),
                    pairing: Some(request),
                    new_session: false,
                },
            };
            let first = record(c, &rec)?;
            assert!(matches!(first.outcome, Enqueued::New(_)));
            let again = record(c, &rec)?;
            assert_eq!(again.outcome, Enqueued::Duplicate(first.outcome.id()));
            assert_eq!(due(c, i64::MAX, 10)?.len(), 1, "one delivery");
            assert!(pending(c, 10)?.is_empty(), "no turn");
            let (requests, paired) = load(c)?;
            assert_eq!(requests.len(), 1);
            assert_eq!(requests[0].code.as_str(), "ABCD2345");
            assert!(paired.is_empty());
            assert!(
                history(c, first.session_key.unwrap().as_str(), 10)?.is_empty(),
                "a stranger's message is in no transcript"
            );

            // `/new` moves the session to the next epoch; context lands in the current one.
            let mut reset = rec.clone();
            reset.platform_message_id = "42:2".into();
            reset.effect = Effect::Reply {
                text: ReplyText::Fixed("new".into()),
                pairing: None,
                new_session: true,
            };
            let after = record(c, &reset)?.session_key.unwrap();
            assert_eq!(after.as_str(), "agent:main:telegram:default:dm:42#1");
            let mut context = rec.clone();
            context.platform_message_id = "42:3".into();
            context.effect = Effect::Context {
                entry: "[context] hello".into(),
            };
            let key = record(c, &context)?.session_key.unwrap();
            assert_eq!(key, after);
            assert_eq!(history(c, key.as_str(), 10)?[0].text, "[context] hello");
            Ok(())
        })
        .await
        .unwrap();
}
