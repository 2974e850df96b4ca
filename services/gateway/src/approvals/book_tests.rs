use std::collections::BTreeMap;

use super::*;
use crate::approvals::binding::BoundCommand;

fn binding(line: &str) -> Binding {
    Binding {
        command: BoundCommand::Shell(line.into()),
        cwd: String::new(),
        env: BTreeMap::new(),
        executables: vec!["/usr/bin/ls".into()],
        background: false,
    }
}

fn who(session: &str) -> Requester {
    Requester {
        agent_id: "main".into(),
        session_key: session.into(),
        turn_id: "t".into(),
    }
}

/// Opens and puts a request; returns its id.
fn ask(book: &mut ApprovalBook, session: &str, line: &str, now: i64) -> ApprovalId {
    let a = book
        .open(
            ApprovalId::random(),
            who(session),
            binding(line),
            "miss".into(),
            now,
        )
        .unwrap();
    let id = a.id.clone();
    book.put(a);
    id
}

fn decide(book: &mut ApprovalBook, id: &ApprovalId, d: Decision, now: i64) {
    let a = book.resolve(id, d, now).unwrap();
    book.put(a);
}

#[test]
fn ids_are_random_and_parse_back() {
    let a = ApprovalId::random();
    let b = ApprovalId::random();
    assert_ne!(a, b);
    assert_eq!(ApprovalId::parse(a.as_str()), Some(a));
    for bad in [
        "",
        "apr_",
        "apr_0000000000",
        "xyz_abcdefghij",
        "apr_abcdefghijk",
    ] {
        assert_eq!(ApprovalId::parse(bad), None, "{bad}");
    }
}

#[test]
fn allow_once_covers_exactly_one_identical_call() {
    let mut book = ApprovalBook::default();
    let id = ask(&mut book, "s1", "ls", 0);
    decide(&mut book, &id, Decision::AllowOnce, 10);
    let h = binding("ls").hash();
    // Another session does not get it.
    assert_eq!(book.find(&who("s2"), h, 20), Found::Nothing);
    // A different command does not get it.
    assert_eq!(
        book.find(&who("s1"), binding("ls; rm -rf x").hash(), 20),
        Found::Nothing
    );
    let Found::Once(used) = book.find(&who("s1"), h, 20) else {
        panic!("allow-once must cover the identical call");
    };
    assert_eq!(used.state, ApprovalState::Used { at_ms: 20 });
    book.put(*used);
    assert_eq!(book.find(&who("s1"), h, 30), Found::Nothing, "single use");
}

#[test]
fn allow_always_covers_every_session_of_the_agent_until_denied() {
    let mut book = ApprovalBook::default();
    let id = ask(&mut book, "s1", "ls", 0);
    decide(&mut book, &id, Decision::AllowAlways, 10);
    let h = binding("ls").hash();
    for now in [20, APPROVAL_TTL_MS * 10] {
        assert_eq!(book.find(&who("s2"), h, now), Found::Always(id.clone()));
    }
    let other_agent = Requester {
        agent_id: "other".into(),
        ..who("s1")
    };
    assert_eq!(book.find(&other_agent, h, 20), Found::Nothing);
    decide(&mut book, &id, Decision::Deny, 30);
    assert_eq!(book.find(&who("s1"), h, 40), Found::Nothing, "revoked");
}

#[test]
fn requests_and_unused_approvals_expire() {
    let mut book = ApprovalBook::default();
    let id = ask(&mut book, "s1", "ls", 0);
    let h = binding("ls").hash();
    assert_eq!(book.find(&who("s1"), h, 1), Found::Pending(id.clone()));
    assert_eq!(book.find(&who("s1"), h, APPROVAL_TTL_MS), Found::Nothing);
    assert_eq!(
        book.resolve(&id, Decision::AllowOnce, APPROVAL_TTL_MS),
        Err(BookError::Expired(id.to_string()))
    );

    let id = ask(&mut book, "s1", "ls", 100);
    decide(&mut book, &id, Decision::AllowOnce, 200);
    assert_eq!(book.take(&id, 100 + APPROVAL_TTL_MS), Taken::Gone);
    assert_eq!(
        book.find(&who("s1"), h, 100 + APPROVAL_TTL_MS),
        Found::Nothing
    );
    assert_eq!(
        book.get(&id).unwrap().state_name(100 + APPROVAL_TTL_MS),
        "expired"
    );
}

#[test]
fn decisions_are_final_except_revoking_always() {
    let mut book = ApprovalBook::default();
    let id = ask(&mut book, "s1", "ls", 0);
    decide(&mut book, &id, Decision::Deny, 1);
    for d in [Decision::AllowOnce, Decision::AllowAlways, Decision::Deny] {
        assert!(matches!(
            book.resolve(&id, d, 2),
            Err(BookError::AlreadyResolved { .. })
        ));
    }
    let id = ask(&mut book, "s1", "ls", 0);
    decide(&mut book, &id, Decision::AllowOnce, 1);
    assert!(book.resolve(&id, Decision::AllowAlways, 2).is_err());
    assert!(matches!(
        book.resolve(&ApprovalId::random(), Decision::Deny, 2),
        Err(BookError::NotFound(_))
    ));
}

#[test]
fn the_waiter_takes_its_answer_once() {
    let mut book = ApprovalBook::default();
    let id = ask(&mut book, "s1", "ls", 0);
    assert_eq!(book.take(&id, 1), Taken::Pending);
    decide(&mut book, &id, Decision::AllowOnce, 2);
    let Taken::Once(used) = book.take(&id, 3) else {
        panic!("allowed once");
    };
    book.put(*used);
    assert_eq!(
        book.take(&id, 4),
        Taken::Gone,
        "a second waiter gets nothing"
    );

    let id = ask(&mut book, "s1", "ls", 0);
    decide(&mut book, &id, Decision::Deny, 2);
    assert_eq!(book.take(&id, 3), Taken::Denied);
}

#[test]
fn open_requests_are_capped_per_agent() {
    let mut book = ApprovalBook::default();
    for i in 0..MAX_PENDING_PER_AGENT {
        ask(&mut book, "s1", &format!("cmd {i}"), 0);
    }
    assert!(matches!(
        book.open(
            ApprovalId::random(),
            who("s1"),
            binding("one more"),
            String::new(),
            1
        ),
        Err(BookError::TooManyPending { .. })
    ));
    // Once they expire, new requests are accepted again.
    assert!(
        book.open(
            ApprovalId::random(),
            who("s1"),
            binding("later"),
            String::new(),
            APPROVAL_TTL_MS
        )
        .is_ok()
    );
}

#[test]
fn stale_entries_are_forgotten_but_allow_always_is_kept() {
    let mut book = ApprovalBook::default();
    let keep = ask(&mut book, "s1", "ls", 0);
    decide(&mut book, &keep, Decision::AllowAlways, 1);
    let drop = ask(&mut book, "s1", "pwd", 0);
    assert!(book.stale(RETAIN_MS - 1).is_empty());
    assert_eq!(book.stale(RETAIN_MS), vec![drop]);
}
