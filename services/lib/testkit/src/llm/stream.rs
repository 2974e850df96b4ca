//! Turning pre-rendered frames into an HTTP body: paced, and optionally cut off.
//!
//! The renderers in `openai.rs` and `anthropic.rs` produce complete frames (an SSE event or
//! a JSON document); this module only decides *when* bytes go out and whether the body ends
//! cleanly or the connection is dropped.

use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::sync::watch;

/// How a body ends after its last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The body ends normally.
    Complete,
    /// The body fails, so the server closes the connection mid-response.
    Abort,
}

/// Frames to send, the pause between them and how the body ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frames {
    pub(crate) frames: Vec<String>,
    pub(crate) delay: Duration,
    pub(crate) ending: Ending,
}

/// Gives the client time to read what was sent before the connection is dropped, so a
/// "drop mid-stream" test sees the partial output and then the failure.
const FLUSH_BEFORE_ABORT: Duration = Duration::from_millis(50);

/// Streams `frames` as a body; pauses are cut short when the server stops.
pub(crate) fn body(frames: Frames, mut stop: watch::Receiver<bool>) -> Body {
    let Frames {
        frames,
        delay,
        ending,
    } = frames;
    let stream = async_stream::stream! {
        for (index, frame) in frames.into_iter().enumerate() {
            if index > 0 && !delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {},
                    _ = stop.wait_for(|stop| *stop) => {},
                }
            }
            yield Ok::<Bytes, std::io::Error>(Bytes::from(frame));
        }
        if ending == Ending::Abort {
            tokio::time::sleep(FLUSH_BEFORE_ABORT).await;
            yield Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the fake LLM dropped this response on purpose (Step::DropMidStream)",
            ));
        }
    };
    Body::from_stream(stream)
}

/// Splits text into word-sized deltas that concatenate back to the original text.
pub(crate) fn word_chunks(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

/// Splits a JSON string into small fragments the way providers stream tool arguments.
pub(crate) fn json_fragments(json: &str) -> Vec<String> {
    const FRAGMENT_CHARS: usize = 8;
    let chars: Vec<char> = json.chars().collect();
    chars
        .chunks(FRAGMENT_CHARS)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_back() {
        let text = "héllo  wörld, it's 🦀 time";
        assert_eq!(word_chunks(text).concat(), text);
        assert!(word_chunks(text).len() > 3);
        let json = r#"{"command":"echo 🦀 > a"}"#;
        assert_eq!(json_fragments(json).concat(), json);
        assert!(word_chunks("").is_empty());
    }
}
