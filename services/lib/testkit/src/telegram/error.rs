//! [`ApiError`]: a Bot API failure and its wire shape.

use serde_json::{Value, json};

/// A Bot API error: `{"ok":false,"error_code":N,"description":...,"parameters":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) description: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(detail: &str) -> Self {
        Self::new(400, format!("Bad Request: {detail}"))
    }

    pub(crate) fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(429, format!("Too Many Requests: retry after {retry_after}"))
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.code,
            "description": self.description,
        });
        if let Some(retry_after) = self.retry_after {
            body["parameters"] = json!({ "retry_after": retry_after });
        }
        body
    }
}
