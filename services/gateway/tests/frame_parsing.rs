//! The stable-toolchain twin of the `frames` fuzz target: the gateway's parser for client
//! frames never panics on arbitrary bytes, on arbitrary JSON, or on valid frames with
//! fields mutated; and it accepts what a real client sends.

#![allow(clippy::unwrap_used)]

use pincer_gateway::operator::frames::parse_untrusted;
use proptest::prelude::*;
use serde_json::{Value, json};

fn valid_connect() -> Value {
    json!({ "type": "req", "id": "1", "method": "connect", "params": {
        "minProtocol": 2, "maxProtocol": 2,
        "client": { "id": "pincer-cli", "version": "0.1", "mode": "cli" },
        "role": "operator", "scopes": ["read", "write"],
        "auth": { "token": "t" },
        "device": { "id": "a".repeat(64), "publicKey": "A".repeat(43), "signature": "A".repeat(86),
                    "signedAt": 1, "nonce": "A".repeat(43) } } })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,80}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn a_real_connect_frame_parses() {
    assert!(parse_untrusted(valid_connect().to_string().as_bytes()));
    let mut bad = valid_connect();
    bad["params"]["role"] = json!("root");
    assert!(!parse_untrusted(bad.to_string().as_bytes()));
    let mut extra = valid_connect();
    extra["params"]["approved"] = json!(true);
    assert!(
        !parse_untrusted(extra.to_string().as_bytes()),
        "unknown fields are refused"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_untrusted(&data);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let _ = parse_untrusted(v.to_string().as_bytes());
    }

    #[test]
    fn mutated_connect_fields_never_panic(
        field in prop::sample::select(vec!["role", "scopes", "client", "auth", "device", "minProtocol", "maxProtocol"]),
        sub in prop::sample::select(vec!["id", "publicKey", "signature", "signedAt", "nonce", "mode", "token", "deviceToken"]),
        value in json_value(),
    ) {
        let mut frame = valid_connect();
        if frame["params"][field].is_object() {
            frame["params"][field][sub] = value;
        } else {
            frame["params"][field] = value;
        }
        let _ = parse_untrusted(frame.to_string().as_bytes());
    }

    #[test]
    fn device_methods_never_panic(method in "devices\\.[a-z]{0,8}", v in json_value()) {
        let frame = json!({ "type": "req", "id": "x", "method": method, "params": v });
        let _ = parse_untrusted(frame.to_string().as_bytes());
    }
}
