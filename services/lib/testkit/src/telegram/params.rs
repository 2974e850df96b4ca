//! Method parameters, gathered the ways the Bot API accepts them: the URL query string, an
//! `application/json` body or an `application/x-www-form-urlencoded` body.
//!
//! Query and form values arrive as strings, so the accessors accept numbers and booleans
//! as strings too, and JSON-typed parameters (`reply_parameters`, `allowed_updates`) as
//! JSON-serialized strings, like Telegram does.

use serde_json::{Map, Value};

use super::error::ApiError;

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Params(Map<String, Value>);

impl Params {
    pub(crate) fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut params = Map::new();
        if let Some(query) = query {
            extend_form(&mut params, query.as_bytes())?;
        }
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        match media_type.as_deref() {
            _ if body.iter().all(u8::is_ascii_whitespace) => {}
            Some("application/json") => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(object)) => params.extend(object),
                Ok(_) | Err(_) => {
                    return Err(ApiError::bad_request("can't parse JSON object"));
                }
            },
            Some("application/x-www-form-urlencoded") => extend_form(&mut params, body)?,
            Some(other) => {
                return Err(ApiError::bad_request(&format!(
                    "unsupported Content-Type {other} (the fake accepts JSON, form and query parameters)"
                )));
            }
            None => extend_form(&mut params, body)?,
        }
        Ok(Self(params))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|value| !value.is_null())
    }

    /// An integer parameter; numeric strings are accepted.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(&format!("invalid {name} specified"))),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_parse| ApiError::bad_request(&format!("invalid {name} specified"))),
            Some(_) => Err(ApiError::bad_request(&format!("invalid {name} specified"))),
        }
    }

    /// A string parameter; numbers and booleans are rendered as text.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// A boolean parameter: `true`, `"true"` or `"1"`.
    pub(crate) fn flag(&self, name: &str) -> bool {
        match self.0.get(name) {
            Some(Value::Bool(flag)) => *flag,
            Some(Value::String(text)) => matches!(text.as_str(), "true" | "True" | "1"),
            Some(Value::Number(number)) => number.as_i64() == Some(1),
            _ => false,
        }
    }

    /// A JSON-typed parameter, given as JSON or as a JSON-serialized string.
    pub(crate) fn json(&self, name: &str) -> Result<Option<Value>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => serde_json::from_str(text).map(Some).map_err(|_parse| {
                ApiError::bad_request(&format!("can't parse {name} JSON object"))
            }),
            Some(value) => Ok(Some(value.clone())),
        }
    }
}

/// `getUpdates` parameters after Telegram's clamping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpdatesQuery {
    pub(crate) offset: i64,
    pub(crate) limit: usize,
    pub(crate) timeout_secs: u64,
    pub(crate) allowed_updates: Option<Vec<String>>,
}

/// The longest long poll the Bot API server holds a request for.
const MAX_POLL_TIMEOUT_SECS: i64 = 50;

impl UpdatesQuery {
    pub(crate) fn parse(params: &Params) -> Result<Self, ApiError> {
        let allowed_updates = match params.json("allowed_updates")? {
            None => None,
            Some(Value::Array(kinds)) => Some(
                kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ),
            Some(_) => return Err(ApiError::bad_request("can't parse allowed_updates")),
        };
        let limit = params.int("limit")?.unwrap_or(100).clamp(1, 100);
        let timeout = params
            .int("timeout")?
            .unwrap_or(0)
            .clamp(0, MAX_POLL_TIMEOUT_SECS);
        Ok(Self {
            offset: params.int("offset")?.unwrap_or(0),
            limit: usize::try_from(limit).unwrap_or(100),
            timeout_secs: u64::try_from(timeout).unwrap_or(0),
            allowed_updates,
        })
    }
}

fn extend_form(params: &mut Map<String, Value>, form: &[u8]) -> Result<(), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(form)
        .map_err(|_parse| ApiError::bad_request("can't parse URL-encoded parameters"))?;
    params.extend(
        pairs
            .into_iter()
            .map(|(key, value)| (key, Value::String(value))),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_form_and_json_values_read_alike() {
        let form = Params::parse(
            Some("offset=5"),
            Some("application/x-www-form-urlencoded"),
            b"chat_id=-100123&reply_parameters=%7B%22message_id%22%3A7%7D&drop_pending_updates=true",
        )
        .unwrap();
        assert_eq!(form.int("offset").unwrap(), Some(5));
        assert_eq!(form.int("chat_id").unwrap(), Some(-100_123));
        assert_eq!(
            form.json("reply_parameters").unwrap(),
            Some(serde_json::json!({"message_id": 7}))
        );
        assert!(form.flag("drop_pending_updates"));
        let json = Params::parse(None, Some("application/json"), br#"{"chat_id":"42"}"#).unwrap();
        assert_eq!(json.int("chat_id").unwrap(), Some(42));
        assert!(json.int("missing").unwrap().is_none());
        assert!(Params::parse(None, Some("application/json"), b"[1]").is_err());
    }
}
