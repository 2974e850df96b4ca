//! The device registry: the pure [`PairingStore`] behind a lock, written through to the
//! `devices` table. A change is computed on a copy, persisted, and only then made visible,
//! so a failed write changes nothing. Pairing events go to the [`EventBus`]; revoking or
//! rotating ends the connections that used the old authority.

use serde_json::json;
use tokio::sync::Mutex;

use super::events::{EventBus, Kick};
use crate::access::pairing::{
    AutoApproval, DeviceAuthError, DeviceState, Granted, PairingConfig, PairingError,
    RequestOutcome,
};
use crate::access::{DeviceId, IssuedToken, PairingStore, Role, ScopeSet, TokenSecret};
use crate::store::devices::{self as table, DeviceRow};
use crate::store::{Store, StoreError};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    /// The pairing rules refused it.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// The database failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Paired devices and pending requests.
#[derive(Debug)]
pub struct Devices {
    store: Store,
    pairing: Mutex<PairingStore>,
    bus: EventBus,
}

impl Devices {
    /// Loads every device from the database.
    pub async fn open(
        store: Store,
        config: PairingConfig,
        bus: EventBus,
    ) -> Result<Self, StoreError> {
        let rows = store.call(table::load).await?;
        let pairing =
            PairingStore::restore(config, rows.into_iter().map(|r| (r.device_id, r.state)));
        Ok(Self {
            store,
            pairing: Mutex::new(pairing),
            bus,
        })
    }

    /// The current state of a device.
    pub async fn state(&self, device_id: &DeviceId) -> Option<DeviceState> {
        self.pairing.lock().await.get(device_id).cloned()
    }

    /// Checks a device token (read-only).
    pub async fn authenticate(
        &self,
        device_id: &DeviceId,
        token: &str,
        role: Role,
        claimed: ScopeSet,
    ) -> Result<Granted, DeviceAuthError> {
        self.pairing
            .lock()
            .await
            .authenticate(device_id, token, role, claimed)
    }

    /// A device that proved the gateway credential asks to pair (or asks again).
    /// `same_host`: approve at once (the caller checked local peer, no forwarding header,
    /// no browser, and that `gateway.devices.autoApproveLocal` is on).
    pub async fn request(
        &self,
        device_id: DeviceId,
        role: Role,
        scopes: ScopeSet,
        same_host: bool,
        now_ms: i64,
    ) -> Result<RequestOutcome, DevicesError> {
        let auto = if same_host {
            AutoApproval::SameHost(TokenSecret::generate())
        } else {
            AutoApproval::Never
        };
        let mut guard = self.pairing.lock().await;
        let mut next = guard.clone();
        let expired = next.expire(now_ms);
        let outcome = next.request(device_id, role, scopes, auto, now_ms)?;
        self.commit(&mut guard, next, expired.into_iter().chain([device_id]))
            .await?;
        drop(guard);
        match &outcome {
            RequestOutcome::Pending => self.bus.publish(
                "device.pair.requested",
                json!({ "deviceId": device_id.to_string(), "role": role.as_str(), "scopes": scopes.names() }),
            ),
            RequestOutcome::AutoApproved(issued) => self.bus.publish(
                "device.pair.resolved",
                json!({ "deviceId": device_id.to_string(), "decision": "approved", "auto": true, "scopes": issued.scopes.names() }),
            ),
        }
        Ok(outcome)
    }

    /// The owner approves; `granted` defaults to everything requested.
    pub async fn approve(
        &self,
        device_id: &DeviceId,
        granted: Option<ScopeSet>,
        now_ms: i64,
    ) -> Result<IssuedToken, DevicesError> {
        let mut guard = self.pairing.lock().await;
        let granted = match (granted, guard.get(device_id)) {
            (Some(g), _) => g,
            (
                None,
                Some(DeviceState::Pending {
                    requested_scopes, ..
                }),
            ) => *requested_scopes,
            (None, _) => ScopeSet::EMPTY,
        };
        let mut next = guard.clone();
        let issued = next.approve(device_id, granted, &TokenSecret::generate(), now_ms);
        let expired = next.expire(now_ms);
        let issued = match issued {
            Ok(i) => i,
            Err(e) => {
                // An expired request is dropped for good; persist that.
                self.commit(&mut guard, next, expired).await?;
                return Err(e.into());
            }
        };
        self.commit(&mut guard, next, expired.into_iter().chain([*device_id]))
            .await?;
        drop(guard);
        self.bus.publish(
            "device.pair.resolved",
            json!({ "deviceId": device_id.to_string(), "decision": "approved", "auto": false, "scopes": issued.scopes.names() }),
        );
        Ok(issued)
    }

    /// The owner rejects a pending request.
    pub async fn reject(&self, device_id: &DeviceId, now_ms: i64) -> Result<(), DevicesError> {
        self.change(device_id, now_ms, |s| s.reject(device_id, now_ms))
            .await?;
        self.bus.publish(
            "device.pair.resolved",
            json!({ "deviceId": device_id.to_string(), "decision": "rejected" }),
        );
        Ok(())
    }

    /// The owner revokes a paired device; its connections are closed.
    pub async fn revoke(&self, device_id: &DeviceId, now_ms: i64) -> Result<(), DevicesError> {
        self.change(device_id, now_ms, |s| s.revoke(device_id, now_ms))
            .await?;
        self.bus.kick(Kick {
            device_id: *device_id,
            below_generation: None,
        });
        self.bus.publish(
            "device.pair.resolved",
            json!({ "deviceId": device_id.to_string(), "decision": "revoked" }),
        );
        Ok(())
    }

    /// Issues a new token (scopes at most the approved ones, default all of them); the old
    /// token stops working and connections that used it are closed.
    pub async fn rotate(
        &self,
        device_id: &DeviceId,
        scopes: Option<ScopeSet>,
        now_ms: i64,
    ) -> Result<IssuedToken, DevicesError> {
        let mut guard = self.pairing.lock().await;
        let scopes = match (scopes, guard.get(device_id)) {
            (Some(s), _) => s,
            (None, Some(DeviceState::Approved { scopes, .. })) => *scopes,
            (None, _) => ScopeSet::EMPTY,
        };
        let mut next = guard.clone();
        let issued = next.rotate(device_id, scopes, &TokenSecret::generate(), now_ms)?;
        self.commit(&mut guard, next, [*device_id]).await?;
        drop(guard);
        self.bus.kick(Kick {
            device_id: *device_id,
            below_generation: Some(issued.generation),
        });
        Ok(issued)
    }

    /// Every device with what it last told us; expired requests are dropped first.
    pub async fn list(&self, now_ms: i64) -> Result<Vec<DeviceRow>, StoreError> {
        {
            let mut guard = self.pairing.lock().await;
            let mut next = guard.clone();
            let expired = next.expire(now_ms);
            if !expired.is_empty() {
                self.commit(&mut guard, next, expired).await?;
            }
        }
        self.store.call(table::load).await
    }

    /// Records the client and address of a device's latest connect.
    pub async fn touch(
        &self,
        device_id: DeviceId,
        client: String,
        remote: String,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.store
            .call(move |c| table::touch(c, &device_id, &client, &remote, now_ms))
            .await
    }

    async fn change(
        &self,
        device_id: &DeviceId,
        now_ms: i64,
        f: impl FnOnce(&mut PairingStore) -> Result<(), PairingError>,
    ) -> Result<(), DevicesError> {
        let mut guard = self.pairing.lock().await;
        let mut next = guard.clone();
        let expired = next.expire(now_ms);
        f(&mut next)?;
        self.commit(&mut guard, next, expired.into_iter().chain([*device_id]))
            .await?;
        Ok(())
    }

    /// Persists the rows of `changed` as they are in `next`, then makes `next` current.
    async fn commit(
        &self,
        current: &mut PairingStore,
        next: PairingStore,
        changed: impl IntoIterator<Item = DeviceId>,
    ) -> Result<(), StoreError> {
        let rows: Vec<(DeviceId, Option<DeviceState>)> = changed
            .into_iter()
            .map(|id| (id, next.get(&id).cloned()))
            .collect();
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                for (id, state) in &rows {
                    match state {
                        Some(s) => table::save_state(&tx, id, s)?,
                        None => table::delete(&tx, id)?,
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
        *current = next;
        Ok(())
    }
}
