//! Outbound event contents and their transaction ids (pure).
//!
//! Each chunk of a reply is one `m.room.message` (`m.text`) with a plain `body` and an
//! `org.matrix.custom.html` `formatted_body`, both rendered from the chunk's Markdown.
//! The first chunk replies to `reply_to`; in a thread every chunk carries the `m.thread`
//! relation, with `in_reply_to` pointing at the real reply target (first chunk,
//! `is_falling_back: false`) or at the thread root as the fallback for clients without
//! threads (`is_falling_back: true`).
//!
//! # Transaction ids
//!
//! The homeserver de-duplicates `PUT /send/…/{txnId}` per access token (device), so a
//! retried request with the same id never posts twice. [`OutboundText`](crate::adapter::OutboundText)
//! carries no delivery id, so the id is derived from what identifies a chunk of a delivery:
//! the room, the thread, the reply target, the chunk index, the whole text and the chunk
//! itself (a 128-bit FNV-1a over length-prefixed fields, stable across processes and
//! releases). A retry of a delivery — in this process or by the next replica using the same
//! device — reuses the ids of the chunks it re-sends. The cost: the very same text sent as
//! the same reply (same room, thread and reply target) within the server's transaction
//! memory is sent once, which for one reply to one message is what we want anyway.

use serde_json::{Value, json};

use crate::format::{Markup, render};

/// The transaction id of chunk `index` of a delivery.
pub fn txn_id(
    room_id: &str,
    thread_id: Option<&str>,
    reply_to: Option<&str>,
    index: usize,
    text: &str,
    chunk: &str,
) -> String {
    let mut hash = Fnv128::new();
    hash.field(room_id.as_bytes());
    hash.field(thread_id.unwrap_or_default().as_bytes());
    hash.field(reply_to.unwrap_or_default().as_bytes());
    hash.field(&(index as u64).to_be_bytes());
    hash.field(text.as_bytes());
    hash.field(chunk.as_bytes());
    format!("pincer.{:032x}", hash.0)
}

/// 128-bit FNV-1a.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// A length-prefixed field, so field boundaries cannot be shifted.
    fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_be_bytes());
        self.bytes(bytes);
    }
}

/// The content of chunk `index` (Markdown `chunk`).
pub fn message_content(
    chunk: &str,
    index: usize,
    reply_to: Option<&str>,
    thread_id: Option<&str>,
) -> Value {
    let mut content = json!({
        "msgtype": "m.text",
        "body": render(chunk, Markup::Plain),
        "format": "org.matrix.custom.html",
        "formatted_body": render(chunk, Markup::Html),
    });
    let reply_to = reply_to.filter(|_| index == 0);
    let relation = match (thread_id, reply_to) {
        (Some(root), reply) => Some(json!({
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": reply.is_none(),
            "m.in_reply_to": { "event_id": reply.unwrap_or(root) },
        })),
        (None, Some(reply)) => Some(json!({ "m.in_reply_to": { "event_id": reply } })),
        (None, None) => None,
    };
    if let (Some(relation), Some(object)) = (relation, content.as_object_mut()) {
        object.insert("m.relates_to".to_owned(), relation);
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_ids_are_stable_and_distinct() {
        let a = txn_id("!r:x", None, Some("$e"), 0, "hello", "hello");
        assert_eq!(a, txn_id("!r:x", None, Some("$e"), 0, "hello", "hello"));
        assert!(a.starts_with("pincer.") && a.len() == 7 + 32);
        for other in [
            txn_id("!s:x", None, Some("$e"), 0, "hello", "hello"),
            txn_id("!r:x", Some("$t"), Some("$e"), 0, "hello", "hello"),
            txn_id("!r:x", None, Some("$f"), 0, "hello", "hello"),
            txn_id("!r:x", None, None, 0, "hello", "hello"),
            txn_id("!r:x", None, Some("$e"), 1, "hello", "hello"),
            txn_id("!r:x", None, Some("$e"), 0, "hello!", "hello"),
            txn_id("!r:x", None, Some("$e"), 0, "hello", "hell"),
        ] {
            assert_ne!(a, other);
        }
        // Field boundaries matter.
        assert_ne!(
            txn_id("!r:x", Some("ab"), Some("c"), 0, "", ""),
            txn_id("!r:x", Some("a"), Some("bc"), 0, "", "")
        );
    }

    #[test]
    fn replies_and_threads() {
        let plain = message_content("**bold**", 0, None, None);
        assert_eq!(plain["msgtype"], "m.text");
        assert_eq!(plain["format"], "org.matrix.custom.html");
        assert!(
            plain["formatted_body"]
                .as_str()
                .unwrap_or_default()
                .contains("<strong>bold</strong>")
        );
        assert!(plain.get("m.relates_to").is_none());
        let reply = message_content("x", 0, Some("$e"), None);
        assert_eq!(reply["m.relates_to"]["m.in_reply_to"]["event_id"], "$e");
        let second = message_content("x", 1, Some("$e"), None);
        assert!(second.get("m.relates_to").is_none());
        let thread = message_content("x", 0, Some("$e"), Some("$root"));
        assert_eq!(thread["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(thread["m.relates_to"]["event_id"], "$root");
        assert_eq!(thread["m.relates_to"]["is_falling_back"], false);
        assert_eq!(thread["m.relates_to"]["m.in_reply_to"]["event_id"], "$e");
        let later = message_content("x", 2, Some("$e"), Some("$root"));
        assert_eq!(later["m.relates_to"]["is_falling_back"], true);
        assert_eq!(later["m.relates_to"]["m.in_reply_to"]["event_id"], "$root");
    }
}
