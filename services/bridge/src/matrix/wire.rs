//! The client-server API JSON the adapter reads (only the fields it uses; everything is
//! optional or defaulted so an unexpected shape skips an event instead of failing a sync).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// `GET /sync`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SyncResponse {
    /// The token for the next sync.
    pub next_batch: String,
    /// Rooms by membership.
    #[serde(default)]
    pub rooms: Rooms,
}

/// The `rooms` of a sync.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rooms {
    /// Rooms we are joined to.
    #[serde(default)]
    pub join: HashMap<String, JoinedRoom>,
    /// Rooms we are invited to.
    #[serde(default)]
    pub invite: HashMap<String, InvitedRoom>,
}

/// A joined room's update.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JoinedRoom {
    /// Member counts (sent when they changed).
    #[serde(default)]
    pub summary: Summary,
    /// State before the timeline (lazy-loaded members).
    #[serde(default)]
    pub state: Events,
    /// New events.
    #[serde(default)]
    pub timeline: Timeline,
}

/// A room's new events.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Timeline {
    /// The events, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    /// True when older events were left out (a gap).
    #[serde(default)]
    pub limited: bool,
}

/// A room summary.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Summary {
    /// How many users are joined.
    #[serde(rename = "m.joined_member_count")]
    pub joined_member_count: Option<u64>,
}

/// A list of events.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Events {
    /// The events, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// An invited room.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvitedRoom {
    /// Stripped state of the room, including our invite.
    #[serde(default)]
    pub invite_state: Events,
}

/// A room event (timeline or state; stripped state has no id or timestamp).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    /// The event type.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Who sent it.
    #[serde(default)]
    pub sender: String,
    /// Its id (absent in stripped state).
    #[serde(default)]
    pub event_id: String,
    /// The state key of state events.
    pub state_key: Option<String>,
    /// Server timestamp, ms.
    #[serde(default)]
    pub origin_server_ts: i64,
    /// The content (shape depends on the type).
    #[serde(default)]
    pub content: Value,
}

/// `POST /login` and `GET /account/whoami` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct UserIdAnswer {
    /// The full user id.
    pub user_id: String,
}

/// `POST /login`.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginAnswer {
    /// The full user id.
    pub user_id: String,
    /// The new access token.
    pub access_token: String,
}

/// `PUT /rooms/{room}/send/...`.
#[derive(Debug, Clone, Deserialize)]
pub struct SendAnswer {
    /// The new event's id.
    pub event_id: String,
}

/// A Matrix error body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// E.g. `M_UNKNOWN_TOKEN`.
    #[serde(default)]
    pub errcode: String,
    /// Human-readable text.
    #[serde(default)]
    pub error: String,
    /// For `M_LIMIT_EXCEEDED`.
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sync_response_is_read() {
        let body = r#"{
            "next_batch": "s72595_4483_1934",
            "account_data": {"events": []},
            "rooms": {
                "join": {"!r:x": {
                    "summary": {"m.joined_member_count": 2, "m.heroes": ["@a:x"]},
                    "state": {"events": [{"type": "m.room.member", "state_key": "@a:x", "sender": "@a:x", "content": {"membership": "join", "displayname": "A"}}]},
                    "timeline": {"limited": true, "prev_batch": "t1", "events": [
                        {"type": "m.room.message", "event_id": "$1", "sender": "@a:x", "origin_server_ts": 5, "content": {"msgtype": "m.text", "body": "hi"}},
                        {"type": "m.room.message", "event_id": "$2", "sender": "@a:x", "content": null}
                    ]},
                    "ephemeral": {"events": []}
                }},
                "invite": {"!i:x": {"invite_state": {"events": [{"type": "m.room.member", "state_key": "@b:x", "sender": "@a:x", "content": {"membership": "invite", "is_direct": true}}]}}},
                "leave": {}
            }
        }"#;
        let sync: SyncResponse = serde_json::from_str(body).unwrap();
        assert_eq!(sync.next_batch, "s72595_4483_1934");
        let room = &sync.rooms.join["!r:x"];
        assert_eq!(room.summary.joined_member_count, Some(2));
        assert!(room.timeline.limited);
        assert_eq!(room.timeline.events.len(), 2);
        assert_eq!(room.timeline.events[0].origin_server_ts, 5);
        assert_eq!(sync.rooms.invite["!i:x"].invite_state.events.len(), 1);
        let error: ErrorBody =
            serde_json::from_str(r#"{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 20}"#)
                .unwrap();
        assert_eq!(error.retry_after_ms, Some(20));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::hash_map(
                    prop_oneof![
                        Just("next_batch".to_owned()),
                        Just("rooms".to_owned()),
                        Just("join".to_owned()),
                        Just("timeline".to_owned()),
                        Just("events".to_owned()),
                        Just("content".to_owned()),
                        ".{0,6}".prop_map(String::from),
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in json_value(), bytes in any::<Vec<u8>>()) {
            let _ = serde_json::from_value::<SyncResponse>(value.clone());
            let _ = serde_json::from_value::<ErrorBody>(value);
            let _ = serde_json::from_slice::<SyncResponse>(&bytes);
        }

        #[test]
        fn events_round_trip(body in ".{0,40}", ts in any::<i64>()) {
            let event = serde_json::json!({"type": "m.room.message", "event_id": "$e", "sender": "@a:x", "origin_server_ts": ts, "content": {"msgtype": "m.text", "body": body}});
            let parsed: Event = serde_json::from_value(event).unwrap();
            prop_assert_eq!(parsed.origin_server_ts, ts);
            prop_assert_eq!(parsed.content["body"].as_str(), Some(body.as_str()));
        }
    }
}
