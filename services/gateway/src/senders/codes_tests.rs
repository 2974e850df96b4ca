use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const T0: i64 = 1_700_000_000_000;

fn key(channel: &str, account: &str, sender: &str) -> SenderKey {
    SenderKey {
        channel: channel.into(),
        account_id: account.into(),
        sender_id: sender.into(),
    }
}

fn issue(book: &mut SenderBook, k: SenderKey, now: i64, rng: &mut StdRng) -> SenderRequest {
    match book.request(k, now, rng) {
        RequestOutcome::Issue(r) => {
            book.put_request(r.clone());
            r
        }
        other => panic!("expected a new request, got {other:?}"),
    }
}

#[test]
fn codes_use_the_alphabet_and_length() {
    let mut rng = rand::rng();
    for _ in 0..2000 {
        let code = PairingCode::generate(&mut rng);
        let s = code.as_str();
        assert_eq!(s.len(), CODE_LEN);
        assert!(s.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{s}");
        assert!(!s.contains(['0', 'O', '1', 'I']), "{s}");
    }
    assert_eq!(CODE_ALPHABET.len(), 32);
    let unique: std::collections::BTreeSet<u8> = CODE_ALPHABET.iter().copied().collect();
    assert_eq!(unique.len(), 32, "no repeated characters");
}

#[test]
fn every_alphabet_character_is_drawn() {
    // 32 characters, 8000 draws: a biased or truncated sampler would miss some.
    let mut rng = StdRng::seed_from_u64(7);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        seen.extend(PairingCode::generate(&mut rng).as_str().bytes());
    }
    assert_eq!(seen.len(), 32);
}

#[test]
fn parsing_accepts_lower_case_and_rejects_the_rest() {
    let code = PairingCode::parse(" abcd2345 ").unwrap();
    assert_eq!(code.as_str(), "ABCD2345");
    for bad in [
        "",
        "ABCD234",
        "ABCD23456",
        "ABCD2340",
        "ABCDO345",
        "ABCD1345",
        "ABCDI345",
        "ABCD 345",
        "ÄBCD2345",
    ] {
        assert_eq!(
            PairingCode::parse(bad),
            Err(CodeError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn comparison_is_by_value_and_debug_hides_the_code() {
    let a = PairingCode::parse("ABCD2345").unwrap();
    assert!(a.ct_eq(&PairingCode::parse("abcd2345").unwrap()));
    for i in 0..CODE_LEN {
        let mut s = a.as_str().as_bytes().to_vec();
        s[i] = if s[i] == b'Z' { b'Y' } else { b'Z' };
        let other = PairingCode::parse(std::str::from_utf8(&s).unwrap()).unwrap();
        assert!(!a.ct_eq(&other), "differs at {i}");
        assert_ne!(a, other);
    }
    assert!(!format!("{a:?}").contains("ABCD2345"));
}

#[test]
fn one_code_per_request_and_silence_while_it_waits() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut book = SenderBook::default();
    let k = key("telegram", "default", "42");
    let first = issue(&mut book, k.clone(), T0, &mut rng);
    assert_eq!(first.expires_ms(), T0 + CODE_TTL_MS);
    assert_eq!(
        book.request(k.clone(), T0 + 1000, &mut rng),
        RequestOutcome::AlreadyPending
    );
    assert_eq!(
        book.request(k.clone(), T0 + CODE_TTL_MS - 1, &mut rng),
        RequestOutcome::AlreadyPending
    );
    // After the hour the old code is dead and the stranger may ask again: a new code.
    let second = issue(&mut book, k.clone(), T0 + CODE_TTL_MS, &mut rng);
    assert_ne!(first.code, second.code);
    assert_eq!(book.requests().len(), 1, "the old request was replaced");
    assert_eq!(
        book.approve("telegram", &first.code, T0 + CODE_TTL_MS + 1),
        Err(CodeError::NotFound {
            channel: "telegram".into()
        })
    );
}

#[test]
fn at_most_three_pending_per_channel_account() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut book = SenderBook::default();
    for s in ["1", "2", "3"] {
        issue(&mut book, key("telegram", "default", s), T0, &mut rng);
    }
    assert_eq!(
        book.request(key("telegram", "default", "4"), T0, &mut rng),
        RequestOutcome::Full
    );
    // Other accounts and channels have their own budget.
    issue(&mut book, key("telegram", "second-bot", "4"), T0, &mut rng);
    issue(&mut book, key("matrix", "default", "4"), T0, &mut rng);
    // An approved request frees a slot.
    let waiting = book
        .requests()
        .into_iter()
        .find(|r| r.key.channel == "telegram" && r.key.account_id == "default")
        .unwrap()
        .clone();
    let (k, paired) = book.approve("telegram", &waiting.code, T0 + 5).unwrap();
    book.apply_approval(&k, paired);
    issue(
        &mut book,
        key("telegram", "default", "4"),
        T0 + 10,
        &mut rng,
    );
    assert_eq!(
        book.request(key("telegram", "default", "5"), T0 + 10, &mut rng),
        RequestOutcome::Full
    );
    // Expired requests free their slots.
    issue(
        &mut book,
        key("telegram", "default", "5"),
        T0 + CODE_TTL_MS,
        &mut rng,
    );
}

#[test]
fn approval_is_single_use_and_pairs_the_sender() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut book = SenderBook::default();
    let r = issue(&mut book, key("telegram", "default", "42"), T0, &mut rng);
    assert!(!book.is_paired("telegram", "42"));
    let (k, paired) = book.approve("telegram", &r.code, T0 + 60_000).unwrap();
    assert_eq!(paired.sender_id, "42");
    assert_eq!(paired.approved_ms, T0 + 60_000);
    book.apply_approval(&k, paired);
    assert!(book.is_paired("telegram", "42"));
    assert!(!book.is_paired("matrix", "42"), "per channel");
    assert!(book.requests().is_empty());
    assert!(matches!(
        book.approve("telegram", &r.code, T0 + 60_001),
        Err(CodeError::NotFound { .. })
    ));
    let removed = book.unpair("telegram", "42").unwrap();
    book.remove_paired(&removed.channel, &removed.sender_id);
    assert!(!book.is_paired("telegram", "42"));
    assert!(matches!(
        book.unpair("telegram", "42"),
        Err(CodeError::NotPaired { .. })
    ));
}

#[test]
fn expired_other_channel_and_guessed_codes_fail() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut book = SenderBook::default();
    let r = issue(&mut book, key("telegram", "default", "42"), T0, &mut rng);
    assert_eq!(
        book.approve("telegram", &r.code, T0 + CODE_TTL_MS),
        Err(CodeError::Expired)
    );
    assert_eq!(
        book.reject("telegram", &r.code, T0 + CODE_TTL_MS),
        Err(CodeError::Expired)
    );
    assert!(matches!(
        book.approve("matrix", &r.code, T0),
        Err(CodeError::NotFound { .. })
    ));
    let guess = loop {
        let g = PairingCode::generate(&mut rng);
        if !g.ct_eq(&r.code) {
            break g;
        }
    };
    assert!(matches!(
        book.approve("telegram", &guess, T0),
        Err(CodeError::NotFound { .. })
    ));
    assert!(!book.is_paired("telegram", "42"));
}

#[test]
fn a_rejected_sender_gets_nothing_for_the_rest_of_the_hour() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut book = SenderBook::default();
    let k = key("telegram", "default", "42");
    let r = issue(&mut book, k.clone(), T0, &mut rng);
    let rejected = book.reject("telegram", &r.code, T0 + 10).unwrap();
    assert_eq!(rejected.state, RequestState::Rejected { at_ms: T0 + 10 });
    book.put_request(rejected);
    assert_eq!(
        book.request(k.clone(), T0 + 20, &mut rng),
        RequestOutcome::Rejected
    );
    assert!(matches!(
        book.approve("telegram", &r.code, T0 + 30),
        Err(CodeError::NotFound { .. })
    ));
    assert_eq!(book.pending_on("telegram", "default", T0 + 30), 0);
    assert_eq!(book.stale(T0 + CODE_TTL_MS), vec![k.clone()]);
    book.remove_request(&k);
    issue(&mut book, k, T0 + CODE_TTL_MS, &mut rng);
}

#[derive(Debug, Clone)]
enum Op {
    Write(u8, u8),
    Approve(u8, bool),
    Reject(u8),
    Guess(u8),
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..2).prop_map(|(s, a)| Op::Write(s, a)),
        (0u8..8, any::<bool>()).prop_map(|(i, other)| Op::Approve(i, other)),
        (0u8..8).prop_map(Op::Reject),
        any::<u8>().prop_map(Op::Guess),
        (0i64..2 * CODE_TTL_MS).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever strangers and the owner do: no account ever has more than 3 live pending
    /// requests; live codes are unique; only an issued, live, pending code on its own
    /// channel pairs a sender, and exactly that sender; a request is answered at most once.
    #[test]
    fn the_book_keeps_its_rules(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..60)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut book = SenderBook::default();
        let mut now = T0;
        let mut issued: Vec<SenderRequest> = Vec::new();
        for op in ops {
            match op {
                Op::Write(s, a) => {
                    let k = key("telegram", &format!("acct{a}"), &format!("s{s}"));
                    if book.is_paired("telegram", &k.sender_id) {
                        continue;
                    }
                    let before = book.requests.get(&k).cloned();
                    match book.request(k.clone(), now, &mut rng) {
                        RequestOutcome::Issue(r) => {
                            prop_assert!(before.as_ref().is_none_or(|b| !b.live(now)));
                            prop_assert_eq!(r.created_ms, now);
                            book.put_request(r.clone());
                            issued.push(r);
                        }
                        RequestOutcome::AlreadyPending => prop_assert!(before.is_some_and(|b| b.live(now) && b.state == RequestState::Pending)),
                        RequestOutcome::Rejected => prop_assert!(before.is_some_and(|b| b.live(now) && b.state != RequestState::Pending)),
                        RequestOutcome::Full => prop_assert_eq!(book.pending_on("telegram", &k.account_id, now), MAX_PENDING_PER_ACCOUNT),
                    }
                }
                Op::Approve(i, other_channel) => {
                    let Some(r) = issued.get(i as usize).cloned() else { continue };
                    let channel = if other_channel { "matrix" } else { "telegram" };
                    let current = book.requests.get(&r.key).cloned();
                    let valid = !other_channel
                        && current.as_ref().is_some_and(|c| c.code.ct_eq(&r.code) && c.state == RequestState::Pending && c.live(now));
                    match book.approve(channel, &r.code, now) {
                        Ok((k, paired)) => {
                            prop_assert!(valid);
                            prop_assert_eq!(&k, &r.key);
                            prop_assert_eq!(&paired.sender_id, &r.key.sender_id);
                            book.apply_approval(&k, paired);
                            prop_assert!(book.approve(channel, &r.code, now).is_err(), "single use");
                        }
                        Err(_) => prop_assert!(!valid),
                    }
                }
                Op::Reject(i) => {
                    let Some(r) = issued.get(i as usize).cloned() else { continue };
                    if let Ok(rejected) = book.reject("telegram", &r.code, now) {
                        book.put_request(rejected);
                    }
                }
                Op::Guess(b) => {
                    let mut rng2 = StdRng::seed_from_u64(u64::from(b));
                    let guess = PairingCode::generate(&mut rng2);
                    let known = book.requests.values().any(|r| r.code.ct_eq(&guess));
                    if !known {
                        prop_assert!(book.approve("telegram", &guess, now).is_err());
                    }
                }
                Op::Wait(ms) => {
                    now += ms;
                    for k in book.stale(now) {
                        book.remove_request(&k);
                    }
                }
            }
            for a in ["acct0", "acct1"] {
                prop_assert!(book.pending_on("telegram", a, now) <= MAX_PENDING_PER_ACCOUNT);
            }
            let codes: Vec<&str> = book.requests.values().map(|r| r.code.as_str()).collect();
            let unique: std::collections::BTreeSet<&&str> = codes.iter().collect();
            prop_assert_eq!(unique.len(), codes.len());
        }
    }
}
