//! What an exec approval is bound to: the exact command (argv or shell line), the cwd, the
//! caller's extra environment and the resolved executables. Two calls that differ in any of
//! these are different actions and need different approvals. Pure.

use std::collections::BTreeMap;

use pincer_proto::v1::{ArgvCommand, ExecBinding, exec_binding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most bytes of a binding (command, cwd, env and executables together).
pub const MAX_BINDING_BYTES: usize = 128 * 1024;

/// The command part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundCommand {
    /// A program and its arguments.
    Argv(Vec<String>),
    /// A shell line.
    Shell(String),
}

/// One exec call, as approved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    /// The command.
    pub command: BoundCommand,
    /// Working directory relative to the workspace.
    pub cwd: String,
    /// Extra environment (ordered, so equal maps hash equally).
    pub env: BTreeMap<String, String>,
    /// Resolved executables, one per segment.
    pub executables: Vec<String>,
    /// A background process rather than an `exec` call.
    #[serde(default)]
    pub background: bool,
}

/// Why a binding from the wire is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// No command.
    #[error("the approval request names no command")]
    MissingCommand,
    /// Too large to show or store.
    #[error("the approval request is {0} bytes; the limit is {MAX_BINDING_BYTES}")]
    TooLarge(usize),
}

/// The SHA-256 of a binding's canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingHash(pub [u8; 32]);

impl Binding {
    /// From the executor's request.
    pub fn from_wire(wire: ExecBinding) -> Result<Self, BindingError> {
        let command = match wire.command.ok_or(BindingError::MissingCommand)? {
            exec_binding::Command::Argv(ArgvCommand { args }) => BoundCommand::Argv(args),
            exec_binding::Command::Shell(line) => BoundCommand::Shell(line),
        };
        let binding = Self {
            command,
            cwd: wire.cwd,
            env: wire.env.into_iter().collect(),
            executables: wire.executables,
            background: wire.background,
        };
        let size = binding.size();
        if size > MAX_BINDING_BYTES {
            return Err(BindingError::TooLarge(size));
        }
        Ok(binding)
    }

    fn size(&self) -> usize {
        let command = match &self.command {
            BoundCommand::Argv(args) => args.iter().map(String::len).sum(),
            BoundCommand::Shell(line) => line.len(),
        };
        command
            + self.cwd.len()
            + self
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.executables.iter().map(String::len).sum::<usize>()
    }

    /// The canonical hash: every field, each string length-prefixed, in a fixed order, so
    /// no two different bindings share an encoding.
    pub fn hash(&self) -> BindingHash {
        let mut h = Sha256::new();
        let mut put = |s: &str| {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        };
        put("pincer-exec-binding-v1");
        match &self.command {
            BoundCommand::Argv(args) => {
                put("argv");
                put(&args.len().to_string());
                args.iter().for_each(|a| put(a));
            }
            BoundCommand::Shell(line) => {
                put("shell");
                put(line);
            }
        }
        put(&self.cwd);
        put(&self.env.len().to_string());
        for (k, v) in &self.env {
            put(k);
            put(v);
        }
        put(&self.executables.len().to_string());
        self.executables.iter().for_each(|e| put(e));
        put(if self.background {
            "background"
        } else {
            "exec"
        });
        BindingHash(h.finalize().into())
    }

    /// The command as the owner reads it.
    pub fn display_command(&self) -> String {
        match &self.command {
            BoundCommand::Shell(line) => line.clone(),
            BoundCommand::Argv(args) => args
                .iter()
                .map(|a| {
                    if !a.is_empty()
                        && a.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
                    {
                        a.clone()
                    } else {
                        format!("'{}'", a.replace('\'', r"'\''"))
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(line: &str) -> Binding {
        Binding {
            command: BoundCommand::Shell(line.into()),
            cwd: String::new(),
            env: BTreeMap::new(),
            executables: vec!["/usr/bin/ls".into()],
            background: false,
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = shell("ls");
        let mut variants = vec![shell("ls; rm -rf x"), shell("ls ")];
        let mut b = base.clone();
        b.cwd = "sub".into();
        variants.push(b);
        let mut b = base.clone();
        b.env.insert("A".into(), "1".into());
        variants.push(b);
        let mut b = base.clone();
        b.executables = vec!["/tmp/ls".into()];
        variants.push(b);
        let mut b = base.clone();
        b.command = BoundCommand::Argv(vec!["ls".into()]);
        variants.push(b);
        let mut b = base.clone();
        b.background = true;
        variants.push(b);
        for v in &variants {
            assert_ne!(v.hash(), base.hash(), "{v:?}");
        }
        assert_eq!(shell("ls").hash(), base.hash());
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = Binding {
            command: BoundCommand::Argv(vec!["ab".into(), "c".into()]),
            ..shell("")
        };
        let b = Binding {
            command: BoundCommand::Argv(vec!["a".into(), "bc".into()]),
            ..shell("")
        };
        assert_ne!(a.hash(), b.hash());
        let mut e1 = shell("x");
        e1.env.insert("A".into(), "B=C".into());
        let mut e2 = shell("x");
        e2.env.insert("A=B".into(), "C".into());
        assert_ne!(e1.hash(), e2.hash());
    }

    #[test]
    fn argv_is_shown_quoted() {
        let b = Binding {
            command: BoundCommand::Argv(vec!["echo".into(), "a b".into(), "it's".into()]),
            ..shell("")
        };
        assert_eq!(b.display_command(), r"echo 'a b' 'it'\''s'");
    }

    #[test]
    fn wire_without_command_is_refused() {
        assert_eq!(
            Binding::from_wire(ExecBinding::default()),
            Err(BindingError::MissingCommand)
        );
    }
}
