//! The proxy's request-line parser on arbitrary input (the property twin of the
//! `proxy_targets` fuzz target): it never panics, and whatever it accepts is a target the
//! fetcher's URL rules accept too, with a port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Uri};
use pincer_egress::proxy::read_request_target;
use proptest::prelude::*;

fn check(method: &str, target: &str) {
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method.as_bytes()), target.parse::<Uri>())
    else {
        return;
    };
    if let Ok((host, port)) = read_request_target(&method, &uri) {
        assert!(port > 0, "{method} {target} → port 0");
        let url = if host.contains(':') {
            format!("http://[{host}]:{port}/")
        } else {
            format!("http://{host}:{port}/")
        };
        assert!(
            pincer_egress::CheckedUrl::parse(&url).is_ok(),
            "{method} {target} accepted as {host}:{port}, which the URL rules refuse"
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_request_lines_never_panic(
        method in prop_oneof![Just("CONNECT".to_owned()), Just("GET".to_owned()), "[A-Z]{1,8}"],
        target in "\\PC{0,80}",
    ) {
        check(&method, &target);
    }

    #[test]
    fn host_port_shapes_never_panic(
        host in prop_oneof![
            "[a-z0-9.-]{0,30}",
            "[0-9]{1,12}",
            "0x[0-9a-f]{1,8}",
            "\\[[0-9a-f:.]{0,40}\\]",
            "[a-z]{1,5}@[a-z.]{1,10}",
        ],
        port in prop_oneof![Just(String::new()), "[0-9]{1,6}"],
    ) {
        let target = if port.is_empty() { host.clone() } else { format!("{host}:{port}") };
        check("CONNECT", &target);
        check("GET", &format!("http://{target}/x"));
    }
}

#[test]
fn known_answers() {
    let connect = |t: &str| read_request_target(&Method::CONNECT, &t.parse().unwrap());
    assert_eq!(connect("example.com:443"), Ok(("example.com".into(), 443)));
    assert!(connect("2130706433:443").is_err(), "decimal IPv4 refused");
    let get = |t: &str| read_request_target(&Method::GET, &t.parse().unwrap());
    assert_eq!(get("http://example.com/a"), Ok(("example.com".into(), 80)));
    assert!(get("/a").unwrap_err().contains("origin-form"));
}
