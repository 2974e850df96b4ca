//! Helpers shared by the fidelity tests: an SSE parser and a JSON shape comparison.
#![allow(dead_code)]

use serde_json::Value;

/// One server-sent event: its `event:` name (if any) and its `data:` payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("bad JSON {:?}: {e}", self.data))
    }
}

/// Parses an SSE body (`event:`/`data:` lines, events separated by a blank line).
pub fn parse_sse(body: &str) -> Vec<Event> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event:") {
                    name = Some(rest.trim().to_owned());
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data.push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
                }
            }
            Event {
                name,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// Checks that `ours` has every key of the documented example `doc`, with the same JSON
/// type wherever both are non-null (arrays are compared by their first element).
pub fn assert_same_shape(doc: &Value, ours: &Value) {
    if let Err(path) = shape(doc, ours, "$") {
        panic!("shape differs from the documented example at {path}\n doc: {doc}\n ours: {ours}");
    }
}

fn shape(doc: &Value, ours: &Value, path: &str) -> Result<(), String> {
    match (doc, ours) {
        (Value::Null, _) | (_, Value::Null) => Ok(()),
        (Value::Object(doc), Value::Object(ours)) => {
            for (key, doc_value) in doc {
                let Some(our_value) = ours.get(key) else {
                    return Err(format!("{path}.{key} (missing)"));
                };
                shape(doc_value, our_value, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(doc), Value::Array(ours)) => match (doc.first(), ours.first()) {
            (Some(doc), Some(ours)) => shape(doc, ours, &format!("{path}[0]")),
            _ => Ok(()),
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        _ => Err(format!("{path} (type)")),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
