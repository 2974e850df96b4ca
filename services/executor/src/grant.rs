//! The turn-grant check: every call must carry the gateway's signed grant for its turn.
//! In order: the signature verifies with the gateway's grant key (nothing else is read
//! before that), the claims decode, the grant lists the tool, it has not expired, and it
//! is for the session the call names. Pure over values plus injected [`GrantKeys`] and
//! [`Clock`].

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use pincer_identity::PublicKey;
use pincer_proto::v1::{
    ExecAsk, ExecPolicy as WireExecPolicy, ExecSecurity, GrantClaims, NetworkAccess, SandboxScope,
    TurnGrant, WorkspaceAccess,
};
use prost::Message;

use crate::approval::policy::{Ask, ExecPolicy, Security};

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
    /// Background processes: start, poll, write stdin, kill.
    Process,
    /// Read a file in the workspace.
    ReadFile,
    /// Create or replace a file in the workspace.
    WriteFile,
    /// Replace text in a workspace file.
    EditFile,
    /// Apply a multi-file patch to the workspace.
    ApplyPatch,
    /// List a workspace directory.
    ListDir,
    /// Fetch a web page through the SSRF guard.
    WebFetch,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 8] = [
        Self::Exec,
        Self::Process,
        Self::ReadFile,
        Self::WriteFile,
        Self::EditFile,
        Self::ApplyPatch,
        Self::ListDir,
        Self::WebFetch,
    ];

    /// The name used in `TurnGrant.allowed_tools` (and offered to the model).
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Process => "process",
            Self::ReadFile => "read_file",
            Self::WriteFile => "write_file",
            Self::EditFile => "edit_file",
            Self::ApplyPatch => "apply_patch",
            Self::ListDir => "list_dir",
            Self::WebFetch => "web_fetch",
        }
    }
}

/// The gateway's grant keys the executor trusts, by key id.
pub trait GrantKeys: Send + Sync {
    /// The key with this id, if known.
    fn key(&self, key_id: &str) -> Option<PublicKey>;
}

/// A fixed set of keys.
#[derive(Debug, Clone, Default)]
pub struct StaticKeys(HashMap<String, PublicKey>);

impl StaticKeys {
    /// Trusts `key` (its id is the hex sha256 of its bytes).
    pub fn with(mut self, key: PublicKey) -> Self {
        self.0.insert(key.device_id().to_string(), key);
        self
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: PublicKey) {
        self.0.insert(key.device_id().to_string(), key);
    }
}

impl GrantKeys for StaticKeys {
    fn key(&self, key_id: &str) -> Option<PublicKey> {
        self.0.get(key_id).copied()
    }
}

/// Why a grant does not allow a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No grant was sent.
    #[error("the request carries no turn grant; the agent must forward the gateway's grant")]
    Missing,
    /// Signed by a key this executor does not know.
    #[error("the turn grant is signed by an unknown key {key_id:?}")]
    UnknownKey {
        /// The key id the grant names (shortened).
        key_id: String,
    },
    /// The signature does not verify.
    #[error("the turn grant's signature does not verify; grants come only from the gateway")]
    BadSignature,
    /// Signed, but the claims do not decode.
    #[error("the turn grant's claims are malformed")]
    Malformed,
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
    /// The grant is for another session than the call names.
    #[error("the turn grant is for session {granted:?}, not {requested:?}")]
    SessionMismatch {
        /// The grant's session.
        granted: String,
        /// The session the call named.
        requested: String,
    },
    /// The grant's workspace access does not cover the call.
    #[error("the turn grant gives {granted} workspace access; this call needs {needed}")]
    WorkspaceAccess {
        /// What the grant gives.
        granted: &'static str,
        /// What the call needs.
        needed: &'static str,
    },
}

/// What a call needs of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceNeed {
    /// Nothing (the tool never touches the workspace, e.g. `web_fetch`).
    Nothing,
    /// Reading it.
    Read,
    /// Changing it.
    Write,
}

/// The workspace access a grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not visible.
    None,
    /// Mounted read-only.
    ReadOnly,
    /// Mounted read-write.
    ReadWrite,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Self::None => "no",
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }
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
    /// The workspace access granted.
    pub access: Access,
    /// Whether the executor's own `web_fetch` may reach the web (network `EGRESS`).
    pub egress: bool,
    /// Whether sandboxed commands may reach the web through the guarded proxy
    /// (`sandbox.network` `EGRESS`; missing: no).
    pub sandbox_egress: bool,
    /// Whether the session's commands may share its sandbox (`sandbox.scope` `SESSION`;
    /// missing: no, a sandbox per call).
    pub sandbox_session: bool,
    /// How exec calls are judged.
    pub exec_policy: ExecPolicy,
}

/// The key id a grant names, for fetching keys before [`check_grant`].
pub fn key_id_of(grant: Option<&TurnGrant>) -> Option<&str> {
    grant.map(|g| g.key_id.as_str())
}

/// Checks that `grant` allows `tool` for `session_key` now, with at least `need` workspace
/// access (exec needs read access to run anything; whether it may write is the mount).
pub fn check_grant(
    grant: Option<&TurnGrant>,
    session_key: &str,
    tool: Tool,
    need: WorkspaceNeed,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<CheckedGrant, GrantError> {
    let grant = grant.ok_or(GrantError::Missing)?;
    let key = keys
        .key(&grant.key_id)
        .ok_or_else(|| GrantError::UnknownKey {
            key_id: grant.key_id.chars().take(16).collect(),
        })?;
    pincer_identity::verify_grant(&key, &grant.claims, &grant.signature)
        .map_err(|_| GrantError::BadSignature)?;
    let claims = GrantClaims::decode(grant.claims.as_slice()).map_err(|_| GrantError::Malformed)?;
    if !claims.allowed_tools.iter().any(|t| t == tool.name()) {
        return Err(GrantError::ToolNotAllowed { tool: tool.name() });
    }
    let now_ms = clock.now_ms();
    if claims.expires_at_ms <= now_ms {
        return Err(GrantError::Expired {
            expires_at_ms: claims.expires_at_ms,
            now_ms,
        });
    }
    if claims.session_key != session_key {
        return Err(GrantError::SessionMismatch {
            granted: claims.session_key,
            requested: session_key.chars().take(128).collect(),
        });
    }
    let access = match claims.workspace_access() {
        WorkspaceAccess::ReadWrite => Access::ReadWrite,
        WorkspaceAccess::ReadOnly => Access::ReadOnly,
        WorkspaceAccess::None | WorkspaceAccess::Unspecified => Access::None,
    };
    let enough = match need {
        WorkspaceNeed::Nothing => true,
        WorkspaceNeed::Read => access != Access::None,
        WorkspaceNeed::Write => access == Access::ReadWrite,
    };
    if !enough {
        return Err(GrantError::WorkspaceAccess {
            granted: access.name(),
            needed: match need {
                WorkspaceNeed::Nothing => "no",
                WorkspaceNeed::Read => "read",
                WorkspaceNeed::Write => "write",
            },
        });
    }
    let egress = claims.network() == NetworkAccess::Egress;
    let sandbox_egress = claims
        .sandbox
        .as_ref()
        .is_some_and(|s| s.network() == NetworkAccess::Egress);
    let sandbox_session = claims
        .sandbox
        .as_ref()
        .is_some_and(|s| s.scope() == SandboxScope::Session);
    let exec_policy = exec_policy_of(claims.exec_policy.as_ref());
    Ok(CheckedGrant {
        turn_id: claims.turn_id,
        session_key: claims.session_key,
        agent_id: claims.agent_id,
        access,
        egress,
        sandbox_egress,
        sandbox_session,
        exec_policy,
    })
}

/// The policy a grant carries; anything missing or unknown is the strictest reading
/// (no policy or an unspecified security level: nothing runs; unspecified ask: off).
pub fn exec_policy_of(wire: Option<&WireExecPolicy>) -> ExecPolicy {
    let Some(wire) = wire else {
        return ExecPolicy {
            security: Security::Deny,
            ask: Ask::Off,
            ask_fallback: Security::Deny,
            allowlist: Vec::new(),
            safe_bins: false,
        };
    };
    let security = |s: ExecSecurity| match s {
        ExecSecurity::Full => Security::Full,
        ExecSecurity::Allowlist => Security::Allowlist,
        ExecSecurity::Deny | ExecSecurity::Unspecified => Security::Deny,
    };
    ExecPolicy {
        security: security(wire.security()),
        ask: match wire.ask() {
            ExecAsk::Always => Ask::Always,
            ExecAsk::OnMiss => Ask::OnMiss,
            ExecAsk::Off | ExecAsk::Unspecified => Ask::Off,
        },
        ask_fallback: security(wire.ask_fallback()),
        allowlist: wire.allowlist.clone(),
        safe_bins: wire.safe_bins,
    }
}

/// Encodes and signs `claims` with `key`, exactly as the gateway does.
pub fn sign_claims(key: &pincer_identity::DeviceKey, claims: &GrantClaims) -> TurnGrant {
    let bytes = claims.encode_to_vec();
    TurnGrant {
        signature: pincer_identity::sign_grant(key, &bytes).as_bytes().to_vec(),
        claims: bytes,
        key_id: key.device_id().to_string(),
    }
}

/// Grants for tests: a fixed gateway key, the key set that trusts it, and signed grants.
pub mod testing {
    use pincer_identity::DeviceKey;
    use pincer_proto::v1::{
        ExecAsk, ExecPolicy, ExecSecurity, GrantClaims, NetworkAccess, TurnGrant, WorkspaceAccess,
    };

    use super::{StaticKeys, sign_claims};

    /// `security: full`, `ask: off`: every command runs (the sandbox is the boundary).
    pub fn full_exec_policy() -> ExecPolicy {
        ExecPolicy {
            security: ExecSecurity::Full.into(),
            ask: ExecAsk::Off.into(),
            ask_fallback: ExecSecurity::Deny.into(),
            allowlist: Vec::new(),
            safe_bins: true,
        }
    }

    /// The test gateway's grant key.
    pub fn gateway_key() -> DeviceKey {
        DeviceKey::from_seed([42; 32])
    }

    /// Keys trusting only [`gateway_key`].
    pub fn keys() -> StaticKeys {
        StaticKeys::default().with(gateway_key().public_key())
    }

    /// Read-write, no network, session scope (as the gateway grants by default), signed
    /// by [`gateway_key`].
    pub fn grant(
        tools: &[&str],
        session_key: &str,
        agent_id: &str,
        expires_at_ms: i64,
    ) -> TurnGrant {
        sign_claims(
            &gateway_key(),
            &GrantClaims {
                turn_id: "turn-1".into(),
                session_key: session_key.into(),
                agent_id: agent_id.into(),
                allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
                expires_at_ms,
                workspace_access: WorkspaceAccess::ReadWrite.into(),
                network: NetworkAccess::None.into(),
                exec_policy: Some(full_exec_policy()),
                sandbox: Some(pincer_proto::v1::SandboxGrant {
                    network: NetworkAccess::None.into(),
                    scope: pincer_proto::v1::SandboxScope::Session.into(),
                }),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use pincer_identity::DeviceKey;

    use super::*;

    fn signed(key: &DeviceKey, claims: GrantClaims) -> TurnGrant {
        let bytes = claims.encode_to_vec();
        TurnGrant {
            signature: pincer_identity::sign_grant(key, &bytes).as_bytes().to_vec(),
            claims: bytes,
            key_id: key.device_id().to_string(),
        }
    }

    fn claims(tools: &[&str], expires_at_ms: i64) -> GrantClaims {
        GrantClaims {
            turn_id: "t1".into(),
            session_key: "s1".into(),
            agent_id: "main".into(),
            allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            expires_at_ms,
            workspace_access: WorkspaceAccess::ReadWrite.into(),
            network: NetworkAccess::None.into(),
            exec_policy: Some(testing::full_exec_policy()),
            sandbox: None,
        }
    }

    fn gateway() -> DeviceKey {
        DeviceKey::from_seed([1; 32])
    }

    fn keys() -> StaticKeys {
        StaticKeys::default().with(gateway().public_key())
    }

    fn check(
        grant: &TurnGrant,
        session: &str,
        need: WorkspaceNeed,
        now: i64,
    ) -> Result<CheckedGrant, GrantError> {
        check_grant(
            Some(grant),
            session,
            Tool::Exec,
            need,
            &keys(),
            &FixedClock(now),
        )
    }

    #[test]
    fn allows_a_signed_listed_unexpired_tool_for_its_session() {
        let g = signed(&gateway(), claims(&["web", "exec"], 2_000));
        let checked = check(&g, "s1", WorkspaceNeed::Write, 1_000).unwrap();
        assert_eq!(checked.agent_id, "main");
        assert_eq!(checked.turn_id, "t1");
        assert_eq!(checked.access, Access::ReadWrite);
        assert!(!checked.egress);
        // No sandbox claim: no network for commands, a sandbox per call.
        assert!(!checked.sandbox_egress);
        assert!(!checked.sandbox_session);
    }

    #[test]
    fn the_sandbox_claim_is_read_as_signed() {
        use pincer_proto::v1::SandboxGrant;
        let with = |network: NetworkAccess, scope: SandboxScope| {
            let mut c = claims(&["exec"], 2_000);
            c.sandbox = Some(SandboxGrant {
                network: network.into(),
                scope: scope.into(),
            });
            check(&signed(&gateway(), c), "s1", WorkspaceNeed::Read, 1_000).unwrap()
        };
        let both = with(NetworkAccess::Egress, SandboxScope::Session);
        assert!(both.sandbox_egress && both.sandbox_session);
        assert!(!both.egress, "the web_fetch network is a claim of its own");
        let neither = with(NetworkAccess::None, SandboxScope::Call);
        assert!(!neither.sandbox_egress && !neither.sandbox_session);
        let unspecified = with(NetworkAccess::Unspecified, SandboxScope::Unspecified);
        assert!(!unspecified.sandbox_egress && !unspecified.sandbox_session);
    }

    #[test]
    fn refuses_missing_grant() {
        assert_eq!(
            check_grant(
                None,
                "s1",
                Tool::Exec,
                WorkspaceNeed::Read,
                &keys(),
                &FixedClock(0)
            ),
            Err(GrantError::Missing)
        );
    }

    #[test]
    fn refuses_grants_not_signed_by_the_gateway() {
        let forger = DeviceKey::from_seed([2; 32]);
        // Signed by another key, under its own id: unknown key.
        let g = signed(&forger, claims(&["exec"], 2_000));
        assert!(matches!(
            check(&g, "s1", WorkspaceNeed::Read, 1_000),
            Err(GrantError::UnknownKey { .. })
        ));
        // Signed by another key, claiming the gateway's id: bad signature.
        let mut g = signed(&forger, claims(&["exec"], 2_000));
        g.key_id = gateway().device_id().to_string();
        assert_eq!(
            check(&g, "s1", WorkspaceNeed::Read, 1_000),
            Err(GrantError::BadSignature)
        );
        // The gateway's signature, claims widened afterwards (the agent adds a tool).
        let mut g = signed(&gateway(), claims(&["web"], 2_000));
        g.claims = claims(&["web", "exec"], 2_000).encode_to_vec();
        assert_eq!(
            check(&g, "s1", WorkspaceNeed::Read, 1_000),
            Err(GrantError::BadSignature)
        );
        // Truncated signature.
        let mut g = signed(&gateway(), claims(&["exec"], 2_000));
        g.signature.pop();
        assert_eq!(
            check(&g, "s1", WorkspaceNeed::Read, 1_000),
            Err(GrantError::BadSignature)
        );
    }

    #[test]
    fn refuses_tool_not_listed() {
        for tools in [&[][..], &["web"][..], &["Exec", "exec "][..]] {
            let g = signed(&gateway(), claims(tools, 2_000));
            assert_eq!(
                check(&g, "s1", WorkspaceNeed::Read, 1_000),
                Err(GrantError::ToolNotAllowed { tool: "exec" })
            );
        }
    }

    #[test]
    fn refuses_expired_grant_including_the_exact_instant() {
        for expires in [0, 999, 1_000] {
            let g = signed(&gateway(), claims(&["exec"], expires));
            assert!(matches!(
                check(&g, "s1", WorkspaceNeed::Read, 1_000),
                Err(GrantError::Expired { .. })
            ));
        }
    }

    #[test]
    fn refuses_a_grant_for_another_session() {
        let g = signed(&gateway(), claims(&["exec"], 2_000));
        for other in ["s2", "", "s1 ", "S1"] {
            assert!(
                matches!(
                    check(&g, other, WorkspaceNeed::Read, 1_000),
                    Err(GrantError::SessionMismatch { .. })
                ),
                "{other:?}"
            );
        }
    }

    #[test]
    fn workspace_access_bounds_the_call() {
        let mut ro = claims(&["exec"], 2_000);
        ro.workspace_access = WorkspaceAccess::ReadOnly.into();
        let g = signed(&gateway(), ro);
        assert_eq!(
            check(&g, "s1", WorkspaceNeed::Read, 1_000).unwrap().access,
            Access::ReadOnly
        );
        assert!(matches!(
            check(&g, "s1", WorkspaceNeed::Write, 1_000),
            Err(GrantError::WorkspaceAccess { .. })
        ));
        for none in [WorkspaceAccess::None, WorkspaceAccess::Unspecified] {
            let mut c = claims(&["exec"], 2_000);
            c.workspace_access = none.into();
            let g = signed(&gateway(), c);
            assert!(matches!(
                check(&g, "s1", WorkspaceNeed::Read, 1_000),
                Err(GrantError::WorkspaceAccess { .. })
            ));
        }
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
