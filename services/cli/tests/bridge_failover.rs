//! Bridge replicas under failure, as real processes: one gateway, one agent, three
//! `pincer-bridge` replicas serving four Telegram bots (four fake Bot API servers in this
//! test process, which answer 409 Conflict when two `getUpdates` long polls overlap) and a
//! fake LLM that records every request.
//!
//! 1. Messages flow on all four accounts; the replica holding the most accounts is killed
//!    with SIGKILL. Within 10 s its accounts are served by the others (`pincer channels
//!    status`); every inbound text reached the model exactly once, every reply was sent
//!    exactly once, and no two replicas ever polled one bot at the same time.
//! 2. A replica is frozen (SIGSTOP) while it waits to retry a rate-limited reply, until its
//!    lease has moved; after SIGCONT its old lease lets nothing through: the reply is sent
//!    once, by the new holder.
//!
//! Needs the service binaries next to `pincer` (`cargo build --workspace --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/bins.rs"]
mod bins;
#[path = "support/bridge_stack.rs"]
mod bridge_stack;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bridge_stack::*;
use nix::sys::signal::Signal;
use pincer_testkit::InjectMessage;
use pincer_testkit::telegram::FakeFailure;
use serde_json::Value;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_fails_over_within_10s_and_nothing_is_lost_or_doubled() {
    let mut stack = Stack::start().await;
    let before = stack.wait_served(&[]).await;
    println!("leases before the kill: {before:?}");

    // Messages flow on every account; a third of the way in, the busiest replica is killed
    // while the rest keep arriving (injected through the fakes' HTTP control API).
    let mut expected: Vec<(String, String)> = Vec::new();
    let inject = |n: usize, expected: &mut Vec<(String, String)>| {
        let mut batch = Vec::new();
        for (i, account) in ACCOUNTS.iter().enumerate() {
            let text = format!("m-{account}-{n}");
            batch.push((
                stack.bot(account).base_url(),
                InjectMessage::private(user_of(i, n), text.clone()),
            ));
            expected.push(((*account).to_owned(), text));
        }
        batch
    };
    let http = reqwest::Client::new();
    for n in 0..PER_ACCOUNT / 3 {
        for (url, message) in inject(n, &mut expected) {
            post_message(&http, &url, &message).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rest: Vec<_> = (PER_ACCOUNT / 3..PER_ACCOUNT)
        .map(|n| inject(n, &mut expected))
        .collect();
    let flow = tokio::spawn(async move {
        for batch in rest {
            for (url, message) in batch {
                post_message(&http, &url, &message).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut load: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (account, replica) in &before {
        load.entry(replica.as_str())
            .or_default()
            .push(account.clone());
    }
    let (victim, victim_accounts) = load.into_iter().max_by_key(|(_, a)| a.len()).unwrap();
    let victim = victim.to_owned();
    stack.signal(&victim, Signal::SIGKILL);
    let killed_at = Instant::now();
    println!("SIGKILL {victim}, which held {victim_accounts:?}");
    let after = stack.wait_served(&[victim.as_str()]).await;
    let failover = killed_at.elapsed();
    flow.await.unwrap();
    println!("leases after the kill: {after:?}");

    stack.wait_replies(&expected).await;
    // Let any late duplicate (a retry, a stale replica) arrive before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (account, text) in &expected {
        assert_eq!(
            stack.model_calls(text),
            1,
            "{text} on {account} must reach the model exactly once"
        );
        assert_eq!(
            stack.replies(account, &format!("You said: {text}")),
            1,
            "the reply to {text} on {account} must be sent exactly once"
        );
    }
    for account in ACCOUNTS {
        assert_eq!(
            stack.bot(account).get_updates_conflicts(),
            0,
            "two replicas polled {account} at the same time"
        );
    }
    let _ = stack.bridges.remove(&victim);
    assert!(!victim_accounts.is_empty());
    println!(
        "failover: {victim_accounts:?} served again {:.1} s after SIGKILL of {victim} ({} messages, {} replies, 0 duplicates, 0 poll conflicts)",
        failover.as_secs_f64(),
        expected.len(),
        expected.len()
    );
    assert!(
        failover <= FAILOVER_BOUND,
        "the dead replica's accounts moved after {failover:?}, more than {FAILOVER_BOUND:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_cannot_send_with_its_old_lease() {
    let stack = Stack::start().await;
    let holders = stack.wait_served(&[]).await;
    let (account, stale) = holders
        .iter()
        .next()
        .map(|(a, r)| (a.clone(), r.clone()))
        .unwrap();
    let i = ACCOUNTS.iter().position(|a| *a == account).unwrap();

    // The holder's first send attempt is rate limited for 8 s: it waits inside the send,
    // after its fencing check passed.
    stack.bot(&account).fail_next(
        "sendMessage",
        FakeFailure::TooManyRequests {
            retry_after_secs: 8,
        },
    );
    stack
        .bot(&account)
        .inject_message(InjectMessage::private(user_of(i, 0), "frozen-1"))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while stack.bot(&account).failures_left("sendMessage") > 0 {
        assert!(Instant::now() < deadline, "the reply was never attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.signal(&stale, Signal::SIGSTOP);
    let frozen_at = Instant::now();
    // The gateway stops hearing from it, its lease runs out, another replica takes over and
    // sends the reply.
    let moved = stack.wait_served(&[stale.as_str()]).await;
    println!(
        "{account} moved from frozen {stale} to {} after {:.1} s",
        moved[&account],
        frozen_at.elapsed().as_secs_f64()
    );
    stack
        .wait_replies(&[(account.clone(), "frozen-1".to_owned())])
        .await;

    // Thaw it while its retry is due: its lease has ended, so nothing goes out.
    let since = frozen_at.elapsed();
    if since < Duration::from_secs(9) {
        tokio::time::sleep(Duration::from_secs(9) - since).await;
    }
    stack.signal(&stale, Signal::SIGCONT);
    // It reconnects and stands by (the account stays with its new holder)...
    let deadline = Instant::now() + WAIT;
    loop {
        let status = stack.channels_status().await;
        let row = status["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["accountId"] == account.as_str())
            .cloned()
            .unwrap();
        let offered: Vec<&str> = row["offeredBy"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if offered.contains(&stale.as_str()) {
            assert_ne!(
                row["replica"],
                stale.as_str(),
                "the stale replica got the account back"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the thawed replica never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.replies(&account, "You said: frozen-1"),
        1,
        "the frozen replica sent with its old lease after SIGCONT"
    );
    assert_eq!(stack.model_calls("frozen-1"), 1);
    assert_eq!(stack.bot(&account).get_updates_conflicts(), 0);
}

async fn post_message(http: &reqwest::Client, base_url: &str, message: &InjectMessage) {
    let response = http
        .post(format!("{base_url}/_fake/messages"))
        .json(message)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "inject failed: {response:?}"
    );
}
