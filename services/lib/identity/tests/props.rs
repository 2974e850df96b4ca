//! Property tests: the payload join is injective, `|` is always refused, and any change to
//! the signed bytes, the signature, the key or the time is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{NOW, answer, claims};
use pincer_identity::{
    ChallengeError, ChallengeLimits, Challenges, ClientId, ClientMode, ConnectClaims, ConnectToken,
    DeviceId, DeviceKey, MAX_CLOCK_SKEW_MS, Nonce, PublicKey, Role, Scope, ScopeSet, Signature,
    sign, verify_device, verify_payload,
};
use proptest::prelude::*;
use proptest::sample::select;

fn scope_set() -> impl Strategy<Value = ScopeSet> {
    proptest::collection::vec(select(Scope::ALL.to_vec()), 0..6)
        .prop_map(|v| v.into_iter().collect())
}

/// Claims with text fields from an alphabet rich in separators, so that a join that
/// lost field boundaries would collide.
fn claims_from(alphabet: &'static str) -> impl Strategy<Value = ConnectClaims> {
    let text =
        move |min| proptest::string::string_regex(&format!("[{alphabet}]{{{min},4}}")).unwrap();
    (
        any::<[u8; 32]>(),
        text(1),
        select(ClientMode::ALL.to_vec()),
        select(Role::ALL.to_vec()),
        scope_set(),
        0u64..20,
        text(0),
        any::<[u8; 2]>(),
    )
        .prop_map(
            |(key, client, client_mode, role, scopes, signed_at_ms, token, nonce)| ConnectClaims {
                device_id: DeviceId::from_public_key(
                    &DeviceKey::from_seed([key[0] % 2; 32]).public_key(),
                ),
                client_id: ClientId::new(client).unwrap(),
                client_mode,
                role,
                scopes,
                signed_at_ms,
                token: ConnectToken::new(token).unwrap(),
                nonce: Nonce::from_bytes([nonce[0] % 2; 32]),
            },
        )
}

fn key_strategy() -> impl Strategy<Value = DeviceKey> {
    any::<[u8; 32]>().prop_map(DeviceKey::from_seed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A left inverse exists, so `payload` is injective: different claims, different bytes.
    #[test]
    fn payload_parses_back_to_the_same_claims(c in claims_from(",a-c 0-9v")) {
        let payload = c.payload();
        prop_assert_eq!(payload.matches('|').count(), 8);
        prop_assert_eq!(ConnectClaims::parse_payload(&payload), Ok(c));
    }

    /// The same claim, pairwise: equal payloads only for equal claims.
    #[test]
    fn different_claims_never_share_a_payload(
        a in claims_from(",a1v"),
        b in claims_from(",a1v"),
    ) {
        prop_assert_eq!(*a.payload() == *b.payload(), a == b);
    }

    #[test]
    fn any_text_with_a_pipe_is_refused(prefix in ".{0,8}", suffix in ".{0,8}") {
        let text = format!("{prefix}|{suffix}");
        prop_assert!(ClientId::new(text.clone()).is_err());
        prop_assert!(ConnectToken::new(text.clone()).is_err());
        prop_assert!(text.parse::<Nonce>().is_err());
        prop_assert!(text.parse::<DeviceId>().is_err());
        prop_assert!(text.parse::<Role>().is_err());
        prop_assert!(text.parse::<ClientMode>().is_err());
        prop_assert!(text.parse::<ScopeSet>().is_err());
    }

    #[test]
    fn any_bit_flip_in_the_payload_fails(
        key in key_strategy(),
        index in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let c = claims(&key, Nonce::from_bytes([3; 32]), NOW);
        let signed = sign(&key, &c);
        let signature = Signature::from_base64url(&signed.signature).unwrap();
        let mut payload = c.payload().as_bytes().to_vec();
        verify_payload(&key.public_key(), &payload, &signature).unwrap();
        let i = index.index(payload.len());
        payload[i] ^= 1 << bit;
        prop_assert_eq!(
            verify_payload(&key.public_key(), &payload, &signature),
            Err(ChallengeError::BadSignature)
        );
    }

    #[test]
    fn any_byte_change_in_the_signature_fails(
        key in key_strategy(),
        index in 0usize..64,
        xor in 1u8..=255,
    ) {
        let mut gw = Challenges::default();
        let ch = gw.issue(NOW, [5; 32]).unwrap();
        let mut signed = sign(&key, &answer(&key, &ch));
        let mut bytes = *Signature::from_base64url(&signed.signature).unwrap().as_bytes();
        bytes[index] ^= xor;
        signed.signature = Signature::from_bytes(bytes).to_base64url();
        prop_assert_eq!(gw.verify(NOW, &signed, &ch), Err(ChallengeError::BadSignature));
    }

    #[test]
    fn another_keys_signature_fails(owner in key_strategy(), thief in key_strategy()) {
        prop_assume!(owner.public_key() != thief.public_key());
        let mut gw = Challenges::default();
        let ch = gw.issue(NOW, [5; 32]).unwrap();
        let c = answer(&owner, &ch);
        let mut signed = sign(&owner, &c);
        signed.signature = sign(&thief, &c).signature;
        prop_assert_eq!(gw.verify(NOW, &signed, &ch), Err(ChallengeError::BadSignature));
        // The thief presenting its own key under the owner's id is a mismatch.
        let ch = gw.issue(NOW, [6; 32]).unwrap();
        let stolen = sign(&thief, &answer(&owner, &ch));
        prop_assert_eq!(gw.verify(NOW, &stolen, &ch), Err(ChallengeError::DeviceIdMismatch));
    }

    #[test]
    fn an_id_that_is_not_the_keys_fails(key in key_strategy(), id in any::<[u8; 32]>()) {
        let id: DeviceId = hex::encode(id).parse().unwrap();
        prop_assume!(id != key.device_id());
        let mut gw = Challenges::default();
        let ch = gw.issue(NOW, [5; 32]).unwrap();
        let mut c = answer(&key, &ch);
        c.device_id = id;
        prop_assert_eq!(gw.verify(NOW, &sign(&key, &c), &ch), Err(ChallengeError::DeviceIdMismatch));
    }

    #[test]
    fn skew_within_120s_passes_and_beyond_fails(offset in -2 * MAX_CLOCK_SKEW_MS as i64..=2 * MAX_CLOCK_SKEW_MS as i64) {
        let key = DeviceKey::from_seed([4; 32]);
        let mut gw = Challenges::default();
        let ch = gw.issue(NOW, [5; 32]).unwrap();
        let signed_at = NOW.checked_add_signed(offset).unwrap();
        let result = gw.verify(NOW, &sign(&key, &claims(&key, ch.nonce, signed_at)), &ch);
        if offset.unsigned_abs() <= MAX_CLOCK_SKEW_MS {
            prop_assert!(result.is_ok(), "{:?}", result);
        } else {
            let is_skew = matches!(result, Err(ChallengeError::ClockSkew { .. }));
            prop_assert!(is_skew, "{:?}", result);
        }
    }

    /// Any interleaving of issues, answers, replays and clock jumps accepts each nonce at
    /// most once; and `verify` behaves exactly as its two halves (`redeem_nonce`, then
    /// `verify_device`), which the model checker composes.
    #[test]
    fn replays_never_pass(ops in proptest::collection::vec((0u8..3, 0u8..4), 1..24)) {
        let key = DeviceKey::from_seed([4; 32]);
        let limits = ChallengeLimits { max_outstanding: 3, ..ChallengeLimits::default() };
        let (mut gw, mut halves) = (Challenges::new(limits), Challenges::new(limits));
        let mut now = NOW;
        let mut issued = vec![];
        let mut accepted = std::collections::BTreeSet::new();
        for (i, (op, pick)) in ops.into_iter().enumerate() {
            match op {
                0 => {
                    let ch = gw.issue(now, [i as u8; 32]).unwrap();
                    prop_assert_eq!(halves.issue(now, [i as u8; 32]).unwrap(), ch);
                    issued.push(ch);
                }
                1 => now += 20_000 * u64::from(pick),
                _ => if let Some(ch) = issued.get(usize::from(pick) % issued.len().max(1)) {
                    let signed = sign(&key, &claims(&key, ch.nonce, now));
                    let whole = gw.verify(now, &signed, ch);
                    let split = halves
                        .redeem_nonce(now, &signed, ch)
                        .and_then(|()| verify_device(&signed));
                    prop_assert_eq!(&whole, &split);
                    if whole.is_ok() {
                        prop_assert!(accepted.insert(ch.nonce), "nonce accepted twice");
                    }
                }
            }
            prop_assert_eq!(&gw, &halves);
        }
    }
}

#[test]
fn public_key_text_round_trips() {
    let key = DeviceKey::from_seed([4; 32]);
    let text = key.public_key().to_base64url();
    assert_eq!(PublicKey::from_base64url(&text).unwrap(), key.public_key());
}
