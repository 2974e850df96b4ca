//! Operator handshake costs against an in-process gateway on loopback (release build):
//!
//! - connect latency (socket, challenge, Ed25519 signature, verification, device-token
//!   check, `hello-ok`) for a paired device, sequentially: p50 / p99;
//! - failed authentications per second (wrong gateway token, each from a different
//!   forwarded client address so no lockout kicks in), 8 clients in parallel;
//! - refusals per second of a locked-out address (answered without checking anything).
//!
//! Run: `cargo bench -p pincer-gateway --bench handshake`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

/// Failing clients pose as coming through a proxy at this (trusted) address, each with
/// its own forwarded client address.
const PROXY: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let gw = start_with(r#"{ trustedProxies: ["127.0.0.2"] }"#).await;
    ready(&gw).await;

    let mut dev = Device::new(1);
    let (_s, hello) = dev.connect(&gw, &Cred::Gateway(TOKEN.into()), ALL).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let token = Cred::Device(dev.token.clone().unwrap());
    for _ in 0..50 {
        let (_s, r) = dev.connect(&gw, &token, ALL).await;
        assert_eq!(r["ok"], true);
    }
    let mut samples = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let (s, r) = dev.connect(&gw, &token, ALL).await;
        samples.push(t.elapsed());
        assert_eq!(r["ok"], true);
        drop(s);
    }
    report("connect with device token (sequential)", samples);

    let wrong = Cred::Gateway("wrong-token-wrong-token-wrong-token-00".into());
    let per_client = 250;
    let started = Instant::now();
    let tasks: Vec<_> = (0..8u8)
        .map(|c| {
            let operator = gw.operator;
            let wrong = wrong.clone();
            tokio::spawn(async move {
                let dev = Device::new(100 + c);
                for i in 0..per_client {
                    let hop = format!("10.{c}.{}.{}", i / 250, i % 250);
                    let mut socket = ws_from(operator, Some(PROXY), &[("x-forwarded-for", &hop)])
                        .await
                        .unwrap();
                    let nonce = challenge(&mut socket).await;
                    send(&mut socket, dev.connect_frame(&nonce, &wrong, ALL)).await;
                    let r = recv(&mut socket).await.unwrap();
                    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = 8 * per_client;
    println!(
        "failed authentications (8 clients): {n} in {:.2} s = {:.0}/s",
        started.elapsed().as_secs_f64(),
        f64::from(n) / started.elapsed().as_secs_f64()
    );

    let locked = [("x-forwarded-for", "192.0.2.1")];
    let dev = Device::new(200);
    for _ in 0..10 {
        let mut socket = ws_from(gw.operator, Some(PROXY), &locked).await.unwrap();
        let nonce = challenge(&mut socket).await;
        send(&mut socket, dev.connect_frame(&nonce, &wrong, ALL)).await;
        recv(&mut socket).await.unwrap();
    }
    let started = Instant::now();
    let n = 1000u32;
    for _ in 0..n {
        let mut socket = ws_from(gw.operator, Some(PROXY), &locked).await.unwrap();
        let nonce = challenge(&mut socket).await;
        send(&mut socket, dev.connect_frame(&nonce, &wrong, ALL)).await;
        let r = recv(&mut socket).await.unwrap();
        assert_eq!(r["error"]["code"], "rate_limited", "{r}");
    }
    println!(
        "locked-out refusals (sequential): {n} in {:.2} s = {:.0}/s",
        started.elapsed().as_secs_f64(),
        f64::from(n) / started.elapsed().as_secs_f64()
    );
    gw.shutdown.cancel();
}
