//! Property tests of the pairing store: random operation sequences against a reference
//! kept by the test (what the owner granted, which tokens are live).
//!
//! Claims: no sequence yields an authentication whose scopes exceed the approval or the
//! client's claim; revoked and rotated-away tokens never authenticate; rotation never
//! widens; expired requests are never approved; pending requests stay bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pincer_gateway::access::pairing::{
    AutoApproval, DeviceAuthError, DeviceState, PairingConfig, PairingError, RequestOutcome,
};
use pincer_gateway::access::{
    DeviceId, IssuedToken, PairingStore, Role, Scope, ScopeSet, TokenSecret,
};
use proptest::prelude::*;

const DEVICES: usize = 3;
const TTL_MS: i64 = 10 * 60_000;
const MAX_PENDING: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Request {
        d: usize,
        role: Role,
        scopes: ScopeSet,
        same_host: bool,
    },
    Approve {
        d: usize,
        scopes: ScopeSet,
    },
    Reject(usize),
    Revoke(usize),
    Rotate {
        d: usize,
        scopes: ScopeSet,
    },
    Authenticate {
        d: usize,
        token: usize,
        role: Role,
        claimed: ScopeSet,
    },
    Wait(i64),
    Expire,
}

fn scopes() -> impl Strategy<Value = ScopeSet> {
    prop::collection::vec(prop::sample::select(Scope::ALL.to_vec()), 0..4)
        .prop_map(|v| ScopeSet::of(&v))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Operator), Just(Role::Node)]
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DEVICES;
    prop_oneof![
        3 => (d.clone(), role(), scopes(), any::<bool>())
            .prop_map(|(d, role, scopes, same_host)| Op::Request { d, role, scopes, same_host }),
        3 => (d.clone(), scopes()).prop_map(|(d, scopes)| Op::Approve { d, scopes }),
        1 => d.clone().prop_map(Op::Reject),
        1 => d.clone().prop_map(Op::Revoke),
        2 => (d.clone(), scopes()).prop_map(|(d, scopes)| Op::Rotate { d, scopes }),
        4 => (d, 0usize..16, role(), scopes())
            .prop_map(|(d, token, role, claimed)| Op::Authenticate { d, token, role, claimed }),
        2 => (0i64..8 * 60_000).prop_map(Op::Wait),
        1 => Just(Op::Expire),
    ]
}

fn device(i: usize) -> DeviceId {
    ["a", "b", "c"][i].repeat(64).parse::<DeviceId>().unwrap()
}

/// What the test believes, independently of the store.
#[derive(Default)]
struct Reference {
    /// Per device: the scopes it may hold and the role, once paired.
    ceiling: [Option<(Role, ScopeSet)>; DEVICES],
    /// Per device: its latest request (time, role, scopes).
    requested: [Option<(i64, Role, ScopeSet)>; DEVICES],
    /// Every token issued: (device, text, live).
    tokens: Vec<(usize, String, bool)>,
    /// Per device: the owner rejected or revoked it at some point.
    refused: [bool; DEVICES],
    secrets: u8,
}

impl Reference {
    fn secret(&mut self) -> TokenSecret {
        self.secrets = self.secrets.wrapping_add(1);
        TokenSecret::from_bytes([self.secrets; 32])
    }

    fn issued(&mut self, d: usize, t: &IssuedToken) {
        for tok in self.tokens.iter_mut().filter(|tok| tok.0 == d) {
            tok.2 = false;
        }
        self.tokens.push((d, t.token().to_owned(), true));
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut store = PairingStore::new(PairingConfig {
        pending_ttl: Duration::from_millis(TTL_MS as u64),
        max_pending: MAX_PENDING,
    });
    let mut r = Reference::default();
    let mut now = 1_700_000_000_000i64;
    for op in ops {
        match op {
            Op::Request {
                d,
                role,
                scopes,
                same_host,
            } => {
                let auto = if same_host {
                    AutoApproval::SameHost(r.secret())
                } else {
                    AutoApproval::Never
                };
                let waiting = matches!(
                    store.get(&device(d)),
                    Some(DeviceState::Pending { requested_at_ms, .. }) if now - requested_at_ms < TTL_MS
                );
                match store.request(device(d), role, scopes, auto, now) {
                    Ok(RequestOutcome::Pending) => r.requested[d] = Some((now, role, scopes)),
                    Ok(RequestOutcome::AutoApproved(t)) => {
                        prop_assert!(
                            same_host && !waiting && !r.refused[d],
                            "auto-approved a device the owner refused or that was waiting"
                        );
                        prop_assert_eq!((t.role, t.scopes), (role, scopes));
                        r.ceiling[d] = Some((role, scopes));
                        r.issued(d, &t);
                    }
                    Err(PairingError::TooManyPending(_)) => {}
                    Err(PairingError::AlreadyApproved(_)) => prop_assert!(r.ceiling[d].is_some()),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
            }
            Op::Approve { d, scopes } => {
                let secret = r.secret();
                if let Ok(t) = store.approve(&device(d), scopes, &secret, now) {
                    let (at, role, asked) = r.requested[d].unwrap();
                    prop_assert!(now - at < TTL_MS, "approved an expired request");
                    prop_assert!(scopes.is_subset_of(asked), "granted more than requested");
                    prop_assert_eq!(t.role, role);
                    r.ceiling[d] = Some((role, scopes));
                    r.issued(d, &t);
                }
            }
            Op::Reject(d) => {
                if store.reject(&device(d), now).is_ok() {
                    r.refused[d] = true;
                }
            }
            Op::Revoke(d) => {
                if store.revoke(&device(d), now).is_ok() {
                    r.refused[d] = true;
                    r.ceiling[d] = None;
                    r.requested[d] = None;
                    for tok in r.tokens.iter_mut().filter(|tok| tok.0 == d) {
                        tok.2 = false;
                    }
                }
            }
            Op::Rotate { d, scopes } => {
                let secret = r.secret();
                match store.rotate(&device(d), scopes, &secret, now) {
                    Ok(t) => {
                        let (role, ceiling) = r.ceiling[d].unwrap();
                        prop_assert!(scopes.is_subset_of(ceiling), "rotation widened");
                        prop_assert_eq!((t.role, t.scopes), (role, scopes));
                        r.ceiling[d] = Some((role, scopes));
                        r.issued(d, &t);
                    }
                    Err(PairingError::ExceedsApproval {
                        approved, asked, ..
                    }) => {
                        prop_assert!(!asked.is_subset_of(approved));
                    }
                    Err(_) => prop_assert!(r.ceiling[d].is_none()),
                }
            }
            Op::Authenticate {
                d,
                token,
                role,
                claimed,
            } => {
                let Some((owner, text, live)) = r.tokens.get(token).cloned() else {
                    continue;
                };
                match store.authenticate(&device(d), &text, role, claimed) {
                    Ok(g) => {
                        prop_assert!(live && owner == d, "a dead or foreign token authenticated");
                        let (approved_role, ceiling) = r.ceiling[d].unwrap();
                        prop_assert_eq!(g.role, approved_role);
                        prop_assert!(g.scopes.is_subset_of(ceiling), "scopes beyond the approval");
                        prop_assert!(g.scopes.is_subset_of(claimed), "scopes beyond the claim");
                        prop_assert_eq!(g.scopes, ceiling.intersection(claimed));
                    }
                    Err(DeviceAuthError::RoleMismatch) => prop_assert!(live && owner == d),
                    Err(_) => prop_assert!(!(live && owner == d), "the live token was refused"),
                }
            }
            Op::Wait(ms) => now += ms,
            Op::Expire => {
                store.expire(now);
                let stale = store.devices().any(|(_, s)| {
                    matches!(s, DeviceState::Pending { requested_at_ms, .. } if now - requested_at_ms >= TTL_MS)
                });
                prop_assert!(!stale, "expire left a stale request");
            }
        }
        prop_assert!(store.pending_count() <= MAX_PENDING);
        for (i, id) in (0..DEVICES).map(|i| (i, device(i))) {
            if let Some(DeviceState::Approved { role, scopes, .. }) = store.get(&id) {
                let (ref_role, ceiling) = r.ceiling[i].unwrap();
                prop_assert_eq!(*role, ref_role);
                prop_assert!(scopes.is_subset_of(ceiling));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pairing_never_escalates_or_revives_tokens(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn declared_scopes_are_ignored_and_rotation_cannot_widen() {
    let mut store = PairingStore::new(PairingConfig::default());
    let id = device(0);
    let read = ScopeSet::of(&[Scope::Read]);
    store
        .request(id, Role::Operator, ScopeSet::ALL, AutoApproval::Never, 0)
        .unwrap();
    let t = store
        .approve(&id, read, &TokenSecret::from_bytes([1; 32]), 1)
        .unwrap();
    let g = store
        .authenticate(&id, t.token(), Role::Operator, ScopeSet::ALL)
        .unwrap();
    assert_eq!(g.scopes, read);
    assert!(matches!(
        store.rotate(
            &id,
            ScopeSet::of(&[Scope::Read, Scope::Admin]),
            &TokenSecret::from_bytes([2; 32]),
            2
        ),
        Err(PairingError::ExceedsApproval { .. })
    ));
    let t2 = store
        .rotate(&id, read, &TokenSecret::from_bytes([3; 32]), 3)
        .unwrap();
    assert_eq!(
        store.authenticate(&id, t.token(), Role::Operator, read),
        Err(DeviceAuthError::BadToken)
    );
    assert!(
        store
            .authenticate(&id, t2.token(), Role::Operator, read)
            .is_ok()
    );
    assert_eq!(
        store.authenticate(&id, t2.token(), Role::Node, read),
        Err(DeviceAuthError::RoleMismatch)
    );
    store.revoke(&id, 4).unwrap();
    assert_eq!(
        store.authenticate(&id, t2.token(), Role::Operator, read),
        Err(DeviceAuthError::Revoked)
    );
}
