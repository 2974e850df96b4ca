//! A stateright model of device pairing, run against the real `PairingStore`.
//!
//! The owner approves, rejects and revokes; two devices request, rotate and authenticate
//! with any token ever issued (including dead ones); time advances in 6-minute steps past
//! the 10-minute request TTL. Ghost state, kept by the model from the specification and not
//! from the store, records what the owner granted and which tokens are live.
//!
//! Claims: no scope escalation; revoked or rotated-away tokens never authenticate; expired
//! requests are never approved and `expire` removes them. Each claim has a deliberately
//! broken twin (a plausible wiring mistake around the store) that the checker must catch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use pincer_gateway::access::pairing::{
    AutoApproval, DeviceState, PairingConfig, PairingError, RequestOutcome,
};
use pincer_gateway::access::{
    DeviceId, IssuedToken, PairingStore, Role, Scope, ScopeSet, TokenSecret,
};
use stateright::{Checker, HasDiscoveries, Model, Property};

const MINUTE: i64 = 60_000;
const TTL: i64 = 10 * MINUTE;
const TICK: i64 = 6 * MINUTE;
const END: i64 = 2 * TICK;
const MAX_TOKENS: usize = 2;
const DEVICES: usize = 2;

/// The system under check: the real store, or the store behind a broken caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    /// `rotate` implemented as "revoke, request, approve": accepts any scopes.
    RotateAnyScopes,
    /// The connection uses the scopes the client declared instead of the granted ones.
    GrantClaimedScopes,
    /// Successful authentications are cached by (device, token) and never invalidated.
    CachedAuth,
    /// `approve` re-creates a request that expired, then approves it.
    ApproveRevivesExpired,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Action {
    Request(usize, ScopeSet),
    Approve(usize, ScopeSet),
    Reject(usize),
    Revoke(usize),
    Rotate(usize, ScopeSet),
    Authenticate {
        device: usize,
        token: usize,
        claimed: ScopeSet,
    },
    Tick,
    Expire,
}

/// A token the model saw issued; its text is [`token_text`] of its index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GhostToken {
    device: usize,
    live: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    store: PairingStore,
    now: i64,
    tokens: Vec<GhostToken>,
    /// Per device: the scopes it may hold, per the specification (None: none).
    ceiling: [Option<ScopeSet>; DEVICES],
    /// Per device: its latest request as the device made it (time, scopes).
    requested: [Option<(i64, ScopeSet)>; DEVICES],
    /// The `CachedAuth` twin's cache: (device, token index, granted scopes).
    cache: Vec<(usize, usize, ScopeSet)>,
    escalated: bool,
    dead_token_accepted: bool,
    stale_approval: bool,
    stale_request_kept: bool,
    authenticated: bool,
    expired: bool,
}

struct PairingModel {
    variant: Variant,
}

fn device(i: usize) -> DeviceId {
    ["a", "b"][i].repeat(64).parse::<DeviceId>().unwrap()
}

/// Two nested scope sets are enough to tell narrowing from widening.
fn choices() -> [ScopeSet; 2] {
    [
        ScopeSet::of(&[Scope::Read]),
        ScopeSet::of(&[Scope::Read, Scope::Write]),
    ]
}

fn token_secret(index: usize) -> TokenSecret {
    TokenSecret::from_bytes([u8::try_from(index).unwrap() + 1; 32])
}

fn token_text(index: usize) -> String {
    format!(
        "pdt_{}",
        hex::encode([u8::try_from(index).unwrap() + 1; 32])
    )
}

fn within(a: ScopeSet, b: Option<ScopeSet>) -> bool {
    b.is_some_and(|b| a.is_subset_of(b))
}

/// Every paired device holds no more than its ceiling.
fn store_within_ceilings(s: &State) -> bool {
    (0..DEVICES).all(|i| match s.store.get(&device(i)) {
        Some(DeviceState::Approved { scopes, .. }) => within(*scopes, s.ceiling[i]),
        _ => true,
    })
}

impl PairingModel {
    fn issue(&self, s: &mut State, d: usize, issued: &IssuedToken) {
        assert_eq!(issued.token(), token_text(s.tokens.len()));
        for t in s.tokens.iter_mut().filter(|t| t.device == d) {
            t.live = false;
        }
        s.tokens.push(GhostToken {
            device: d,
            live: true,
        });
    }

    /// The secret of the next token: its index, so the text is known without storing it.
    fn secret(s: &State) -> TokenSecret {
        token_secret(s.tokens.len())
    }

    fn authenticate(&self, s: &mut State, d: usize, token: usize, claimed: ScopeSet) {
        let cached = s
            .cache
            .iter()
            .find(|(cd, ct, _)| *cd == d && *ct == token)
            .map(|(_, _, scopes)| *scopes);
        let result = match cached {
            Some(scopes) if self.variant == Variant::CachedAuth => Ok(scopes),
            _ => s
                .store
                .authenticate(&device(d), &token_text(token), Role::Operator, claimed)
                .map(|g| g.scopes),
        };
        let Ok(mut granted) = result else { return };
        if self.variant == Variant::GrantClaimedScopes {
            granted = claimed;
        }
        if self.variant == Variant::CachedAuth && cached.is_none() {
            s.cache.push((d, token, granted));
        }
        let tok = &s.tokens[token];
        s.authenticated = true;
        s.dead_token_accepted |= !tok.live || tok.device != d;
        s.escalated |= !granted.is_subset_of(claimed) || !within(granted, s.ceiling[d]);
    }
}

impl Model for PairingModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            store: PairingStore::new(PairingConfig {
                pending_ttl: Duration::from_millis(TTL as u64),
                max_pending: DEVICES,
            }),
            now: 0,
            tokens: Vec::new(),
            ceiling: [None; DEVICES],
            requested: [None; DEVICES],
            cache: Vec::new(),
            escalated: false,
            dead_token_accepted: false,
            stale_approval: false,
            stale_request_kept: false,
            authenticated: false,
            expired: false,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let can_issue = s.tokens.len() < MAX_TOKENS;
        for d in 0..DEVICES {
            for scopes in choices() {
                actions.push(Action::Request(d, scopes));
                if can_issue {
                    actions.push(Action::Approve(d, scopes));
                    actions.push(Action::Rotate(d, scopes));
                }
            }
            actions.push(Action::Reject(d));
            actions.push(Action::Revoke(d));
            for token in 0..s.tokens.len() {
                for claimed in [ScopeSet::of(&[Scope::Read]), ScopeSet::ALL] {
                    actions.push(Action::Authenticate {
                        device: d,
                        token,
                        claimed,
                    });
                }
            }
        }
        if s.now < END {
            actions.push(Action::Tick);
        }
        actions.push(Action::Expire);
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let now = s.now;
        match action {
            Action::Request(d, scopes) => {
                let got =
                    s.store
                        .request(device(d), Role::Operator, scopes, AutoApproval::Never, now);
                if got == Ok(RequestOutcome::Pending) {
                    s.requested[d] = Some((now, scopes));
                }
            }
            Action::Approve(d, granted) => {
                let secret = Self::secret(&s);
                let mut result = s.store.approve(&device(d), granted, &secret, now);
                if self.variant == Variant::ApproveRevivesExpired
                    && matches!(result, Err(PairingError::RequestExpired(_)))
                {
                    let _ = s.store.request(
                        device(d),
                        Role::Operator,
                        granted,
                        AutoApproval::Never,
                        now,
                    );
                    result = s.store.approve(&device(d), granted, &secret, now);
                }
                if let Ok(issued) = result {
                    let fresh = s.requested[d]
                        .is_some_and(|(at, asked)| now - at < TTL && granted.is_subset_of(asked));
                    s.stale_approval |= !fresh;
                    s.ceiling[d] = Some(granted);
                    self.issue(&mut s, d, &issued);
                }
            }
            Action::Reject(d) => {
                let _ = s.store.reject(&device(d), now);
            }
            Action::Revoke(d) => {
                if s.store.revoke(&device(d), now).is_ok() {
                    s.ceiling[d] = None;
                    for t in s.tokens.iter_mut().filter(|t| t.device == d) {
                        t.live = false;
                    }
                }
            }
            Action::Rotate(d, scopes) => {
                let secret = Self::secret(&s);
                let result = if self.variant == Variant::RotateAnyScopes {
                    s.store.revoke(&device(d), now).ok().and_then(|()| {
                        let _ = s.store.request(
                            device(d),
                            Role::Operator,
                            scopes,
                            AutoApproval::Never,
                            now,
                        );
                        s.store.approve(&device(d), scopes, &secret, now).ok()
                    })
                } else {
                    s.store.rotate(&device(d), scopes, &secret, now).ok()
                };
                if let Some(issued) = result {
                    s.escalated |= !within(scopes, s.ceiling[d]);
                    s.ceiling[d] = s.ceiling[d].map(|c| c.intersection(scopes));
                    self.issue(&mut s, d, &issued);
                }
            }
            Action::Authenticate {
                device: d,
                token,
                claimed,
            } => {
                self.authenticate(&mut s, d, token, claimed);
            }
            Action::Tick => s.now += TICK,
            Action::Expire => {
                s.expired |= !s.store.expire(now).is_empty();
                s.stale_request_kept |= s.store.devices().any(|(_, st)| {
                    matches!(st, DeviceState::Pending { requested_at_ms, .. } if now - requested_at_ms >= TTL)
                });
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no scope escalation", |_, s: &State| {
                !s.escalated && store_within_ceilings(s)
            }),
            Property::always(
                "revoked or rotated-away tokens never authenticate",
                |_, s: &State| !s.dead_token_accepted,
            ),
            Property::always("expired requests are never approved", |_, s: &State| {
                !s.stale_approval
            }),
            Property::always("expire leaves no stale request", |_, s: &State| {
                !s.stale_request_kept
            }),
            Property::sometimes("a device authenticates", |_, s: &State| s.authenticated),
            Property::sometimes("a request expires", |_, s: &State| s.expired),
        ]
    }
}

/// Explores every state (the correct store), or until `stop_at` is discovered (a twin).
fn check(variant: Variant, stop_at: Option<&'static str>) -> impl Checker<PairingModel> {
    let started = Instant::now();
    let mut builder = PairingModel { variant }.checker();
    if let Some(name) = stop_at {
        builder = builder.finish_when(HasDiscoveries::AllOf([name].into()));
    }
    let checker = builder.spawn_bfs().join();
    eprintln!(
        "{variant:?}: {} states, depth {}, {:?}",
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    checker
}

#[test]
fn pairing_keeps_its_promises() {
    let checker = check(Variant::Correct, None);
    checker.assert_properties();
}

#[test]
fn broken_rotate_is_caught() {
    let checker = check(Variant::RotateAnyScopes, Some("no scope escalation"));
    checker.assert_any_discovery("no scope escalation");
}

#[test]
fn granting_declared_scopes_is_caught() {
    let checker = check(Variant::GrantClaimedScopes, Some("no scope escalation"));
    checker.assert_any_discovery("no scope escalation");
}

#[test]
fn cached_authentication_is_caught() {
    let checker = check(
        Variant::CachedAuth,
        Some("revoked or rotated-away tokens never authenticate"),
    );
    checker.assert_any_discovery("revoked or rotated-away tokens never authenticate");
}

#[test]
fn reviving_expired_requests_is_caught() {
    let checker = check(
        Variant::ApproveRevivesExpired,
        Some("expired requests are never approved"),
    );
    checker.assert_any_discovery("expired requests are never approved");
}
