//! Attacks on the operator handshake and on device pairing, over real WebSockets against
//! an in-process gateway: replayed, stale and forged signatures; unknown, pending,
//! revoked and rotated-away devices; scope escalation; lockouts; browser origins; write
//! budgets; event filtering. Each test fails if its protection is removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn gw_token() -> Cred {
    Cred::Gateway(TOKEN.into())
}

/// A header that makes a loopback request non-local (forwarded), so it is not
/// auto-approved. The peer is not a trusted proxy, so the address is unchanged.
const FORWARDED: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.9")];

async fn error_code(res: &Value) -> String {
    res["error"]["code"].as_str().unwrap_or("(ok)").to_owned()
}

#[tokio::test]
async fn forged_stale_and_replayed_signatures_are_refused() {
    let gw = start().await;
    ready(&gw).await;
    let dev = Device::new(1);
    let other = Device::new(2);

    // A connect frame signed for connection A's nonce, replayed on connection B.
    let mut a = ws(&gw).await;
    let nonce_a = challenge(&mut a).await;
    let frame_a = dev.connect_frame(&nonce_a, &gw_token(), ALL);
    send(&mut a, frame_a.clone()).await;
    assert_eq!(recv(&mut a).await.unwrap()["ok"], true);
    let mut b = ws(&gw).await;
    challenge(&mut b).await;
    send(&mut b, frame_a).await;
    let res = recv(&mut b).await.unwrap();
    assert_eq!(error_code(&res).await, "unauthorized", "replay: {res}");
    assert!(res["error"]["message"].as_str().unwrap().contains("nonce"));

    // Signed 10 minutes ago (beyond the 120 s skew).
    let mut c = ws(&gw).await;
    let nonce = challenge(&mut c).await;
    send(
        &mut c,
        dev.connect_frame_at(&nonce, &gw_token(), ALL, now_ms() - 600_000),
    )
    .await;
    let res = recv(&mut c).await.unwrap();
    assert_eq!(error_code(&res).await, "unauthorized", "stale: {res}");

    // Signed by another key, presenting this device's key and id.
    let mut d = ws(&gw).await;
    let nonce = challenge(&mut d).await;
    let mut forged = dev.connect_frame(&nonce, &gw_token(), ALL);
    forged["params"]["device"]["signature"] =
        other.connect_frame(&nonce, &gw_token(), ALL)["params"]["device"]["signature"].clone();
    send(&mut d, forged).await;
    let res = recv(&mut d).await.unwrap();
    assert_eq!(error_code(&res).await, "unauthorized", "forged: {res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature")
    );

    // A device id that is not the hash of the presented key.
    let mut e = ws(&gw).await;
    let nonce = challenge(&mut e).await;
    let mut mismatched = dev.connect_frame(&nonce, &gw_token(), ALL);
    mismatched["params"]["device"]["id"] = json!(other.id());
    send(&mut e, mismatched).await;
    let res = recv(&mut e).await.unwrap();
    assert_eq!(error_code(&res).await, "unauthorized", "id mismatch: {res}");

    // A signature over a different credential than the one presented.
    let mut f = ws(&gw).await;
    let nonce = challenge(&mut f).await;
    let mut swapped = dev.connect_frame(&nonce, &Cred::Gateway("x".repeat(40)), ALL);
    swapped["params"]["auth"] = json!({ "token": TOKEN });
    send(&mut f, swapped).await;
    let res = recv(&mut f).await.unwrap();
    assert_eq!(
        error_code(&res).await,
        "unauthorized",
        "swapped token: {res}"
    );
    gw.shutdown.cancel();
}

#[tokio::test]
async fn pairing_approval_scopes_rotation_and_revocation() {
    let gw = start().await;
    ready(&gw).await;
    // The owner's CLI on this host is approved at once (loopback, no forwarding header).
    let mut owner = Device::new(1);
    let (mut admin, hello) = owner.connect(&gw, &gw_token(), ALL).await;
    assert_eq!(hello["ok"], true, "{hello}");
    assert!(hello["payload"]["auth"]["deviceToken"].is_string());

    // A remote device (forwarded request) with the right gateway token is only pending.
    let mut phone = Device::new(2);
    let (_s, res) = phone.connect_with(&gw, &gw_token(), ALL, FORWARDED).await;
    assert_eq!(error_code(&res).await, "pairing_required", "{res}");
    assert_eq!(res["error"]["details"]["deviceId"], phone.id());
    let (_s, res) = phone.connect_with(&gw, &gw_token(), ALL, FORWARDED).await;
    assert_eq!(
        error_code(&res).await,
        "pairing_required",
        "still pending: {res}"
    );

    let list = call(&mut admin, "l", "devices.list", json!({})).await;
    let pending: Vec<&Value> = list["payload"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["deviceId"], phone.id());

    // Approve with less than requested: read only. The approver never sees the token.
    let res = call(
        &mut admin,
        "a",
        "devices.approve",
        json!({ "deviceId": phone.id(), "scopes": ["read"] }),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["deviceToken"].is_null());

    // The phone connects again, declaring every scope: it gets read and a device token.
    let (p, res) = phone.connect_with(&gw, &gw_token(), ALL, FORWARDED).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["device"]["scopes"], json!(["read"]));
    let token_1 = phone.token.clone().expect("device token issued");
    assert!(token_1.starts_with("pdt_"));
    drop(p);

    // With its device token alone (no gateway token).
    let (mut p2, res) = phone
        .connect_with(&gw, &Cred::Device(token_1.clone()), ALL, FORWARDED)
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["device"]["scopes"], json!(["read"]));
    let r = call(&mut p2, "1", "health", json!({})).await;
    assert_eq!(r["ok"], true);
    for (method, scope) in [
        ("config.get", "admin"),
        ("devices.list", "pairing"),
        ("chat.send", "write"),
    ] {
        let r = call(&mut p2, "x", method, json!({ "text": "hi" })).await;
        assert_eq!(error_code(&r).await, "forbidden", "{method}: {r}");
        assert_eq!(r["error"]["details"]["scope"], scope);
    }
    // The phone cannot approve or rotate itself into more.
    let r = call(
        &mut p2,
        "y",
        "devices.rotate",
        json!({ "deviceId": phone.id(), "scopes": ALL }),
    )
    .await;
    assert_eq!(error_code(&r).await, "forbidden", "{r}");

    // The owner cannot rotate beyond the approval either.
    let r = call(
        &mut admin,
        "r1",
        "devices.rotate",
        json!({ "deviceId": phone.id(), "scopes": ["read", "admin"] }),
    )
    .await;
    assert_eq!(error_code(&r).await, "forbidden", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("approved"));

    // Rotation: the phone's live connection is closed; the old token stops working.
    let r = call(
        &mut admin,
        "r2",
        "devices.rotate",
        json!({ "deviceId": phone.id() }),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["payload"]["deviceToken"].is_null(),
        "not shown to another device"
    );
    let mut saw_disconnect = false;
    while let Some(f) = recv(&mut p2).await {
        if f["event"] == "disconnect" {
            assert_eq!(f["payload"]["reason"], "token-rotated");
            saw_disconnect = true;
        }
    }
    assert!(saw_disconnect);
    let (_s, res) = phone
        .connect_with(&gw, &Cred::Device(token_1.clone()), ALL, FORWARDED)
        .await;
    assert_eq!(
        error_code(&res).await,
        "unauthorized",
        "rotated-away token: {res}"
    );

    // The phone gets a fresh token with the gateway credential, then is revoked.
    let (mut p3, res) = phone.connect_with(&gw, &gw_token(), ALL, FORWARDED).await;
    assert_eq!(res["ok"], true, "{res}");
    let token_3 = phone.token.clone().unwrap();
    assert_ne!(token_3, token_1);
    let r = call(
        &mut admin,
        "v",
        "devices.revoke",
        json!({ "deviceId": phone.id() }),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let mut closed = false;
    while let Some(f) = recv(&mut p3).await {
        if f["event"] == "disconnect" {
            assert_eq!(f["payload"]["reason"], "device-revoked");
            closed = true;
        }
    }
    assert!(closed);
    let (_s, res) = phone
        .connect_with(&gw, &Cred::Device(token_3), ALL, FORWARDED)
        .await;
    assert_eq!(
        error_code(&res).await,
        "unauthorized",
        "revoked token: {res}"
    );
    // Even with the gateway token a revoked device waits for the owner again.
    let (_s, res) = phone.connect_with(&gw, &gw_token(), ALL, FORWARDED).await;
    assert_eq!(error_code(&res).await, "pairing_required", "{res}");

    // Reject: a rejected device stays out.
    let r = call(
        &mut admin,
        "j",
        "devices.reject",
        json!({ "deviceId": phone.id() }),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = call(&mut admin, "l2", "devices.list", json!({})).await;
    let status = r["payload"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == phone.id())
        .unwrap()["status"]
        .clone();
    assert_eq!(status, "rejected");
    gw.shutdown.cancel();
}

#[tokio::test]
async fn pairing_survives_a_gateway_restart() {
    let gw = start().await;
    ready(&gw).await;
    let mut owner = Device::new(1);
    let (_a, hello) = owner.connect(&gw, &gw_token(), ALL).await;
    assert_eq!(hello["ok"], true);
    let token = owner.token.clone().unwrap();
    let state_dir = gw.state.path().join("state");
    gw.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), gw.task).await;

    let again = start_in(&state_dir).await;
    ready(&again).await;
    let (_b, res) = owner
        .connect_with(&again, &Cred::Device(token), ALL, FORWARDED)
        .await;
    assert_eq!(
        res["ok"], true,
        "the device token outlives a restart: {res}"
    );
    again.shutdown.cancel();
}

#[tokio::test]
async fn ten_failures_lock_the_address_out_and_mapped_ipv4_is_the_same_address() {
    // nginx-free variant: the gateway trusts 127.0.0.1 as a proxy, and the "client"
    // addresses are forwarded hops, alternating plain and IPv4-mapped IPv6 forms.
    let gw = start_with(r#"{ trustedProxies: ["127.0.0.1"] }"#).await;
    ready(&gw).await;
    let mut dev = Device::new(3);
    let wrong = Cred::Gateway("wrong-token-wrong-token-wrong-token-00".into());
    for i in 0..10 {
        let hop = if i % 2 == 0 {
            "198.51.100.7"
        } else {
            "::ffff:198.51.100.7"
        };
        let (_s, res) = dev
            .connect_with(&gw, &wrong, ALL, &[("x-forwarded-for", hop)])
            .await;
        assert_eq!(error_code(&res).await, "unauthorized", "attempt {i}: {res}");
    }
    let (_s, res) = dev
        .connect_with(
            &gw,
            &wrong,
            ALL,
            &[("x-forwarded-for", "::ffff:198.51.100.7")],
        )
        .await;
    assert_eq!(error_code(&res).await, "rate_limited", "11th: {res}");
    assert!(res["error"]["details"]["retryAfterMs"].as_u64().unwrap() > 200_000);
    // Locked out even with the right token.
    let (_s, res) = dev
        .connect_with(
            &gw,
            &gw_token(),
            ALL,
            &[("x-forwarded-for", "198.51.100.7")],
        )
        .await;
    assert_eq!(error_code(&res).await, "rate_limited", "{res}");
    // Another client address is not affected (it is pending: forwarded, not local).
    let (_s, res) = dev
        .connect_with(
            &gw,
            &gw_token(),
            ALL,
            &[("x-forwarded-for", "198.51.100.8")],
        )
        .await;
    assert_eq!(error_code(&res).await, "pairing_required", "{res}");
    gw.shutdown.cancel();
}

#[tokio::test]
async fn ipv4_mapped_peer_and_plain_ipv4_share_one_lockout() {
    // A dual-stack listener: IPv4 clients appear as ::ffff:127.0.0.1. A proxy on ::1
    // (trusted) forwards "127.0.0.1" in its plain form. Both are one address.
    let listener = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let gw = start_on(r#"{ trustedProxies: ["::1"] }"#, listener).await;
    let v4: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let wrong = Cred::Gateway("wrong-token-wrong-token-wrong-token-00".into());
    let attempt =
        |addr: std::net::SocketAddr, cred: Cred, headers: Vec<(&'static str, &'static str)>| {
            let frame_dev = Device {
                key: pincer_identity::DeviceKey::from_seed([8; 32]),
                token: None,
            };
            async move {
                let mut socket = ws_from(addr, None, &headers).await.unwrap();
                let nonce = challenge(&mut socket).await;
                send(&mut socket, frame_dev.connect_frame(&nonce, &cred, ALL)).await;
                recv(&mut socket).await.unwrap()
            }
        };
    for i in 0..10 {
        let res = if i % 2 == 0 {
            attempt(v4, wrong.clone(), vec![]).await
        } else {
            attempt(v6, wrong.clone(), vec![("x-forwarded-for", "127.0.0.1")]).await
        };
        assert_eq!(error_code(&res).await, "unauthorized", "attempt {i}: {res}");
    }
    let res = attempt(v4, Cred::Gateway(TOKEN.into()), vec![]).await;
    assert_eq!(
        error_code(&res).await,
        "rate_limited",
        "::ffff:127.0.0.1 is 127.0.0.1: {res}"
    );
    let res = attempt(
        v6,
        Cred::Gateway(TOKEN.into()),
        vec![("x-forwarded-for", "127.0.0.1")],
    )
    .await;
    assert_eq!(error_code(&res).await, "rate_limited", "{res}");
    gw.shutdown.cancel();
}

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let gw = start().await;
    ready(&gw).await;
    let mut dev = Device::new(4);
    let wrong = Cred::Gateway("wrong-token-wrong-token-wrong-token-00".into());
    for i in 0..10 {
        let spoof = format!("10.9.8.{i}");
        let (_s, res) = dev
            .connect_with(&gw, &wrong, ALL, &[("x-forwarded-for", &spoof)])
            .await;
        assert_eq!(error_code(&res).await, "unauthorized");
    }
    let (_s, res) = dev
        .connect_with(&gw, &gw_token(), ALL, &[("x-forwarded-for", "10.9.8.200")])
        .await;
    assert_eq!(error_code(&res).await, "rate_limited", "one address: {res}");
    gw.shutdown.cancel();

    // "X-Forwarded-For: 127.0.0.1" does not make a request local: no auto-approval, and
    // without a credential nothing.
    let gw = start().await;
    ready(&gw).await;
    let mut dev = Device::new(5);
    let (_s, res) = dev
        .connect_with(&gw, &gw_token(), ALL, &[("x-forwarded-for", "127.0.0.1")])
        .await;
    assert_eq!(error_code(&res).await, "pairing_required", "{res}");
    let (_s, res) = dev
        .connect_with(&gw, &Cred::Nothing, ALL, &[("x-real-ip", "127.0.0.1")])
        .await;
    assert_eq!(error_code(&res).await, "unauthorized", "{res}");
    gw.shutdown.cancel();
}

#[tokio::test]
async fn browser_origins_are_checked_and_never_auto_approved() {
    let gw =
        start_with(r#"{ controlUi: { allowedOrigins: ["https://pincer.example.ts.net"] } }"#).await;
    ready(&gw).await;
    let evil = ws_from(gw.operator, None, &[("origin", "https://evil.example")]).await;
    assert_eq!(evil.err().as_deref(), Some("http 403"));
    let null = ws_from(gw.operator, None, &[("origin", "null")]).await;
    assert_eq!(null.err().as_deref(), Some("http 403"));
    let rebound = ws_from(
        gw.operator,
        None,
        &[
            ("origin", "http://attacker.test"),
            ("host", "attacker.test"),
        ],
    )
    .await;
    assert_eq!(
        rebound.err().as_deref(),
        Some("http 403"),
        "DNS names need a listing"
    );

    // Listed origin on loopback: allowed, authenticated, but never auto-approved.
    let mut dev = Device::new(6);
    let (_s, res) = dev
        .connect_with(
            &gw,
            &gw_token(),
            ALL,
            &[("origin", "https://pincer.example.ts.net")],
        )
        .await;
    assert_eq!(error_code(&res).await, "pairing_required", "{res}");
    let own = format!("http://{}", gw.operator);
    let (_s, res) = dev
        .connect_with(&gw, &Cred::Nothing, ALL, &[("origin", &own)])
        .await;
    assert_eq!(
        error_code(&res).await,
        "unauthorized",
        "same origin still needs auth: {res}"
    );
    gw.shutdown.cancel();
}

#[tokio::test]
async fn writes_are_budgeted_per_device() {
    let gw = start_with(r#"{ writeRateLimit: { burst: 2, perMinute: 1 } }"#).await;
    ready(&gw).await;
    let (mut s, hello) = Device::new(7).connect(&gw, &gw_token(), ALL).await;
    assert_eq!(hello["ok"], true);
    for i in 0..2 {
        let r = call(
            &mut s,
            &format!("w{i}"),
            "chat.send",
            json!({ "text": format!("m{i}") }),
        )
        .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let r = call(&mut s, "w3", "chat.send", json!({ "text": "m3" })).await;
    assert_eq!(error_code(&r).await, "rate_limited", "{r}");
    assert!(r["error"]["retryable"].as_bool().unwrap());
    // Reads are not budgeted.
    for i in 0..5 {
        assert_eq!(
            call(&mut s, &format!("h{i}"), "health", json!({})).await["ok"],
            true
        );
    }
    gw.shutdown.cancel();
}

#[tokio::test]
async fn pairing_events_reach_only_connections_with_the_pairing_scope() {
    let gw = start().await;
    ready(&gw).await;
    let (mut admin, hello) = Device::new(1).connect(&gw, &gw_token(), ALL).await;
    assert_eq!(hello["ok"], true);
    let (mut reader, hello) = Device::new(2).connect(&gw, &gw_token(), &["read"]).await;
    assert_eq!(hello["payload"]["device"]["scopes"], json!(["read"]));

    let (_s, res) = Device::new(3)
        .connect_with(&gw, &gw_token(), ALL, FORWARDED)
        .await;
    assert_eq!(error_code(&res).await, "pairing_required");

    let event = loop {
        let f = recv(&mut admin).await.unwrap();
        if f["type"] == "event" && f["event"] == "device.pair.requested" {
            break f;
        }
    };
    assert_eq!(event["payload"]["deviceId"], Device::new(3).id());
    // The reader saw nothing of it: its next frame is the answer to its own request.
    let r = call(&mut reader, "h", "health", json!({})).await;
    assert_eq!(r["ok"], true);
    send(
        &mut reader,
        json!({ "type": "req", "id": "h2", "method": "health" }),
    )
    .await;
    let next = recv(&mut reader).await.unwrap();
    assert_eq!(
        next["type"], "res",
        "no pairing event for a read-only device: {next}"
    );
    gw.shutdown.cancel();
}

#[tokio::test]
async fn the_http_api_shares_lockouts_and_budgets_writes() {
    let gw = start_with(
        r#"{ http: { endpoints: { chatCompletions: { enabled: true } } }, writeRateLimit: { burst: 1, perMinute: 1 } }"#,
    )
    .await;
    ready(&gw).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", gw.operator);
    let body = json!({ "model": "main", "messages": [{ "role": "user", "content": "hi" }] });

    let first = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429, "write budget per address");
    assert!(second.headers().contains_key("retry-after"));

    // Ten wrong bearers lock the address out of the HTTP API, even for the right one.
    let models = format!("http://{}/v1/models", gw.operator);
    for _ in 0..10 {
        let r = client
            .get(&models)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = client.get(&models).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 429, "locked out");

    // A browser origin that is not allowed is refused before any credential check.
    let r = client
        .get(&models)
        .header("origin", "https://evil.example")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    gw.shutdown.cancel();
}
