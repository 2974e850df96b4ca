//! A stateright model of sender pairing, run against the real `SenderBook`, wired the way
//! the gateway wires it (stale requests forgotten before each decision, paired senders
//! skip the book, a code delivered only with a new request).
//!
//! Four strangers write to one channel account, again and again; the owner approves or
//! rejects any code ever delivered, on the right channel or another one, and guesses;
//! time advances once, past the 1-hour TTL. Ghost state, kept from the
//! specification and not from the book, records every code delivered and the owner's
//! valid approvals.
//!
//! Claims: at most 3 requests wait per account; a stranger gets one code per request; a
//! sender is paired only by the owner's approval of a live code delivered to them, on its
//! channel, used once; a valid code is never refused. Each claim has a deliberately
//! broken twin (a plausible wiring mistake around the book) that the checker must catch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use pincer_gateway::senders::codes::{
    CODE_TTL_MS, CodeError, MAX_PENDING_PER_ACCOUNT, PairedSender, PairingCode, RequestOutcome,
    SenderBook, SenderKey,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use stateright::{Checker, HasDiscoveries, Model, Property};

const MINUTE: i64 = 60_000;
/// One step past the TTL: codes issued before it are expired after it.
const TICK: i64 = 61 * MINUTE;
const END: i64 = TICK;
const STRANGERS: usize = 4;
const MAX_SENT: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    /// The gateway sends the waiting code again whenever the stranger writes.
    ResendCode,
    /// The account in the request key is the chat id, so each stranger has a budget.
    AccountPerChat,
    /// The approve method ignores the channel it was given.
    AnyChannel,
    /// The approve method treats "expired" as a formality and pairs the sender anyway.
    IgnoreExpiry,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Action {
    Write(usize),
    Approve { sent: usize, other_channel: bool },
    Reject(usize),
    Guess,
    Tick,
}

/// A code message the model saw delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Sent {
    stranger: usize,
    code: String,
    at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    book: SenderBook,
    now: i64,
    issued: u64,
    sent: Vec<Sent>,
    used: Vec<String>,
    rejected: Vec<String>,
    /// Strangers paired through a valid approval, per the specification.
    owner_approved: [bool; STRANGERS],
    bad_pair: bool,
    valid_refused: bool,
    turned_away: bool,
    expired_seen: bool,
}

struct SenderModel {
    variant: Variant,
}

fn sender(s: usize) -> String {
    format!("{}", 100 + s)
}

fn key(variant: Variant, s: usize) -> SenderKey {
    SenderKey {
        channel: "telegram".into(),
        account_id: if variant == Variant::AccountPerChat {
            sender(s)
        } else {
            "default".into()
        },
        sender_id: sender(s),
    }
}

impl State {
    /// Codes delivered, not used, not rejected, not expired, and the latest of their
    /// stranger: the requests waiting per the specification.
    fn live(&self) -> Vec<&Sent> {
        (0..STRANGERS)
            .filter_map(|s| self.sent.iter().rev().find(|x| x.stranger == s))
            .filter(|x| {
                self.now < x.at + CODE_TTL_MS
                    && !self.used.contains(&x.code)
                    && !self.rejected.contains(&x.code)
            })
            .collect()
    }

    /// Whether the owner approving `sent[i]` on `telegram` is valid per the specification.
    fn valid(&self, i: usize) -> bool {
        let x = &self.sent[i];
        self.live()
            .iter()
            .any(|l| l.code == x.code && l.stranger == x.stranger)
            && !self.owner_approved[x.stranger]
    }
}

impl SenderModel {
    fn approve(&self, s: &mut State, i: usize, other_channel: bool) {
        let x = s.sent[i].clone();
        let valid = !other_channel && s.valid(i);
        let code = PairingCode::parse(&x.code).unwrap();
        let channel = if other_channel && self.variant != Variant::AnyChannel {
            "matrix"
        } else {
            "telegram"
        };
        match s.book.approve(channel, &code, s.now) {
            Ok((k, paired)) => {
                s.book.apply_approval(&k, paired);
                s.used.push(x.code.clone());
                if valid && k.sender_id == sender(x.stranger) {
                    s.owner_approved[x.stranger] = true;
                } else {
                    s.bad_pair = true;
                }
            }
            Err(CodeError::Expired) => {
                s.expired_seen = true;
                if self.variant == Variant::IgnoreExpiry {
                    let request = s
                        .book
                        .requests()
                        .into_iter()
                        .find(|r| r.code.ct_eq(&code))
                        .cloned();
                    if let Some(r) = request {
                        let paired = PairedSender {
                            channel: r.key.channel.clone(),
                            sender_id: r.key.sender_id.clone(),
                            account_id: r.key.account_id.clone(),
                            approved_ms: s.now,
                        };
                        s.book.apply_approval(&r.key, paired);
                        s.bad_pair |= !valid;
                    }
                }
                s.valid_refused |= valid;
            }
            Err(_) => s.valid_refused |= valid,
        }
    }
}

impl Model for SenderModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            book: SenderBook::default(),
            now: 0,
            issued: 0,
            sent: Vec::new(),
            used: Vec::new(),
            rejected: Vec::new(),
            owner_approved: [false; STRANGERS],
            bad_pair: false,
            valid_refused: false,
            turned_away: false,
            expired_seen: false,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if s.sent.len() < MAX_SENT {
            actions.extend((0..STRANGERS).map(Action::Write));
        }
        for i in 0..s.sent.len() {
            actions.push(Action::Approve {
                sent: i,
                other_channel: false,
            });
            actions.push(Action::Approve {
                sent: i,
                other_channel: true,
            });
            actions.push(Action::Reject(i));
        }
        actions.push(Action::Guess);
        if s.now + TICK <= END {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Write(i) => {
                for k in s.book.stale(s.now) {
                    s.book.remove_request(&k);
                }
                if s.book.is_paired("telegram", &sender(i)) {
                    return Some(s);
                }
                let mut rng = StdRng::seed_from_u64(s.issued);
                match s.book.request(key(self.variant, i), s.now, &mut rng) {
                    RequestOutcome::Issue(r) => {
                        s.issued += 1;
                        s.sent.push(Sent {
                            stranger: i,
                            code: r.code.as_str().to_owned(),
                            at: s.now,
                        });
                        s.book.put_request(r);
                    }
                    RequestOutcome::AlreadyPending if self.variant == Variant::ResendCode => {
                        let code = s
                            .book
                            .requests()
                            .into_iter()
                            .find(|r| r.key.sender_id == sender(i))
                            .map(|r| r.code.as_str().to_owned())
                            .unwrap();
                        s.sent.push(Sent {
                            stranger: i,
                            code,
                            at: s.now,
                        });
                    }
                    RequestOutcome::Full => s.turned_away = true,
                    RequestOutcome::AlreadyPending | RequestOutcome::Rejected => {}
                }
            }
            Action::Approve {
                sent,
                other_channel,
            } => self.approve(&mut s, sent, other_channel),
            Action::Reject(i) => {
                let code = PairingCode::parse(&s.sent[i].code).unwrap();
                if let Ok(r) = s.book.reject("telegram", &code, s.now) {
                    s.rejected.push(s.sent[i].code.clone());
                    s.book.put_request(r);
                }
            }
            Action::Guess => {
                // A well-formed code the book never issued (issued codes are random).
                let guess = PairingCode::parse("GUESS234").unwrap();
                if !s.sent.iter().any(|x| x.code == "GUESS234")
                    && s.book.approve("telegram", &guess, s.now).is_ok()
                {
                    s.bad_pair = true;
                }
            }
            Action::Tick => s.now += TICK,
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("at most 3 requests wait per account", |_, s: &State| {
                s.live().len() <= MAX_PENDING_PER_ACCOUNT
                    && s.book.pending_on("telegram", "default", s.now) <= MAX_PENDING_PER_ACCOUNT
            }),
            Property::always("one code per request", |_, s: &State| {
                s.sent.iter().enumerate().all(|(i, a)| {
                    s.sent[i + 1..]
                        .iter()
                        .all(|b| b.stranger != a.stranger || b.at >= a.at + CODE_TTL_MS)
                })
            }),
            Property::always(
                "only the owner's valid approval pairs a sender",
                |_, s: &State| {
                    !s.bad_pair
                        && (0..STRANGERS).all(|i| {
                            !s.book.is_paired("telegram", &sender(i)) || s.owner_approved[i]
                        })
                },
            ),
            Property::always("a valid code is never refused", |_, s: &State| {
                !s.valid_refused
            }),
            Property::sometimes("a sender is paired", |_, s: &State| {
                s.owner_approved.iter().any(|a| *a)
            }),
            Property::sometimes("a fourth stranger is turned away", |_, s: &State| {
                s.turned_away
            }),
            Property::sometimes("a code expires", |_, s: &State| s.expired_seen),
        ]
    }
}

fn check(variant: Variant, stop_at: Option<&'static str>) -> impl Checker<SenderModel> {
    let started = Instant::now();
    let mut builder = SenderModel { variant }.checker();
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
fn sender_pairing_keeps_its_promises() {
    check(Variant::Correct, None).assert_properties();
}

#[test]
fn resending_the_code_is_caught() {
    check(Variant::ResendCode, Some("one code per request"))
        .assert_any_discovery("one code per request");
}

#[test]
fn a_budget_per_chat_is_caught() {
    check(
        Variant::AccountPerChat,
        Some("at most 3 requests wait per account"),
    )
    .assert_any_discovery("at most 3 requests wait per account");
}

#[test]
fn ignoring_the_channel_is_caught() {
    check(
        Variant::AnyChannel,
        Some("only the owner's valid approval pairs a sender"),
    )
    .assert_any_discovery("only the owner's valid approval pairs a sender");
}

#[test]
fn ignoring_expiry_is_caught() {
    check(
        Variant::IgnoreExpiry,
        Some("only the owner's valid approval pairs a sender"),
    )
    .assert_any_discovery("only the owner's valid approval pairs a sender");
}
