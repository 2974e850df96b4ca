//! The values of the pairing store: its limits, a device's state, what requests and
//! authentication produce, and why operations are refused.

use std::time::Duration;

use super::device_token::{DeviceId, IssuedToken, TokenHash, TokenSecret};
use super::scope_set::{Role, ScopeSet};

/// Limits of the pairing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairingConfig {
    /// How long a request waits for the owner.
    pub pending_ttl: Duration,
    /// At most this many requests wait at once.
    pub max_pending: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        Self {
            pending_ttl: Duration::from_secs(10 * 60),
            max_pending: 16,
        }
    }
}

/// Where a device stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Waiting for the owner.
    Pending {
        /// The role asked for.
        requested_role: Role,
        /// The scopes asked for.
        requested_scopes: ScopeSet,
        /// When (unix ms).
        requested_at_ms: i64,
        /// The owner's earlier refusal, restored if this request expires.
        refused_before: Option<Refusal>,
    },
    /// Paired, with one live token.
    Approved {
        /// The role the token is bound to.
        role: Role,
        /// The scopes the token is bound to.
        scopes: ScopeSet,
        /// The live token's hash.
        token_hash: TokenHash,
        /// How many tokens have been issued to this device.
        token_generation: u32,
        /// When the latest token was issued (unix ms).
        issued_at_ms: i64,
    },
    /// The owner refused the request.
    Rejected {
        /// When (unix ms).
        at_ms: i64,
    },
    /// The owner revoked the device.
    Revoked {
        /// When (unix ms).
        at_ms: i64,
    },
}

/// The owner's "no" to a device, remembered while it asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The owner rejected a request.
    Rejected {
        /// When (unix ms).
        at_ms: i64,
    },
    /// The owner revoked the device.
    Revoked {
        /// When (unix ms).
        at_ms: i64,
    },
}

impl From<Refusal> for DeviceState {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Rejected { at_ms } => Self::Rejected { at_ms },
            Refusal::Revoked { at_ms } => Self::Revoked { at_ms },
        }
    }
}

/// Whether a request may be approved without the owner.
#[derive(Debug, Clone)]
pub enum AutoApproval {
    /// Only the owner approves.
    Never,
    /// The request comes from this host (loopback peer, no forwarding header, no browser
    /// `Origin`) and `gateway.devices.autoApproveLocal` is on: approve it with this secret.
    /// Applies only to devices never seen before; devices the owner rejected or revoked
    /// wait for the owner, also after a later request of theirs expired.
    SameHost(TokenSecret),
}

/// What a request led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Waiting for the owner.
    Pending,
    /// Approved on the spot (same host).
    AutoApproved(IssuedToken),
}

/// What an authenticated device may do on this connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Granted {
    /// The device.
    pub device_id: DeviceId,
    /// Its role.
    pub role: Role,
    /// Approved scopes intersected with those the client asked for.
    pub scopes: ScopeSet,
}

/// Why a pairing operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// No such device.
    #[error("no device {0}")]
    UnknownDevice(DeviceId),
    /// The device has no pending request.
    #[error("device {0} has no pending request")]
    NotPending(DeviceId),
    /// The device is not paired.
    #[error("device {0} is not paired")]
    NotApproved(DeviceId),
    /// The device is already paired; revoke it first to pair it again.
    #[error("device {0} is already paired; revoke it to pair it again")]
    AlreadyApproved(DeviceId),
    /// The request is older than the TTL and was dropped.
    #[error("the request of device {0} expired; the device must ask again")]
    RequestExpired(DeviceId),
    /// Too many requests wait already.
    #[error("{0} pairing requests are waiting; approve or reject some first")]
    TooManyPending(usize),
    /// Approval asked for scopes the device did not request.
    #[error("cannot grant {granted}: device {device} requested only {requested}")]
    ExceedsRequest {
        /// The device.
        device: DeviceId,
        /// What it requested.
        requested: ScopeSet,
        /// What was to be granted.
        granted: ScopeSet,
    },
    /// Rotation asked for scopes beyond the approval.
    #[error("cannot rotate to {asked}: device {device} is approved for {approved}")]
    ExceedsApproval {
        /// The device.
        device: DeviceId,
        /// What it is approved for.
        approved: ScopeSet,
        /// What was asked.
        asked: ScopeSet,
    },
}

/// Why a device failed to authenticate. Map all of these to one wire error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceAuthError {
    /// Never seen, or the request expired.
    #[error("unknown device")]
    UnknownDevice,
    /// Still waiting for the owner.
    #[error("device is awaiting approval")]
    Pending,
    /// Refused by the owner.
    #[error("device was rejected")]
    Rejected,
    /// Revoked by the owner.
    #[error("device was revoked")]
    Revoked,
    /// Not the device's live token.
    #[error("wrong device token")]
    BadToken,
    /// The token is bound to another role.
    #[error("device token is bound to another role")]
    RoleMismatch,
}
