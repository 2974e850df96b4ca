//! A path inside the agent's workspace, as the caller wrote it: relative, normalised
//! lexically (`.` and empty parts dropped, `a/..` folded), refused when it is absolute,
//! climbs above the workspace, holds a NUL byte or is too long. Pure.
//!
//! Lexical folding only ever shortens a path inside the workspace; the kernel still
//! resolves the result beneath the workspace directory (`openat2` with `RESOLVE_BENEATH`),
//! so symbolic links cannot take it out either.

use std::fmt;

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty (or only `.`) where a file is needed.
    #[error("the path is empty; give a file path relative to the workspace, e.g. \"notes.md\"")]
    Empty,
    /// It starts with `/`.
    #[error(
        "path {0:?} is absolute; give a path relative to the workspace (it is the working directory)"
    )]
    Absolute(String),
    /// `..` climbs above the workspace.
    #[error("path {0:?} climbs above the workspace with \"..\"")]
    Escapes(String),
    /// It contains a NUL byte.
    #[error("the path contains a NUL byte")]
    Nul,
    /// It is too long.
    #[error(
        "the path is {0} bytes long; the limit is {MAX_PATH_BYTES} (and {MAX_COMPONENT_BYTES} per component)"
    )]
    TooLong(usize),
}

/// A normalised relative path: plain components only (never `.`, `..` or empty ones).
/// The empty path is the workspace root.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct WorkspacePath(Vec<String>);

impl WorkspacePath {
    /// Parses and normalises `raw`; `""` and `"."` are the workspace root.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(raw.len()));
        }
        if raw.starts_with('/') {
            return Err(PathError::Absolute(raw.to_owned()));
        }
        let mut parts: Vec<String> = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escapes(raw.to_owned()));
                    }
                }
                plain if plain.len() > MAX_COMPONENT_BYTES => {
                    return Err(PathError::TooLong(plain.len()));
                }
                plain => parts.push(plain.to_owned()),
            }
        }
        Ok(Self(parts))
    }

    /// Parses `raw` as a file path: like [`WorkspacePath::parse`], but the root is refused.
    pub fn parse_file(raw: &str) -> Result<Self, PathError> {
        let path = Self::parse(raw)?;
        if path.is_root() {
            return Err(PathError::Empty);
        }
        Ok(path)
    }

    /// Whether this is the workspace root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The plain components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The parent directory and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(WorkspacePath, &str)> {
        let (last, parent) = self.0.split_last()?;
        Some((WorkspacePath(parent.to_vec()), last.as_str()))
    }

    /// `self/name` (`name` must be a plain component).
    pub fn child(&self, name: &str) -> WorkspacePath {
        let mut parts = self.0.clone();
        parts.push(name.to_owned());
        WorkspacePath(parts)
    }

    /// The path as given to the kernel, relative to the workspace directory (`.` for
    /// the root).
    pub fn relative(&self) -> String {
        if self.0.is_empty() {
            ".".to_owned()
        } else {
            self.0.join("/")
        }
    }
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.relative())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises() {
        for (raw, want) in [
            ("", "."),
            (".", "."),
            ("a.txt", "a.txt"),
            ("./a//b/", "a/b"),
            ("a/../b", "b"),
            ("a/b/../../c/.", "c"),
            ("...", "..."),
            ("a/..b", "a/..b"),
        ] {
            assert_eq!(WorkspacePath::parse(raw).unwrap().relative(), want, "{raw}");
        }
        let p = WorkspacePath::parse("a/b/c.txt").unwrap();
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((parent.relative().as_str(), name), ("a/b", "c.txt"));
        assert!(WorkspacePath::default().split_last().is_none());
    }

    #[test]
    fn refuses() {
        assert!(matches!(
            WorkspacePath::parse("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        for escape in ["..", "../x", "a/../../x", "a/b/../../../x", "./.."] {
            assert!(
                matches!(WorkspacePath::parse(escape), Err(PathError::Escapes(_))),
                "{escape}"
            );
        }
        assert_eq!(WorkspacePath::parse("a\0b"), Err(PathError::Nul));
        assert!(matches!(
            WorkspacePath::parse(&"a/".repeat(3000)),
            Err(PathError::TooLong(_))
        ));
        assert!(matches!(
            WorkspacePath::parse(&"x".repeat(256)),
            Err(PathError::TooLong(_))
        ));
        for root in ["", ".", "./", "a/.."] {
            assert_eq!(
                WorkspacePath::parse_file(root),
                Err(PathError::Empty),
                "{root}"
            );
        }
    }

    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            "[a-z.]{1,4}",
            "[^/\u{0}]{1,6}",
        ]
    }

    proptest! {
        #[test]
        fn no_generated_path_escapes(parts in proptest::collection::vec(component(), 0..12), lead in any::<bool>()) {
            let raw = format!("{}{}", if lead { "/" } else { "" }, parts.join("/"));
            if let Ok(path) = WorkspacePath::parse(&raw) {
                prop_assert!(!raw.starts_with('/'));
                for c in path.components() {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(!c.contains('/') && !c.contains('\0'));
                }
                prop_assert_eq!(WorkspacePath::parse(&path.relative()), Ok(path.clone()));
            }
        }
    }
}
