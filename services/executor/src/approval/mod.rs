//! Exec approvals, the pure half: the shell-line parser, safe-bin profiles and the
//! allow / ask / deny decision. (The approval requests the owner resolves live in the
//! gateway.)
//!
//! | module | what |
//! |---|---|
//! | [`shell`] | `&&`, `||`, `;`, `|` chains with quoting; run-time constructs fail closed |
//! | [`safe_bins`] | stdin-only filters and their flag profiles |
//! | [`policy`] | `security` × `ask` × allowlist globs on resolved paths → [`policy::Decision`] |

pub mod policy;
pub mod safe_bins;
pub mod shell;
