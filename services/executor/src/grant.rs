//! The turn-grant check: every call must carry the gateway's grant for its turn, the grant
//! must list the tool and must not have expired. Pure over values plus an injected
//! [`Clock`].
//!
//! Grants are not signed yet; when they are, the signature check goes in
//! [`check_grant`] before anything else reads the grant's fields.

use std::time::{SystemTime, UNIX_EPOCH};

use pincer_proto::v1::TurnGrant;

/// A source of "now" in unix milliseconds, injected so tests control time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // A clock set before 1970 reads as 0; grants with expires_at_ms <= 0 still fail.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A fixed clock, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// A tool the executor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Run a command in a sandbox.
    Exec,
}

impl Tool {
    /// The name used in `TurnGrant.allowed_tools`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
        }
    }
}

/// Why a grant does not allow a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No grant was sent.
    #[error("the request carries no turn grant; the agent must forward the gateway's grant")]
    Missing,
    /// The grant does not list the tool.
    #[error("the turn grant does not allow the {tool:?} tool")]
    ToolNotAllowed {
        /// The tool asked for.
        tool: &'static str,
    },
    /// The grant has expired.
    #[error("the turn grant expired at {expires_at_ms} (now {now_ms}); start a new turn")]
    Expired {
        /// When it expired (unix ms).
        expires_at_ms: i64,
        /// Now (unix ms).
        now_ms: i64,
    },
}

/// The parts of a grant that survive the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedGrant {
    /// The turn.
    pub turn_id: String,
    /// The session.
    pub session_key: String,
    /// The agent (validated later as a workspace name).
    pub agent_id: String,
}

/// Checks that `grant` allows `tool` now.
pub fn check_grant(
    grant: Option<&TurnGrant>,
    tool: Tool,
    clock: &dyn Clock,
) -> Result<CheckedGrant, GrantError> {
    let grant = grant.ok_or(GrantError::Missing)?;
    if !grant.allowed_tools.iter().any(|t| t == tool.name()) {
        return Err(GrantError::ToolNotAllowed { tool: tool.name() });
    }
    let now_ms = clock.now_ms();
    if grant.expires_at_ms <= now_ms {
        return Err(GrantError::Expired {
            expires_at_ms: grant.expires_at_ms,
            now_ms,
        });
    }
    Ok(CheckedGrant {
        turn_id: grant.turn_id.clone(),
        session_key: grant.session_key.clone(),
        agent_id: grant.agent_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tools: &[&str], expires_at_ms: i64) -> TurnGrant {
        TurnGrant {
            turn_id: "t1".into(),
            session_key: "s1".into(),
            agent_id: "main".into(),
            allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            expires_at_ms,
        }
    }

    #[test]
    fn allows_a_listed_unexpired_tool() {
        let checked = check_grant(
            Some(&grant(&["web", "exec"], 2_000)),
            Tool::Exec,
            &FixedClock(1_000),
        )
        .unwrap();
        assert_eq!(checked.agent_id, "main");
        assert_eq!(checked.turn_id, "t1");
    }

    #[test]
    fn refuses_missing_grant() {
        assert_eq!(
            check_grant(None, Tool::Exec, &FixedClock(0)),
            Err(GrantError::Missing)
        );
    }

    #[test]
    fn refuses_tool_not_listed() {
        for tools in [&[][..], &["web"][..], &["Exec", "exec "][..]] {
            assert_eq!(
                check_grant(Some(&grant(tools, 2_000)), Tool::Exec, &FixedClock(1_000)),
                Err(GrantError::ToolNotAllowed { tool: "exec" })
            );
        }
    }

    #[test]
    fn refuses_expired_grant_including_the_exact_instant() {
        for expires in [0, 999, 1_000] {
            assert!(matches!(
                check_grant(
                    Some(&grant(&["exec"], expires)),
                    Tool::Exec,
                    &FixedClock(1_000)
                ),
                Err(GrantError::Expired { .. })
            ));
        }
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
