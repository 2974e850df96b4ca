//! The gateway behind a real nginx on loopback (TESTING.md, SECURITY.md "Gateway
//! exposure"). nginx connects to the gateway from 127.0.0.2; clients connect to nginx from
//! 127.0.0.3 and 127.0.0.4.
//!
//! - Without `trustedProxies`, proxied requests are not local (no auto-approval) and need
//!   authentication; every client shares the proxy's address.
//! - With `trustedProxies: ["127.0.0.2"]`, the real client address is used: one client's
//!   lockout does not lock out another.
//! - A spoofed `X-Forwarded-For` sent through the proxy changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use pincer_testkit::nginx::Nginx;

const PROXY_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const CLIENT_A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const CLIENT_B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));

/// Connects through nginx from `source` with `headers`; returns the connect response.
async fn via(
    nginx: &Nginx,
    dev: &Device,
    source: IpAddr,
    cred: &Cred,
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let mut socket = ws_from(nginx.addr, Some(source), headers).await.unwrap();
    let nonce = challenge(&mut socket).await;
    send(&mut socket, dev.connect_frame(&nonce, cred, ALL)).await;
    recv(&mut socket).await.unwrap()
}

fn wrong() -> Cred {
    Cred::Gateway("wrong-token-wrong-token-wrong-token-00".into())
}

#[tokio::test]
async fn without_trusted_proxies_proxied_requests_are_remote_and_share_one_address() {
    let gw = start().await;
    ready(&gw).await;
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::reverse_proxy(dir.path(), gw.operator, Some(PROXY_FROM)).unwrap();
    let dev = Device::new(1);

    // From loopback through the proxy: authentication still required…
    let res = via(&nginx, &dev, CLIENT_A, &Cred::Nothing, &[]).await;
    assert_eq!(res["error"]["code"], "unauthorized", "{res}");
    // …and with it, the device is not auto-approved: the request is not local.
    let res = via(&nginx, &dev, CLIENT_A, &Cred::Gateway(TOKEN.into()), &[]).await;
    assert_eq!(res["error"]["code"], "pairing_required", "{res}");

    // All proxied clients are one address (the proxy's): A's failures lock out B too.
    for _ in 0..9 {
        let res = via(&nginx, &dev, CLIENT_A, &wrong(), &[]).await;
        assert_eq!(res["error"]["code"], "unauthorized");
    }
    let res = via(&nginx, &dev, CLIENT_B, &Cred::Gateway(TOKEN.into()), &[]).await;
    assert_eq!(
        res["error"]["code"], "rate_limited",
        "shared proxy address: {res}"
    );
    gw.shutdown.cancel();
}

#[tokio::test]
async fn with_trusted_proxies_the_real_client_address_is_used_and_spoofing_fails() {
    let gw = start_with(r#"{ trustedProxies: ["127.0.0.2"] }"#).await;
    ready(&gw).await;
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::reverse_proxy(dir.path(), gw.operator, Some(PROXY_FROM)).unwrap();
    let dev = Device::new(2);

    // Client A fails ten times while claiming to be someone else each time.
    for i in 0..10 {
        let spoof = format!("192.0.2.{i}");
        let res = via(
            &nginx,
            &dev,
            CLIENT_A,
            &wrong(),
            &[("x-forwarded-for", &spoof)],
        )
        .await;
        assert_eq!(res["error"]["code"], "unauthorized", "{res}");
    }
    // A is locked out whatever it claims, even with the right token.
    let res = via(
        &nginx,
        &dev,
        CLIENT_A,
        &Cred::Gateway(TOKEN.into()),
        &[("x-forwarded-for", "192.0.2.99")],
    )
    .await;
    assert_eq!(
        res["error"]["code"], "rate_limited",
        "spoofed hop ignored: {res}"
    );
    let res = via(
        &nginx,
        &dev,
        CLIENT_A,
        &Cred::Gateway(TOKEN.into()),
        &[("x-forwarded-for", "127.0.0.1")],
    )
    .await;
    assert_eq!(res["error"]["code"], "rate_limited", "{res}");

    // Client B is another address: not locked out, but proxied, so not local either.
    let res = via(&nginx, &dev, CLIENT_B, &Cred::Gateway(TOKEN.into()), &[]).await;
    assert_eq!(res["error"]["code"], "pairing_required", "{res}");

    // The owner's pending list shows B's real address.
    let mut owner = Device::new(9);
    let (mut admin, hello) = owner.connect(&gw, &Cred::Gateway(TOKEN.into()), ALL).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let list = call(&mut admin, "l", "devices.list", serde_json::json!({})).await;
    let entry = list["payload"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == dev.id())
        .cloned()
        .unwrap();
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["remote"], "127.0.0.4", "{entry}");
    gw.shutdown.cancel();
}
