//! [`Challenges`]: the gateway's side of the connect challenge, a pure state machine.
//!
//! The caller passes the clock (`now_ms`) and the random bytes, so tests and the model
//! checker drive it deterministically. One challenge per connection:
//!
//! 1. `issue(now, random)` → send `connect.challenge {nonce, ts}` and keep the
//!    [`Challenge`] with the connection;
//! 2. `verify(now, &signed, &challenge)` on the client's `connect` → a [`VerifiedDevice`]
//!    (the key proved possession; whether the device is paired is decided elsewhere).
//!
//! Memory is bounded: at most `max_outstanding` issued-but-unused nonces (the oldest is
//! evicted, and then refused as unknown) and used nonces are remembered, to report
//! replays, only until they would have expired anyway (and at most `max_outstanding`).

use crate::device_id::{DeviceId, PublicKey};
use crate::error::{ChallengeError, NonceCollision};
use crate::fields::Nonce;
use crate::nonce_table::NonceTable;
use crate::payload::ConnectClaims;
use crate::signing::{SignedConnect, verify_device};

/// How long an issued nonce may be answered.
pub const DEFAULT_NONCE_TTL_MS: u64 = 60_000;
/// Largest allowed distance between `signedAt` and the gateway clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 120_000;
/// Default bound on issued-but-unused nonces.
pub const DEFAULT_MAX_OUTSTANDING: usize = 1024;

/// The limits of a [`Challenges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeLimits {
    /// Most issued-but-unused nonces kept; the oldest is evicted (at least 1).
    pub max_outstanding: usize,
    /// How long an issued nonce may be answered, ms.
    pub nonce_ttl_ms: u64,
    /// Largest allowed `|signedAt - now|`, ms.
    pub max_skew_ms: u64,
}

impl Default for ChallengeLimits {
    fn default() -> Self {
        Self {
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
            nonce_ttl_ms: DEFAULT_NONCE_TTL_MS,
            max_skew_ms: MAX_CLOCK_SKEW_MS,
        }
    }
}

/// A challenge sent to one connection: `connect.challenge {nonce, ts}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Challenge {
    /// The nonce the client must sign.
    pub nonce: Nonce,
    /// When it was issued, unix ms (`ts` on the wire).
    pub issued_at_ms: u64,
}

/// A connect whose signature, key, nonce and time all checked out.
///
/// Proves possession of the key only: the claims (role, scopes, token) are still a
/// request that pairing and token checks must decide on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifiedDevice {
    /// The device id (sha256 of `public_key`).
    pub device_id: DeviceId,
    /// The key that signed.
    pub public_key: PublicKey,
    /// What was signed.
    pub claims: ConnectClaims,
}

/// The issued and used nonces of one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Challenges {
    limits: ChallengeLimits,
    outstanding: NonceTable,
    used: NonceTable,
    seq: u64,
}

impl Default for Challenges {
    fn default() -> Self {
        Self::new(ChallengeLimits::default())
    }
}

impl Challenges {
    /// An empty verifier with these limits (`max_outstanding` is raised to at least 1).
    pub fn new(limits: ChallengeLimits) -> Self {
        Self {
            limits: ChallengeLimits {
                max_outstanding: limits.max_outstanding.max(1),
                ..limits
            },
            outstanding: NonceTable::default(),
            used: NonceTable::default(),
            seq: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ChallengeLimits {
        self.limits
    }

    /// How many issued nonces are waiting for an answer.
    pub fn outstanding_len(&self) -> usize {
        self.outstanding.len()
    }

    /// How many used nonces are remembered.
    pub fn used_len(&self) -> usize {
        self.used.len()
    }

    /// Issues a challenge whose nonce is `random` (32 bytes from a CSPRNG).
    ///
    /// Fails only if `random` repeats a nonce still remembered (a broken random source).
    pub fn issue(&mut self, now_ms: u64, random: [u8; 32]) -> Result<Challenge, NonceCollision> {
        self.forget_expired_used(now_ms);
        let nonce = Nonce::from_bytes(random);
        if self.outstanding.contains(&nonce) || self.used.contains(&nonce) {
            return Err(NonceCollision);
        }
        let seq = self.next_seq();
        self.outstanding
            .insert(nonce, now_ms, seq, self.limits.max_outstanding);
        Ok(Challenge {
            nonce,
            issued_at_ms: now_ms,
        })
    }

    /// Verifies the client's answer to `challenge` (the one sent on this connection).
    ///
    /// Checks, in order: the challenge's nonce was issued here and not yet used (it is
    /// consumed now, whatever the outcome), it is not older than the TTL, the signed nonce
    /// is the challenge's, `|signedAt - now|` is within the skew limit, the device id is
    /// the sha256 of the public key, and the signature verifies strictly.
    pub fn verify(
        &mut self,
        now_ms: u64,
        signed: &SignedConnect,
        challenge: &Challenge,
    ) -> Result<VerifiedDevice, ChallengeError> {
        self.redeem_nonce(now_ms, signed, challenge)?;
        verify_device(signed)
    }

    /// The stateful first half of [`Challenges::verify`]: consumes the challenge's nonce
    /// and checks TTL, nonce binding and clock skew. It does not look at the key or the
    /// signature, so never accept a connect on this alone; [`verify_device`] is the other
    /// half. Public so the model checker can pair it with a cached signature check.
    pub fn redeem_nonce(
        &mut self,
        now_ms: u64,
        signed: &SignedConnect,
        challenge: &Challenge,
    ) -> Result<(), ChallengeError> {
        self.forget_expired_used(now_ms);
        let nonce = challenge.nonce;
        let Some(issued_at_ms) = self.outstanding.remove(&nonce) else {
            return Err(if self.used.contains(&nonce) {
                ChallengeError::ReplayedNonce
            } else {
                ChallengeError::UnknownNonce
            });
        };
        let seq = self.next_seq();
        self.used
            .insert(nonce, issued_at_ms, seq, self.limits.max_outstanding);

        let age_ms = now_ms.saturating_sub(issued_at_ms);
        if age_ms > self.limits.nonce_ttl_ms {
            return Err(ChallengeError::ExpiredNonce {
                age_ms,
                ttl_ms: self.limits.nonce_ttl_ms,
            });
        }
        if signed.claims.nonce != nonce {
            return Err(ChallengeError::NonceMismatch);
        }
        let skew_ms = now_ms.abs_diff(signed.claims.signed_at_ms);
        if skew_ms > self.limits.max_skew_ms {
            return Err(ChallengeError::ClockSkew {
                skew_ms,
                max_ms: self.limits.max_skew_ms,
            });
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// A used nonce older than the TTL would be refused as expired anyway; past that point
    /// it is refused as unknown (it is no longer outstanding), so it can be forgotten.
    fn forget_expired_used(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.limits.nonce_ttl_ms);
        self.used.forget_issued_before(cutoff);
    }
}
