//! `Challenges::issue` / `verify`: each refusal, the order of checks, bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{NOW, TOKEN, answer, claims};
use pincer_identity::{
    ChallengeError, ChallengeLimits, Challenges, ClaimError, DeviceKey, MAX_CLOCK_SKEW_MS,
    NonceCollision, Signature, SignedConnect, sign,
};

fn setup() -> (Challenges, DeviceKey) {
    (Challenges::default(), DeviceKey::from_seed([7; 32]))
}

#[test]
fn a_correct_answer_is_accepted_once() {
    let (mut gw, key) = setup();
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    let signed = sign(&key, &answer(&key, &ch));
    let device = gw.verify(NOW + 10, &signed, &ch).unwrap();
    assert_eq!(device.device_id, key.device_id());
    assert_eq!(device.public_key, key.public_key());
    assert_eq!(device.claims, signed.claims);
    assert_eq!(
        gw.verify(NOW + 20, &signed, &ch),
        Err(ChallengeError::ReplayedNonce)
    );
}

#[test]
fn a_failed_attempt_still_consumes_the_nonce() {
    let (mut gw, key) = setup();
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    let mut bad = sign(&key, &answer(&key, &ch));
    let good = bad.clone();
    bad.signature = sign(&key, &claims(&key, ch.nonce, NOW + 1)).signature;
    assert_eq!(gw.verify(NOW, &bad, &ch), Err(ChallengeError::BadSignature));
    assert_eq!(
        gw.verify(NOW, &good, &ch),
        Err(ChallengeError::ReplayedNonce)
    );
}

#[test]
fn nonces_not_issued_here_are_unknown() {
    let (mut gw, key) = setup();
    let mut other = Challenges::default();
    let foreign = other.issue(NOW, [9; 32]).unwrap();
    let signed = sign(&key, &answer(&key, &foreign));
    assert_eq!(
        gw.verify(NOW, &signed, &foreign),
        Err(ChallengeError::UnknownNonce)
    );
}

#[test]
fn the_signed_nonce_must_be_this_connections() {
    let (mut gw, key) = setup();
    let mine = gw.issue(NOW, [1; 32]).unwrap();
    let theirs = gw.issue(NOW, [2; 32]).unwrap();
    let signed_for_theirs = sign(&key, &answer(&key, &theirs));
    assert_eq!(
        gw.verify(NOW, &signed_for_theirs, &mine),
        Err(ChallengeError::NonceMismatch)
    );
    // The other connection's nonce was not touched.
    assert!(gw.verify(NOW, &signed_for_theirs, &theirs).is_ok());
}

#[test]
fn nonces_expire_after_the_ttl() {
    let (mut gw, key) = setup();
    let ttl = gw.limits().nonce_ttl_ms;
    let on_time = gw.issue(NOW, [1; 32]).unwrap();
    let late = gw.issue(NOW, [2; 32]).unwrap();
    let signed = sign(&key, &claims(&key, on_time.nonce, NOW + ttl));
    assert!(gw.verify(NOW + ttl, &signed, &on_time).is_ok());
    let signed = sign(&key, &claims(&key, late.nonce, NOW + ttl + 1));
    assert_eq!(
        gw.verify(NOW + ttl + 1, &signed, &late),
        Err(ChallengeError::ExpiredNonce {
            age_ms: ttl + 1,
            ttl_ms: ttl
        })
    );
}

#[test]
fn clock_skew_boundary_is_inclusive() {
    let (mut gw, key) = setup();
    for (i, (signed_at, ok)) in [
        (NOW - MAX_CLOCK_SKEW_MS, true),
        (NOW + MAX_CLOCK_SKEW_MS, true),
        (NOW - MAX_CLOCK_SKEW_MS - 1, false),
        (NOW + MAX_CLOCK_SKEW_MS + 1, false),
    ]
    .into_iter()
    .enumerate()
    {
        let ch = gw.issue(NOW, [i as u8 + 1; 32]).unwrap();
        let signed = sign(&key, &claims(&key, ch.nonce, signed_at));
        let result = gw.verify(NOW, &signed, &ch);
        if ok {
            assert!(result.is_ok(), "{signed_at}: {result:?}");
        } else {
            assert_eq!(
                result,
                Err(ChallengeError::ClockSkew {
                    skew_ms: MAX_CLOCK_SKEW_MS + 1,
                    max_ms: MAX_CLOCK_SKEW_MS
                })
            );
        }
    }
}

#[test]
fn the_device_id_must_be_the_keys() {
    let (mut gw, key) = setup();
    let other = DeviceKey::from_seed([8; 32]);
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    let mut c = answer(&key, &ch);
    c.device_id = other.device_id();
    // Signed by `key`, but claiming to be `other`.
    let signed = sign(&key, &c);
    assert_eq!(
        gw.verify(NOW, &signed, &ch),
        Err(ChallengeError::DeviceIdMismatch)
    );
}

#[test]
fn a_signature_by_another_key_fails() {
    let (mut gw, key) = setup();
    let thief = DeviceKey::from_seed([8; 32]);
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    let c = answer(&key, &ch);
    let signed = SignedConnect {
        signature: sign(&thief, &c).signature,
        ..sign(&key, &c)
    };
    assert_eq!(
        gw.verify(NOW, &signed, &ch),
        Err(ChallengeError::BadSignature)
    );
}

#[test]
fn malformed_keys_and_signatures_are_named() {
    let (mut gw, key) = setup();
    type Mangle = fn(&mut SignedConnect);
    let cases: [(Mangle, ClaimError); 3] = [
        (|s| s.public_key.push('A'), ClaimError::PublicKey),
        (|s| s.signature.truncate(10), ClaimError::Signature),
        (|s| s.signature.push('='), ClaimError::Signature),
    ];
    for (i, (mangle, expected)) in cases.into_iter().enumerate() {
        let ch = gw.issue(NOW, [i as u8 + 1; 32]).unwrap();
        let mut signed = sign(&key, &answer(&key, &ch));
        mangle(&mut signed);
        assert_eq!(
            gw.verify(NOW, &signed, &ch),
            Err(ChallengeError::Malformed(expected))
        );
    }
    let sig = Signature::from_bytes([0; 64]).to_base64url();
    assert_eq!(
        Signature::from_base64url(&sig).unwrap().as_bytes(),
        &[0; 64]
    );
}

#[test]
fn outstanding_nonces_are_bounded_oldest_first() {
    let key = DeviceKey::from_seed([7; 32]);
    let mut gw = Challenges::new(ChallengeLimits {
        max_outstanding: 2,
        ..ChallengeLimits::default()
    });
    let first = gw.issue(NOW, [1; 32]).unwrap();
    let second = gw.issue(NOW + 1, [2; 32]).unwrap();
    let third = gw.issue(NOW + 2, [3; 32]).unwrap();
    assert_eq!(gw.outstanding_len(), 2);
    let answer_to = |ch| sign(&key, &answer(&key, ch));
    assert_eq!(
        gw.verify(NOW, &answer_to(&first), &first),
        Err(ChallengeError::UnknownNonce)
    );
    assert!(gw.verify(NOW, &answer_to(&second), &second).is_ok());
    assert!(gw.verify(NOW, &answer_to(&third), &third).is_ok());
    assert_eq!(gw.outstanding_len(), 0);
}

#[test]
fn used_nonces_are_forgotten_after_the_ttl_and_still_refused() {
    let (mut gw, key) = setup();
    let ttl = gw.limits().nonce_ttl_ms;
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    let signed = sign(&key, &answer(&key, &ch));
    gw.verify(NOW, &signed, &ch).unwrap();
    assert_eq!(gw.used_len(), 1);
    gw.issue(NOW + ttl + 1, [2; 32]).unwrap();
    assert_eq!(gw.used_len(), 0);
    assert_eq!(
        gw.verify(NOW + ttl + 1, &signed, &ch),
        Err(ChallengeError::UnknownNonce)
    );
    // Many verifications keep the used memory within the bound.
    let mut small = Challenges::new(ChallengeLimits {
        max_outstanding: 3,
        ..ChallengeLimits::default()
    });
    for i in 0..10u8 {
        let ch = small.issue(NOW, [i; 32]).unwrap();
        small
            .verify(NOW, &sign(&key, &answer(&key, &ch)), &ch)
            .unwrap();
    }
    assert!(small.used_len() <= 3);
}

#[test]
fn a_repeated_random_nonce_is_refused() {
    let (mut gw, key) = setup();
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    assert_eq!(gw.issue(NOW, [1; 32]), Err(NonceCollision));
    gw.verify(NOW, &sign(&key, &answer(&key, &ch)), &ch)
        .unwrap();
    // Used but remembered: still refused, so a used nonce can never be revived.
    assert_eq!(gw.issue(NOW, [1; 32]), Err(NonceCollision));
}

#[test]
fn error_messages_never_contain_the_token() {
    let (mut gw, key) = setup();
    let mut errors = vec![];
    let ch = gw.issue(NOW, [1; 32]).unwrap();
    let signed = sign(&key, &answer(&key, &ch));
    let mut wrong = signed.clone();
    wrong.signature = sign(&key, &claims(&key, ch.nonce, NOW + 5)).signature;
    errors.push(gw.verify(NOW, &wrong, &ch).unwrap_err());
    errors.push(gw.verify(NOW, &signed, &ch).unwrap_err());
    let ch = gw.issue(NOW, [2; 32]).unwrap();
    errors.push(
        gw.verify(NOW + 10 * MAX_CLOCK_SKEW_MS, &signed, &ch)
            .unwrap_err(),
    );
    errors.push(
        pincer_identity::ConnectToken::new(format!("{TOKEN}|x"))
            .unwrap_err()
            .into(),
    );
    for e in errors {
        let text = format!("{e} {e:?}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    assert!(!format!("{signed:?}").contains(TOKEN));
}
