//! Reading JSON the way the Docker engine will, only stricter.
//!
//! The engine decodes request bodies with Go's `encoding/json`, which matches an object key
//! to a struct field **case-insensitively** (`"privileged"` sets `Privileged`; so do the
//! Kelvin sign `K` for `k` and the long s `ſ` for `s`) and lets the **last** of two keys
//! for one field win. A check that looked only at `"Privileged"` would be bypassed by
//! `{"Privileged": false, "privileged": true}`. So:
//!
//! - [`parse_strict`] refuses any object holding two keys that Go would treat as one field;
//! - [`Fields`] looks keys up by their Go-folded form ([`fold`]) and reports the ones that
//!   are not on an allowlist.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A key as Go's `encoding/json` compares it to a field name: ASCII letters lower-cased,
/// `K` (U+212A KELVIN SIGN) as `k`, `ſ` (U+017F LATIN SMALL LETTER LONG S) as `s`. Other
/// non-ASCII characters stay as they are; they never fold onto an ASCII field name.
pub fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{212A}' => 'k',
            '\u{017F}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Parses `bytes` as one JSON value, refusing objects with keys that fold to the same name.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Strict(value) = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(fold(&key)) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice (keys are compared case-insensitively)"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Strict(Value::Object(object)))
    }
}

/// The members of one JSON object, by folded key. Built from an object parsed by
/// [`parse_strict`], so each folded key names one member.
#[derive(Debug)]
pub struct Fields<'a> {
    by_folded: BTreeMap<String, (&'a str, &'a Value)>,
}

impl<'a> Fields<'a> {
    /// The members of `object`.
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            by_folded: object
                .iter()
                .map(|(k, v)| (fold(k), (k.as_str(), v)))
                .collect(),
        }
    }

    /// The value of the field named `name` (Go's spelling), `None` when absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.by_folded.get(&fold(name)).map(|(_, v)| *v)
    }

    /// The members whose keys fold to none of `known` (as sent, with their values).
    pub fn unknown(&self, known: &[&str]) -> Vec<(&'a str, &'a Value)> {
        let known: HashSet<String> = known.iter().map(|k| fold(k)).collect();
        self.by_folded
            .iter()
            .filter(|(folded, _)| !known.contains(*folded))
            .map(|(_, (k, v))| (*k, *v))
            .collect()
    }
}

/// Whether `value` is what Go leaves a field at when it is absent: `null`, `false`, `0`, `""`.
/// Empty arrays and objects are **not** zero: for some fields (`MaskedPaths`) an empty list
/// means something different from no list.
pub fn is_zero_scalar(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Whether `value` is absent-like or an empty list/map.
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        other => is_zero_scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_matches_go() {
        assert_eq!(fold("Privileged"), "privileged");
        assert_eq!(fold("\u{212A}ernelMemory"), "kernelmemory");
        assert_eq!(fold("\u{017F}ecurityOpt"), "securityopt");
        assert_eq!(fold("Éa"), "Éa");
    }

    #[test]
    fn duplicates_are_refused_after_folding() {
        assert!(parse_strict(br#"{"a": 1, "A": 2}"#).is_err());
        assert!(parse_strict(br#"{"Sysctls": 1, "\u017fysctls": 2}"#).is_err());
        assert!(parse_strict(br#"{"a": {"b": 1, "b": 2}}"#).is_err());
        assert!(parse_strict(br#"[{"x": 1}, {"x": 2}]"#).is_ok());
    }

    #[test]
    fn trailing_data_is_refused() {
        assert!(parse_strict(br#"{"a": 1} {"b": 2}"#).is_err());
        assert!(parse_strict(b" {\"a\": 1} \n").is_ok());
    }

    #[test]
    fn fields_find_keys_in_any_case() {
        let v = parse_strict(br#"{"privileged": true, "Other": 1}"#).unwrap();
        let f = Fields::new(v.as_object().unwrap());
        assert_eq!(f.get("Privileged"), Some(&Value::Bool(true)));
        let unknown: Vec<_> = f
            .unknown(&["Privileged"])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(unknown, ["Other"]);
    }
}
