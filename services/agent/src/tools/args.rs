//! Strict parsing of a tool's JSON arguments: an object, only the keys the tool takes,
//! each of the right type. Every error is a sentence the model can act on.

use serde_json::{Map, Value};

/// A tool's arguments, checked to be an object with known keys only.
#[derive(Debug)]
pub struct Args {
    tool: &'static str,
    map: Map<String, Value>,
}

impl Args {
    /// Parses `json` for `tool`, which takes `keys` (the first `required` of them are
    /// required).
    pub fn parse(tool: &'static str, json: &str, keys: &[&str]) -> Result<Self, String> {
        let example = keys
            .iter()
            .map(|k| format!("{k:?}: ..."))
            .collect::<Vec<_>>()
            .join(", ");
        let value: Value = serde_json::from_str(json).map_err(|e| {
            format!("the arguments are not valid JSON ({e}); send an object like {{{example}}}")
        })?;
        let Value::Object(map) = value else {
            return Err(format!(
                "the arguments must be a JSON object like {{{example}}}"
            ));
        };
        if let Some(key) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            let known = keys
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "unknown argument {key:?}; {tool} takes only {known}"
            ));
        }
        Ok(Self { tool, map })
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String, String> {
        self.opt_string(key)?
            .ok_or_else(|| format!("{key:?} is missing; {} needs it", self.tool))
    }

    /// A required, non-blank string.
    pub fn non_empty(&self, key: &str) -> Result<String, String> {
        let s = self.string(key)?;
        if s.trim().is_empty() {
            return Err(format!("{key:?} is empty"));
        }
        Ok(s)
    }

    /// An optional string (`null` is absent).
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key:?} must be a string")),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{key:?} must be true or false")),
        }
    }

    /// An optional whole number from `min` to `max`.
    pub fn opt_u64(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!(
                    "{key:?} must be a whole number from {min} to {max}"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_tool_does_not_take() {
        let keys = ["path", "limit"];
        assert!(
            Args::parse("t", "nope", &keys)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            Args::parse("t", "[1]", &keys)
                .unwrap_err()
                .contains("JSON object")
        );
        let err = Args::parse("t", r#"{"path":"a","cwd":"/"}"#, &keys).unwrap_err();
        assert!(err.contains("unknown argument \"cwd\""), "{err}");
        assert!(err.contains("\"path\", \"limit\""), "{err}");
        let a = Args::parse(
            "t",
            r#"{"path":"a","limit":5,"x":null}"#,
            &["path", "limit", "x"],
        )
        .unwrap();
        assert_eq!(a.string("path").unwrap(), "a");
        assert_eq!(a.opt_u64("limit", 1, 10).unwrap(), Some(5));
        assert_eq!(a.opt_u64("x", 1, 10).unwrap(), None);
        assert!(a.opt_u64("limit", 6, 10).is_err());
        assert!(a.opt_bool("path").is_err());
        assert!(a.string("x").unwrap_err().contains("missing"));
    }
}
