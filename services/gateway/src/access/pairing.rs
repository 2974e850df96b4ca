//! The device pairing store as a pure state machine.
//!
//! ```text
//!  request ──► Pending ──approve──► Approved ──revoke──► Revoked ──request──► Pending
//!                 │  └──reject──► Rejected ──request──► Pending
//!                 └──(10 min)──► gone                    Approved ──rotate──► Approved'
//! ```
//!
//! Invariants (property-tested and model-checked in `tests/access_pairing*.rs`):
//! - a device's scopes only ever shrink after approval: `approve` grants a subset of the
//!   request, `rotate` a subset of the approval, `authenticate` the approval intersected
//!   with what the client claims (declaring a scope never grants it);
//! - one live token per device: approving or rotating replaces the stored hash, so revoked
//!   and rotated-away tokens never authenticate;
//! - a pending request older than the TTL cannot be approved; at most `max_pending` wait.
//!
//! Time is unix milliseconds passed in; token bytes come from the caller.

use std::collections::BTreeMap;

use super::device_token::{DeviceId, IssuedToken, TokenSecret};
pub use super::pairing_types::{
    AutoApproval, DeviceAuthError, DeviceState, Granted, PairingConfig, PairingError, Refusal,
    RequestOutcome,
};
use super::scope_set::{Role, ScopeSet};

/// Every device the gateway knows, by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PairingStore {
    config: PairingConfig,
    devices: BTreeMap<DeviceId, DeviceState>,
}

impl PairingStore {
    /// An empty store.
    pub fn new(config: PairingConfig) -> Self {
        Self::restore(config, [])
    }

    /// A store holding devices read back from storage.
    pub fn restore(
        config: PairingConfig,
        devices: impl IntoIterator<Item = (DeviceId, DeviceState)>,
    ) -> Self {
        Self {
            config,
            devices: devices.into_iter().collect(),
        }
    }

    /// A device's state.
    pub fn get(&self, device_id: &DeviceId) -> Option<&DeviceState> {
        self.devices.get(device_id)
    }

    /// Every device, ordered by id.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &DeviceState)> {
        self.devices.iter()
    }

    /// How many requests wait (expired ones included until [`Self::expire`]).
    pub fn pending_count(&self) -> usize {
        self.devices
            .values()
            .filter(|s| matches!(s, DeviceState::Pending { .. }))
            .count()
    }

    /// A device asks to pair. A repeated request replaces the earlier one.
    pub fn request(
        &mut self,
        device_id: DeviceId,
        role: Role,
        scopes: ScopeSet,
        auto: AutoApproval,
        now_ms: i64,
    ) -> Result<RequestOutcome, PairingError> {
        self.expire(now_ms);
        let prior = self.devices.get(&device_id);
        match (prior, auto) {
            (Some(DeviceState::Approved { .. }), _) => {
                Err(PairingError::AlreadyApproved(device_id))
            }
            // Only a never-seen device: a pending one may be a re-request after the owner
            // rejected or revoked it.
            (None, AutoApproval::SameHost(secret)) => {
                let issued = self.issue(device_id, role, scopes, 1, &secret, now_ms);
                Ok(RequestOutcome::AutoApproved(issued))
            }
            (prior, _) => {
                let (replacing, refused_before) = match prior {
                    Some(DeviceState::Pending { refused_before, .. }) => (true, *refused_before),
                    Some(DeviceState::Rejected { at_ms }) => {
                        (false, Some(Refusal::Rejected { at_ms: *at_ms }))
                    }
                    Some(DeviceState::Revoked { at_ms }) => {
                        (false, Some(Refusal::Revoked { at_ms: *at_ms }))
                    }
                    Some(DeviceState::Approved { .. }) | None => (false, None),
                };
                if !replacing && self.pending_count() >= self.config.max_pending {
                    return Err(PairingError::TooManyPending(self.config.max_pending));
                }
                let pending = DeviceState::Pending {
                    requested_role: role,
                    requested_scopes: scopes,
                    requested_at_ms: now_ms,
                    refused_before,
                };
                self.devices.insert(device_id, pending);
                Ok(RequestOutcome::Pending)
            }
        }
    }

    /// The owner approves a pending request with `granted` ⊆ the requested scopes.
    pub fn approve(
        &mut self,
        device_id: &DeviceId,
        granted: ScopeSet,
        secret: &TokenSecret,
        now_ms: i64,
    ) -> Result<IssuedToken, PairingError> {
        let Some(DeviceState::Pending {
            requested_role,
            requested_scopes,
            requested_at_ms,
            ..
        }) = self.devices.get(device_id).cloned()
        else {
            return Err(self.missing(device_id, PairingError::NotPending));
        };
        if self.is_expired(requested_at_ms, now_ms) {
            self.expire(now_ms);
            return Err(PairingError::RequestExpired(*device_id));
        }
        if !granted.is_subset_of(requested_scopes) {
            return Err(PairingError::ExceedsRequest {
                device: *device_id,
                requested: requested_scopes,
                granted,
            });
        }
        Ok(self.issue(*device_id, requested_role, granted, 1, secret, now_ms))
    }

    /// The owner refuses a pending request.
    pub fn reject(&mut self, device_id: &DeviceId, now_ms: i64) -> Result<(), PairingError> {
        match self.devices.get_mut(device_id) {
            Some(state @ DeviceState::Pending { .. }) => {
                *state = DeviceState::Rejected { at_ms: now_ms };
                Ok(())
            }
            _ => Err(self.missing(device_id, PairingError::NotPending)),
        }
    }

    /// The owner revokes a paired device; its token stops working at once.
    pub fn revoke(&mut self, device_id: &DeviceId, now_ms: i64) -> Result<(), PairingError> {
        match self.devices.get_mut(device_id) {
            Some(state @ DeviceState::Approved { .. }) => {
                *state = DeviceState::Revoked { at_ms: now_ms };
                Ok(())
            }
            _ => Err(self.missing(device_id, PairingError::NotApproved)),
        }
    }

    /// Issues a new token for `scopes` ⊆ the approved scopes; the old token stops working
    /// and the approval narrows to `scopes`.
    pub fn rotate(
        &mut self,
        device_id: &DeviceId,
        scopes: ScopeSet,
        secret: &TokenSecret,
        now_ms: i64,
    ) -> Result<IssuedToken, PairingError> {
        let Some(DeviceState::Approved {
            role,
            scopes: approved,
            token_generation,
            ..
        }) = self.devices.get(device_id).cloned()
        else {
            return Err(self.missing(device_id, PairingError::NotApproved));
        };
        if !scopes.is_subset_of(approved) {
            return Err(PairingError::ExceedsApproval {
                device: *device_id,
                approved,
                asked: scopes,
            });
        }
        let generation = token_generation.saturating_add(1);
        Ok(self.issue(*device_id, role, scopes, generation, secret, now_ms))
    }

    /// Checks a device token. Grants the approved scopes intersected with `claimed_scopes`;
    /// claimed scopes beyond the approval are ignored, never granted.
    pub fn authenticate(
        &self,
        device_id: &DeviceId,
        presented_token: &str,
        claimed_role: Role,
        claimed_scopes: ScopeSet,
    ) -> Result<Granted, DeviceAuthError> {
        match self.devices.get(device_id) {
            None => Err(DeviceAuthError::UnknownDevice),
            Some(DeviceState::Pending { .. }) => Err(DeviceAuthError::Pending),
            Some(DeviceState::Rejected { .. }) => Err(DeviceAuthError::Rejected),
            Some(DeviceState::Revoked { .. }) => Err(DeviceAuthError::Revoked),
            Some(DeviceState::Approved {
                role,
                scopes,
                token_hash,
                ..
            }) => {
                if !token_hash.matches(presented_token) {
                    return Err(DeviceAuthError::BadToken);
                }
                if *role != claimed_role {
                    return Err(DeviceAuthError::RoleMismatch);
                }
                Ok(Granted {
                    device_id: *device_id,
                    role: *role,
                    scopes: scopes.intersection(claimed_scopes),
                })
            }
        }
    }

    /// Ends requests older than the TTL: the device is forgotten, or back to the owner's
    /// earlier refusal. Returns their device ids.
    pub fn expire(&mut self, now_ms: i64) -> Vec<DeviceId> {
        let expired: Vec<(DeviceId, Option<Refusal>)> = self
            .devices
            .iter()
            .filter_map(|(id, s)| match s {
                DeviceState::Pending {
                    requested_at_ms,
                    refused_before,
                    ..
                } if self.is_expired(*requested_at_ms, now_ms) => Some((*id, *refused_before)),
                _ => None,
            })
            .collect();
        for (id, refusal) in &expired {
            match refusal {
                Some(r) => self.devices.insert(*id, (*r).into()),
                None => self.devices.remove(id),
            };
        }
        expired.into_iter().map(|(id, _)| id).collect()
    }

    fn is_expired(&self, requested_at_ms: i64, now_ms: i64) -> bool {
        let ttl = i64::try_from(self.config.pending_ttl.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(requested_at_ms) >= ttl
    }

    fn issue(
        &mut self,
        device_id: DeviceId,
        role: Role,
        scopes: ScopeSet,
        generation: u32,
        secret: &TokenSecret,
        now_ms: i64,
    ) -> IssuedToken {
        let (issued, token_hash) = IssuedToken::new(device_id, role, scopes, generation, secret);
        let approved = DeviceState::Approved {
            role,
            scopes,
            token_hash,
            token_generation: generation,
            issued_at_ms: now_ms,
        };
        self.devices.insert(device_id, approved);
        issued
    }

    fn missing(&self, id: &DeviceId, otherwise: fn(DeviceId) -> PairingError) -> PairingError {
        if self.devices.contains_key(id) {
            otherwise(*id)
        } else {
            PairingError::UnknownDevice(*id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::scope_set::Scope;

    fn id(c: char) -> DeviceId {
        c.to_string().repeat(64).parse::<DeviceId>().unwrap()
    }

    fn secret(n: u8) -> TokenSecret {
        TokenSecret::from_bytes([n; 32])
    }

    #[test]
    fn pending_requests_are_bounded_and_expire() {
        let config = PairingConfig {
            max_pending: 2,
            ..PairingConfig::default()
        };
        let mut s = PairingStore::new(config);
        let rw = ScopeSet::of(&[Scope::Read, Scope::Write]);
        for c in ['a', 'b'] {
            let got = s.request(id(c), Role::Operator, rw, AutoApproval::Never, 0);
            assert_eq!(got, Ok(RequestOutcome::Pending));
        }
        assert_eq!(
            s.request(id('c'), Role::Operator, rw, AutoApproval::Never, 1),
            Err(PairingError::TooManyPending(2))
        );
        // Re-asking does not take a new slot.
        assert!(
            s.request(id('a'), Role::Operator, rw, AutoApproval::Never, 1)
                .is_ok()
        );
        assert_eq!(
            s.approve(&id('b'), rw, &secret(1), 600_000),
            Err(PairingError::RequestExpired(id('b')))
        );
        assert_eq!(s.expire(600_001), vec![id('a')]);
        assert_eq!(s.pending_count(), 0);
    }

    #[test]
    fn same_host_auto_approval_does_not_override_the_owner() {
        let mut s = PairingStore::new(PairingConfig::default());
        let read = ScopeSet::of(&[Scope::Read]);
        let Ok(RequestOutcome::AutoApproved(t)) = s.request(
            id('a'),
            Role::Operator,
            read,
            AutoApproval::SameHost(secret(1)),
            0,
        ) else {
            panic!("not auto-approved");
        };
        assert_eq!(t.scopes, read);
        s.revoke(&id('a'), 1).unwrap();
        let again = s.request(
            id('a'),
            Role::Operator,
            read,
            AutoApproval::SameHost(secret(2)),
            2,
        );
        assert_eq!(again, Ok(RequestOutcome::Pending));
        let third = s.request(
            id('a'),
            Role::Operator,
            read,
            AutoApproval::SameHost(secret(3)),
            3,
        );
        assert_eq!(third, Ok(RequestOutcome::Pending));
        // The request expires back to "revoked", not to "never seen".
        assert_eq!(s.expire(3 + 600_000), vec![id('a')]);
        assert_eq!(s.get(&id('a')), Some(&DeviceState::Revoked { at_ms: 1 }));
        let later = s.request(
            id('a'),
            Role::Operator,
            read,
            AutoApproval::SameHost(secret(4)),
            700_000,
        );
        assert_eq!(later, Ok(RequestOutcome::Pending));
        assert_eq!(
            s.authenticate(&id('a'), t.token(), Role::Operator, read),
            Err(DeviceAuthError::Pending)
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let mut s = PairingStore::new(PairingConfig::default());
        assert_eq!(
            s.reject(&id('a'), 0),
            Err(PairingError::UnknownDevice(id('a')))
        );
        s.request(id('a'), Role::Node, ScopeSet::EMPTY, AutoApproval::Never, 0)
            .unwrap();
        assert_eq!(
            s.revoke(&id('a'), 0),
            Err(PairingError::NotApproved(id('a')))
        );
        s.approve(&id('a'), ScopeSet::EMPTY, &secret(3), 1).unwrap();
        assert_eq!(
            s.request(id('a'), Role::Node, ScopeSet::EMPTY, AutoApproval::Never, 2),
            Err(PairingError::AlreadyApproved(id('a')))
        );
    }
}
