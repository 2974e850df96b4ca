//! A stateright model of the connect challenge, driving the real [`Challenges`].
//!
//! Actors: an honest client, an attacker that is itself a registered device (it has its
//! own key), and the gateway. Every challenge and every signed connect goes over a network
//! the attacker reads; it can deliver any message it has seen on any connection, any
//! number of times, and sign any nonce it has seen or invented. Time can jump past the TTL.
//!
//! Bounds: 3 connections (the gateway keeps 2 outstanding nonces, so eviction happens),
//! 4 deliveries, 2 jumps of 61 s (past the TTL, then past the 120 s skew). The "real"
//! verifier is `Challenges::verify` as its two public halves, `redeem_nonce` (run on the
//! real state) and `verify_device` (pure, so cached: Ed25519 is slow in debug builds);
//! `tests/props.rs` checks that the halves behave exactly as `verify`.
//!
//! Claims, checked exhaustively within the bounds (~47k states, ~2 s):
//! - a nonce is accepted at most once;
//! - no connect is accepted for a nonce the gateway did not issue;
//! - (non-vacuity) the honest client can connect.
//!
//! Each safety claim has a broken twin verifier for which the checker must find a
//! counterexample: one that does not consume nonces, one that trusts the nonce in the
//! message without checking that the gateway issued it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use common::claims;
use pincer_identity::{
    ChallengeLimits, Challenges, DEFAULT_NONCE_TTL_MS, DeviceKey, Nonce, SignedConnect, sign,
    verify_device,
};
use stateright::{Checker, HasDiscoveries, Model, Property};

const START_MS: u64 = 1_700_000_000_000;
const AT_MOST_ONCE: &str = "a nonce is accepted at most once";
const ONLY_ISSUED: &str = "only issued nonces are accepted";
const FORGED: Nonce = Nonce::from_bytes([0xee; 32]);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Party {
    Honest,
    Attacker,
}

/// Which verifier the gateway runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Verifier {
    /// `Challenges::verify`.
    Real,
    /// Broken: runs the real checks on a copy, so nothing is ever consumed.
    NoConsume,
    /// Broken: checks key, id and signature, remembers accepted nonces, but never asks
    /// whether the gateway issued the signed nonce (or whether it is this connection's).
    TrustsSignedNonce,
}

/// Which nonce a message signs: that of connection `i`, or one nobody issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum NonceRef {
    Conn(usize),
    Forged,
}

/// A signed connect, named by how it was made; the bytes are derived (and cached).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Msg {
    signer: Party,
    nonce: NonceRef,
    signed_at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Conn {
    owner: Party,
    challenge: pincer_identity::Challenge,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    gateway: Challenges,
    now_ms: u64,
    ticks: u8,
    conns: Vec<Conn>,
    deliveries: u8,
    /// How often each signed nonce was accepted.
    accepted: BTreeMap<Nonce, u8>,
    /// Nonces accepted by the `TrustsSignedNonce` verifier (its single-use memory).
    twin_used: BTreeSet<Nonce>,
    honest_connected: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// A party connects; the gateway issues a challenge. The honest client answers at
    /// once, and the attacker records the challenge and the answer.
    Open(Party),
    /// The network delivers a message to the gateway on a connection.
    Deliver { msg: Msg, conn: usize },
    /// Time jumps past the nonce TTL (but not past the skew limit).
    Tick,
}

struct ChallengeModel {
    verifier: Verifier,
    honest: DeviceKey,
    attacker: DeviceKey,
    max_conns: usize,
    max_deliveries: u8,
    max_ticks: u8,
    signatures: Mutex<HashMap<(Party, Nonce, u64), SignedConnect>>,
    device_checks: Mutex<HashMap<SignedConnect, bool>>,
}

impl ChallengeModel {
    fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            honest: DeviceKey::from_seed([1; 32]),
            attacker: DeviceKey::from_seed([2; 32]),
            max_conns: 3,
            max_deliveries: 4,
            max_ticks: 2,
            signatures: Mutex::new(HashMap::new()),
            device_checks: Mutex::new(HashMap::new()),
        }
    }

    /// Every message the attacker can deliver: the honest client's answers (signed when
    /// its connection opened) and, signed now with its own key, an answer to any nonce it
    /// saw and to one that nobody issued.
    fn network(state: &State) -> Vec<Msg> {
        let mut msgs = vec![Msg {
            signer: Party::Attacker,
            nonce: NonceRef::Forged,
            signed_at_ms: state.now_ms,
        }];
        for (i, conn) in state.conns.iter().enumerate() {
            if conn.owner == Party::Honest {
                msgs.push(Msg {
                    signer: Party::Honest,
                    nonce: NonceRef::Conn(i),
                    signed_at_ms: conn.challenge.issued_at_ms,
                });
            }
            msgs.push(Msg {
                signer: Party::Attacker,
                nonce: NonceRef::Conn(i),
                signed_at_ms: state.now_ms,
            });
        }
        msgs
    }

    fn nonce_of(state: &State, nonce: NonceRef) -> Nonce {
        match nonce {
            NonceRef::Conn(i) => state.conns[i].challenge.nonce,
            NonceRef::Forged => FORGED,
        }
    }

    /// The bytes of `msg` (signing is deterministic, so they are cached).
    fn signed(&self, state: &State, msg: Msg) -> SignedConnect {
        let nonce = Self::nonce_of(state, msg.nonce);
        let mut cache = self.signatures.lock().unwrap();
        cache
            .entry((msg.signer, nonce, msg.signed_at_ms))
            .or_insert_with(|| {
                let key = match msg.signer {
                    Party::Honest => &self.honest,
                    Party::Attacker => &self.attacker,
                };
                sign(key, &claims(key, nonce, msg.signed_at_ms))
            })
            .clone()
    }

    /// `verify_device`, cached: it is pure, and Ed25519 verification is slow in debug
    /// builds. The nonce half always runs uncached on the real state.
    fn device_ok(&self, signed: &SignedConnect) -> bool {
        let mut cache = self.device_checks.lock().unwrap();
        *cache
            .entry(signed.clone())
            .or_insert_with(|| verify_device(signed).is_ok())
    }

    /// Runs the configured verifier; returns whether the connect was accepted.
    ///
    /// `Real` is `Challenges::verify` split into its two public halves
    /// (`redeem_nonce`, then `verify_device`), exactly as `verify` composes them.
    fn verify(&self, state: &mut State, signed: &SignedConnect, conn: Conn) -> bool {
        let now = state.now_ms;
        match self.verifier {
            Verifier::Real => {
                state
                    .gateway
                    .redeem_nonce(now, signed, &conn.challenge)
                    .is_ok()
                    && self.device_ok(signed)
            }
            Verifier::NoConsume => {
                let mut scratch = state.gateway.clone();
                scratch.redeem_nonce(now, signed, &conn.challenge).is_ok() && self.device_ok(signed)
            }
            Verifier::TrustsSignedNonce => {
                let ok = self.device_ok(signed) && !state.twin_used.contains(&signed.claims.nonce);
                if ok {
                    state.twin_used.insert(signed.claims.nonce);
                }
                ok
            }
        }
    }
}

impl Model for ChallengeModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            gateway: Challenges::new(ChallengeLimits {
                // Small enough that the model also exercises eviction.
                max_outstanding: 2,
                ..ChallengeLimits::default()
            }),
            now_ms: START_MS,
            ticks: 0,
            conns: vec![],
            deliveries: 0,
            accepted: BTreeMap::new(),
            twin_used: BTreeSet::new(),
            honest_connected: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.conns.len() < self.max_conns {
            actions.push(Action::Open(Party::Honest));
            actions.push(Action::Open(Party::Attacker));
        }
        if state.deliveries < self.max_deliveries {
            for msg in Self::network(state) {
                for conn in 0..state.conns.len() {
                    actions.push(Action::Deliver { msg, conn });
                }
            }
        }
        if state.ticks < self.max_ticks {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Open(owner) => {
                let random = [state.conns.len() as u8 + 1; 32];
                let challenge = state.gateway.issue(state.now_ms, random).ok()?;
                state.conns.push(Conn { owner, challenge });
            }
            Action::Deliver { msg, conn } => {
                state.deliveries += 1;
                let signed = self.signed(&state, msg);
                let conn = state.conns[conn];
                if self.verify(&mut state, &signed, conn) {
                    *state.accepted.entry(signed.claims.nonce).or_default() += 1;
                    state.honest_connected |= msg.signer == Party::Honest;
                }
            }
            Action::Tick => {
                state.ticks += 1;
                state.now_ms += DEFAULT_NONCE_TTL_MS + 1_000;
            }
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(AT_MOST_ONCE, |_, s: &State| {
                s.accepted.values().all(|&n| n <= 1)
            }),
            Property::always(ONLY_ISSUED, |_, s: &State| {
                s.accepted
                    .keys()
                    .all(|n| s.conns.iter().any(|c| c.challenge.nonce == *n))
            }),
            Property::sometimes("the honest client can connect", |_, s: &State| {
                s.honest_connected
            }),
        ]
    }
}

/// Explores every reachable state for the real verifier; a broken twin stops at the first
/// counterexample to `target`.
fn check(verifier: Verifier, target: Option<&'static str>) -> impl Checker<ChallengeModel> {
    let builder = ChallengeModel::new(verifier).checker().threads(2);
    match target {
        None => builder,
        Some(name) => builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([name]))),
    }
    .spawn_bfs()
    .join()
}

#[test]
fn the_real_verifier_satisfies_both_claims() {
    let started = Instant::now();
    let checker = check(Verifier::Real, None);
    checker.assert_properties();
    eprintln!(
        "real verifier: {} unique states, depth {}, {:?}",
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    assert!(
        checker.unique_state_count() > 1_000,
        "model too small to mean much"
    );
}

#[test]
fn a_verifier_that_does_not_consume_nonces_is_caught() {
    let checker = check(Verifier::NoConsume, Some(AT_MOST_ONCE));
    let path = checker
        .discovery(AT_MOST_ONCE)
        .expect("the checker must find a replay");
    assert!(path.last_state().accepted.values().any(|&n| n > 1));
}

#[test]
fn a_verifier_that_trusts_the_signed_nonce_is_caught() {
    let checker = check(Verifier::TrustsSignedNonce, Some(ONLY_ISSUED));
    let path = checker
        .discovery(ONLY_ISSUED)
        .expect("the checker must find a forged nonce");
    assert!(path.last_state().accepted.contains_key(&FORGED));
}
