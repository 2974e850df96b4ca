//! Exec approvals: the shell-line parser, safe-bin profiles and the allow / ask / deny
//! decision (pure), and the gate that applies them to each call. (The approval requests
//! the owner resolves live in the gateway.)
//!
//! | module | what |
//! |---|---|
//! | [`shell`] | `&&`, `||`, `;`, `|` chains with quoting; run-time constructs fail closed |
//! | [`safe_bins`] | stdin-only filters and their flag profiles |
//! | [`gate`] | the step before the sandbox: resolve in the sandbox, decide, ask the gateway, run the resolved paths |
//! | [`policy`] | `security` × `ask` × allowlist globs on resolved paths → [`policy::Decision`] |

pub mod gate;
pub mod policy;
pub mod safe_bins;
pub mod shell;
