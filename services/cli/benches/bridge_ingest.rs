//! Bridge ingest through the whole stack: one `pincer-bridge` replica, one bot on the fake
//! Bot API, a real gateway and agent with an instant fake LLM. 400 DMs from 20 users are
//! queued at once; it prints how fast the bridge moves them into the gateway's store (the
//! Bot API offset confirmed after the gateway's acks) and how fast all replies come back.
//!
//!   cargo build --release --workspace --bins
//!   cargo bench -p pincer --bench bridge_ingest
//!
//! Prints numbers; asserts nothing about them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/bins.rs"]
mod bins;
#[path = "../tests/support/bridge_stack.rs"]
mod bridge_stack;

use std::time::{Duration, Instant};

use bridge_stack::{Stack, WAIT};
use pincer_testkit::InjectMessage;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(ingest());
}

async fn ingest() {
    const N: usize = 400;
    let stack = Stack::start_with(&["bench-1"]).await;
    stack.wait_served(&[]).await;
    let bot = stack.bot("alpha");
    let start = Instant::now();
    let mut last_update = 0;
    let mut expected = Vec::new();
    for n in 0..N {
        let text = format!("bench-{n}");
        last_update = bot
            .inject_message(InjectMessage::private(
                9_000 + (n % 20) as i64,
                text.clone(),
            ))
            .unwrap();
        expected.push(("alpha".to_owned(), text));
    }
    let deadline = Instant::now() + WAIT;
    while bot.confirmed_offset() <= last_update {
        assert!(Instant::now() < deadline, "inbound never all confirmed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest = start.elapsed();
    stack.wait_replies(&expected).await;
    let round_trip = start.elapsed();
    println!(
        "bridge ingest: {N} messages stored in {:.2} s = {:.0} inbound msg/s; all {N} replies sent after {:.2} s = {:.0} msg/s end to end",
        ingest.as_secs_f64(),
        N as f64 / ingest.as_secs_f64(),
        round_trip.as_secs_f64(),
        N as f64 / round_trip.as_secs_f64()
    );
}
