//! The working directory of a call: a path relative to the agent's workspace, normalised
//! lexically (`.` and empty parts dropped, `a/..` folded) and refused when it is absolute,
//! climbs above the workspace, or holds NUL bytes. Pure.

use std::fmt;

/// Longest accepted cwd, in bytes.
pub const MAX_CWD_BYTES: usize = 4096;
/// Longest accepted path component, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a cwd was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CwdError {
    /// It starts with `/`.
    #[error("cwd {0:?} is absolute; give a path relative to the workspace (\"\" for its root)")]
    Absolute(String),
    /// `..` climbs above the workspace.
    #[error("cwd {0:?} climbs above the workspace with \"..\"")]
    Escapes(String),
    /// It contains a NUL byte.
    #[error("cwd contains a NUL byte")]
    Nul,
    /// It is too long.
    #[error(
        "cwd is {0} bytes long; the limit is {MAX_CWD_BYTES} (and {MAX_COMPONENT_BYTES} per component)"
    )]
    TooLong(usize),
}

/// A normalised relative working directory: plain components only, never `.`, `..` or
/// empty ones. The empty path is the workspace root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelativeCwd(Vec<String>);

impl RelativeCwd {
    /// Parses and normalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, CwdError> {
        if raw.contains('\0') {
            return Err(CwdError::Nul);
        }
        if raw.len() > MAX_CWD_BYTES {
            return Err(CwdError::TooLong(raw.len()));
        }
        if raw.starts_with('/') {
            return Err(CwdError::Absolute(raw.to_owned()));
        }
        let mut parts: Vec<String> = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(CwdError::Escapes(raw.to_owned()));
                    }
                }
                plain if plain.len() > MAX_COMPONENT_BYTES => {
                    return Err(CwdError::TooLong(plain.len()));
                }
                plain => parts.push(plain.to_owned()),
            }
        }
        Ok(Self(parts))
    }

    /// The plain components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The directory under `root` (an absolute path inside the sandbox, e.g. `/workspace`).
    pub fn under(&self, root: &str) -> String {
        let mut path = root.trim_end_matches('/').to_owned();
        for part in &self.0 {
            path.push('/');
            path.push_str(part);
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }
}

impl fmt::Display for RelativeCwd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises() {
        let cases = [
            ("", ""),
            (".", ""),
            ("a/b", "a/b"),
            ("./a//b/", "a/b"),
            ("a/../b", "b"),
            ("a/b/../../c/.", "c"),
            ("...", "..."),
            ("a/..b", "a/..b"),
        ];
        for (raw, want) in cases {
            assert_eq!(RelativeCwd::parse(raw).unwrap().to_string(), want, "{raw}");
        }
        assert_eq!(
            RelativeCwd::parse("a/b").unwrap().under("/workspace"),
            "/workspace/a/b"
        );
        assert_eq!(
            RelativeCwd::parse("").unwrap().under("/workspace"),
            "/workspace"
        );
    }

    #[test]
    fn refuses() {
        assert!(matches!(
            RelativeCwd::parse("/etc"),
            Err(CwdError::Absolute(_))
        ));
        assert!(matches!(
            RelativeCwd::parse(".."),
            Err(CwdError::Escapes(_))
        ));
        assert!(matches!(
            RelativeCwd::parse("a/../.."),
            Err(CwdError::Escapes(_))
        ));
        assert!(matches!(
            RelativeCwd::parse("a/../../b"),
            Err(CwdError::Escapes(_))
        ));
        assert_eq!(RelativeCwd::parse("a\0b"), Err(CwdError::Nul));
        assert!(matches!(
            RelativeCwd::parse(&"a/".repeat(3000)),
            Err(CwdError::TooLong(_))
        ));
        assert!(matches!(
            RelativeCwd::parse(&"x".repeat(256)),
            Err(CwdError::TooLong(_))
        ));
    }

    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("...".to_owned()),
            "[a-z.]{1,4}",
            "[^/\u{0}]{1,6}",
        ]
    }

    /// Resolves `path` lexically below `/ws`, the way a kernel would without symlinks;
    /// `..` at the root stays at the root (like `/..`).
    fn resolve_below_root(path: &str) -> Vec<String> {
        let mut stack: Vec<String> = vec!["ws".into()];
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                p => stack.push(p.to_owned()),
            }
        }
        stack
    }

    proptest! {
        #[test]
        fn no_generated_cwd_escapes(parts in proptest::collection::vec(component(), 0..12), lead in any::<bool>()) {
            let raw = format!("{}{}", if lead { "/" } else { "" }, parts.join("/"));
            match RelativeCwd::parse(&raw) {
                Ok(cwd) => {
                    for c in cwd.components() {
                        prop_assert!(!c.is_empty() && c != "." && c != "..");
                        prop_assert!(!c.contains('/') && !c.contains('\0'));
                    }
                    let inside = cwd.under("/ws");
                    prop_assert!(inside == "/ws" || inside.starts_with("/ws/"));
                    // The normalised form resolves to the same place as the raw input.
                    let resolved = resolve_below_root(&raw);
                    prop_assert_eq!(resolved.first().map(String::as_str), Some("ws"));
                    prop_assert_eq!(&resolved[1..], cwd.components());
                    // Normalising is idempotent.
                    prop_assert_eq!(RelativeCwd::parse(&cwd.to_string()), Ok(cwd.clone()));
                }
                Err(CwdError::Absolute(_)) => prop_assert!(raw.starts_with('/')),
                Err(CwdError::Escapes(_)) => prop_assert!(raw.contains("..")),
                Err(CwdError::Nul) | Err(CwdError::TooLong(_)) => {}
            }
        }
    }
}
