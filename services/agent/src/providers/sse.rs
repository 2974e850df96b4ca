//! Server-sent events: an incremental parser ([`SseParser`], pure: bytes in, events out)
//! and a reader over a `reqwest` response body ([`SseReader`]). Follows the WHATWG
//! event-stream rules: lines end in LF, CR or CRLF; `event:` and `data:` fields; a blank
//! line dispatches; `:` lines are comments; `id:`/`retry:` are ignored.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental event-stream parser.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr && b == b'\n' {
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\r' || b == b'\n' {
                let line = std::mem::take(&mut self.line);
                if let Some(event) = self.process_line(&line) {
                    out.push(event);
                }
            } else {
                self.line.push(b);
            }
        }
        out
    }

    /// The end of the stream: an event still missing its blank line is dispatched, since
    /// some servers close the connection right after the last data line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        let from_line = if line.is_empty() {
            None
        } else {
            self.process_line(&line)
        };
        from_line.or_else(|| self.dispatch())
    }

    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

/// Reads events from a response body.
pub struct SseReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    ended: bool,
}

impl SseReader {
    /// Reads `response`'s body as an event stream.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            parser: SseParser::default(),
            queue: VecDeque::new(),
            ended: false,
        }
    }

    /// The next event; `Ok(None)` at the end of the body; `Err` when the body broke.
    pub async fn next_event(&mut self) -> Result<Option<SseEvent>, reqwest::Error> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.queue.extend(self.parser.feed(&chunk)),
                Some(Err(e)) => return Err(e),
                None => {
                    self.ended = true;
                    self.queue.extend(self.parser.finish());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn parses_fields_comments_and_line_endings() {
        let mut p = SseParser::default();
        let text = ": comment\r\nevent: ping\r\ndata: {}\r\n\r\ndata:a\ndata: b\n\nid: 1\nretry: 5\n\ndata: x\r\rdata: [DONE]\n\n";
        let events = p.feed(text.as_bytes());
        assert_eq!(
            events,
            vec![
                ev(Some("ping"), "{}"),
                ev(None, "a\nb"),
                ev(None, "x"),
                ev(None, "[DONE]")
            ]
        );
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn unterminated_last_event_is_dispatched_at_the_end() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: message_stop\ndata: {\"a\":1}").is_empty());
        assert_eq!(p.finish(), Some(ev(Some("message_stop"), "{\"a\":1}")));
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_events(
            datas in proptest::collection::vec("[a-zé€ {}:\"]{0,12}", 1..6),
            cuts in proptest::collection::vec(0usize..200, 0..8),
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let text: String = datas.iter().map(|d| format!("event: e{nl}data: {d}{nl}{nl}")).collect();
            let bytes = text.as_bytes();
            let mut whole = SseParser::default();
            let expected = whole.feed(bytes);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut parser = SseParser::default();
            let mut got = Vec::new();
            let mut start = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                got.extend(parser.feed(&bytes[start..p]));
                start = p;
            }
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(got.len(), datas.len());
        }
    }
}
