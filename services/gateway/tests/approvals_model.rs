//! A stateright model of exec approvals, run against the real `ApprovalBook`.
//!
//! Two sessions make exec calls with two bindings that differ only in their environment
//! (`ls` and `A=1 ls`); the owner allows once, allows always or denies any request; time
//! advances in 20-minute steps past the 30-minute expiry. A call either runs at once (an
//! approval covers it), joins or opens a request and waits, and a waiting call takes its
//! answer later. Ghost state, kept by the model from the owner's decisions and not from
//! the book, says which runs were authorised.
//!
//! Claim: every run is covered by an owner decision for exactly its binding — an
//! allow-always not revoked, or an allow-once of the same session, used once, before it
//! expired. Each of three deliberately broken twins (plausible wiring mistakes around the
//! book) must be caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use pincer_gateway::approvals::binding::{Binding, BindingHash, BoundCommand};
use pincer_gateway::approvals::book::{
    APPROVAL_TTL_MS, ApprovalBook, ApprovalId, Decision, Found, Requester, Taken,
};
use stateright::{Checker, Model, Property};

const TICK: i64 = 20 * 60_000;
const END: i64 = 2 * TICK;
const MAX_REQUESTS: usize = 2;
const MAX_WAITING: usize = 1;
const MAX_RUNS: u32 = 2;
const SESSIONS: [&str; 2] = ["s0", "s1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    /// The allow-once row is not written back as used after a run.
    OnceNotConsumed,
    /// The call is matched by its command text only (environment ignored).
    MatchByCommandOnly,
    /// An allow-once of any session covers the call.
    OnceAcrossSessions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Action {
    Call { session: usize, binding: usize },
    Take(usize),
    Resolve(usize, Dec),
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dec {
    Once,
    Always,
    Deny,
}

/// What the owner decided about request `i`, per the model (not the book).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GhostRequest {
    session: usize,
    binding: usize,
    created: i64,
    decision: Option<Dec>,
    revoked: bool,
    runs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    book: ApprovalBook,
    now: i64,
    requests: Vec<GhostRequest>,
    /// Calls waiting for an answer: (request index, session, binding).
    waiting: Vec<(usize, usize, usize)>,
    unauthorised_run: bool,
}

struct ApprovalsModel {
    variant: Variant,
}

fn binding(i: usize) -> Binding {
    let mut env = BTreeMap::new();
    if i == 1 {
        env.insert("A".to_owned(), "1".to_owned());
    }
    Binding {
        command: BoundCommand::Shell("ls".into()),
        cwd: String::new(),
        env,
        executables: vec!["/usr/bin/ls".into()],
        background: false,
    }
}

fn requester(session: usize) -> Requester {
    Requester {
        agent_id: "main".into(),
        session_key: SESSIONS[session].into(),
        turn_id: "t".into(),
    }
}

fn id(i: usize) -> ApprovalId {
    ApprovalId::parse(&format!("apr_aaaaaaaaa{}", (b'a' + i as u8) as char)).unwrap()
}

fn index(id: &ApprovalId) -> usize {
    (id.as_str().as_bytes()[13] - b'a') as usize
}

impl ApprovalsModel {
    fn hash_for(&self, b: usize) -> BindingHash {
        match self.variant {
            Variant::MatchByCommandOnly => binding(0).hash(),
            _ => binding(b).hash(),
        }
    }

    fn find(&self, book: &ApprovalBook, session: usize, b: usize, now: i64) -> Found {
        let found = book.find(&requester(session), self.hash_for(b), now);
        if self.variant == Variant::OnceAcrossSessions && !matches!(found, Found::Once(_)) {
            let other = book.find(&requester(1 - session), self.hash_for(b), now);
            if matches!(other, Found::Once(_)) {
                return other;
            }
        }
        found
    }

    /// Records a run of `binding` by `session` authorised by request `i`.
    fn run(state: &mut State, i: usize, session: usize, b: usize) {
        let now = state.now;
        let g = &mut state.requests[i];
        g.runs += 1;
        let ok = g.binding == b
            && match g.decision {
                Some(Dec::Always) => !g.revoked,
                Some(Dec::Once) => {
                    g.session == session && g.runs == 1 && now < g.created + APPROVAL_TTL_MS
                }
                _ => false,
            };
        if !ok {
            state.unauthorised_run = true;
        }
    }
}

impl Model for ApprovalsModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            book: ApprovalBook::default(),
            now: 0,
            requests: Vec::new(),
            waiting: Vec::new(),
            unauthorised_run: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for session in 0..SESSIONS.len() {
            for binding in 0..2 {
                actions.push(Action::Call { session, binding });
            }
        }
        for w in 0..state.waiting.len() {
            actions.push(Action::Take(w));
        }
        for i in 0..state.requests.len() {
            for d in [Dec::Once, Dec::Always, Dec::Deny] {
                actions.push(Action::Resolve(i, d));
            }
        }
        if state.now < END {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Call {
                session,
                binding: b,
            } => match self.find(&s.book, session, b, s.now) {
                Found::Always(found) => Self::run(&mut s, index(&found), session, b),
                Found::Once(used) => {
                    let i = index(&used.id);
                    if self.variant != Variant::OnceNotConsumed {
                        s.book.put(*used);
                    }
                    Self::run(&mut s, i, session, b);
                }
                Found::Pending(found) => {
                    if s.waiting.len() >= MAX_WAITING {
                        return None;
                    }
                    s.waiting.push((index(&found), session, b));
                }
                Found::Nothing => {
                    if s.requests.len() >= MAX_REQUESTS || s.waiting.len() >= MAX_WAITING {
                        return None;
                    }
                    let i = s.requests.len();
                    let row = s
                        .book
                        .open(id(i), requester(session), binding(b), String::new(), s.now)
                        .ok()?;
                    s.book.put(row);
                    s.requests.push(GhostRequest {
                        session,
                        binding: b,
                        created: s.now,
                        decision: None,
                        revoked: false,
                        runs: 0,
                    });
                    s.waiting.push((i, session, b));
                }
            },
            Action::Take(w) => {
                let (i, session, b) = s.waiting[w];
                match s.book.take(&id(i), s.now) {
                    Taken::Pending => return None,
                    Taken::Once(used) => {
                        if self.variant != Variant::OnceNotConsumed {
                            s.book.put(*used);
                        }
                        Self::run(&mut s, i, session, b);
                    }
                    Taken::Always => Self::run(&mut s, i, session, b),
                    Taken::Denied | Taken::Gone => {}
                }
                s.waiting.remove(w);
            }
            Action::Resolve(i, d) => {
                let decision = match d {
                    Dec::Once => Decision::AllowOnce,
                    Dec::Always => Decision::AllowAlways,
                    Dec::Deny => Decision::Deny,
                };
                let row = s.book.resolve(&id(i), decision, s.now).ok()?;
                s.book.put(row);
                let g = &mut s.requests[i];
                if g.decision.is_some() && d == Dec::Deny {
                    g.revoked = true;
                } else {
                    g.decision = Some(d);
                }
            }
            Action::Tick => s.now += TICK,
        }
        // Bound the state space: a third run of one decision adds nothing new.
        if s.requests.iter().any(|g| g.runs > MAX_RUNS) {
            return None;
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "every run is covered by an owner decision for exactly it",
                |_, s: &State| !s.unauthorised_run,
            ),
            Property::sometimes("an allow-once run happens", |_, s: &State| {
                s.requests
                    .iter()
                    .any(|g| g.runs > 0 && matches!(g.decision, Some(Dec::Once)))
            }),
            Property::sometimes("an allow-always covers a second run", |_, s: &State| {
                s.requests
                    .iter()
                    .any(|g| g.runs > 1 && matches!(g.decision, Some(Dec::Always)))
            }),
        ]
    }
}

fn check(variant: Variant) -> Option<String> {
    let checker = ApprovalsModel { variant }
        .checker()
        .threads(1)
        .spawn_bfs()
        .join();
    checker.assert_properties_hold_for_sometimes();
    checker
        .discovery("every run is covered by an owner decision for exactly it")
        .map(|path| format!("{:?}", path.into_actions()))
}

trait SometimesHold {
    fn assert_properties_hold_for_sometimes(&self);
}

impl<C: Checker<ApprovalsModel>> SometimesHold for C {
    fn assert_properties_hold_for_sometimes(&self) {
        for name in [
            "an allow-once run happens",
            "an allow-always covers a second run",
        ] {
            assert!(
                self.discovery(name).is_some(),
                "the model never reaches: {name}"
            );
        }
    }
}

#[test]
fn the_book_authorises_only_what_the_owner_approved() {
    assert_eq!(check(Variant::Correct), None);
}

#[test]
fn broken_once_not_consumed_is_caught() {
    assert!(check(Variant::OnceNotConsumed).is_some());
}

#[test]
fn broken_match_by_command_only_is_caught() {
    assert!(check(Variant::MatchByCommandOnly).is_some());
}

#[test]
fn broken_once_across_sessions_is_caught() {
    assert!(check(Variant::OnceAcrossSessions).is_some());
}
