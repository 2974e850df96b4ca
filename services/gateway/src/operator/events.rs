//! Gateway-wide events for operator connections, and notices that end connections.
//!
//! Every connection subscribes after `connect`; it forwards an event only when the event
//! table in [`crate::access::scopes`] lets its scopes see it. A [`Kick`] closes the
//! connections of a device whose pairing was revoked or whose token was rotated away.

use serde_json::Value;
use tokio::sync::broadcast;

use crate::access::DeviceId;

/// One event for operator connections.
#[derive(Debug, Clone)]
pub struct GatewayEvent {
    /// Its name, as listed in the event table.
    pub name: &'static str,
    /// Its data.
    pub payload: Value,
}

/// Ends connections of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kick {
    /// The device.
    pub device_id: DeviceId,
    /// Close only connections that authenticated with a device token older than this
    /// generation; `None`: close them all.
    pub below_generation: Option<u32>,
}

/// The broadcast channels.
#[derive(Debug, Clone)]
pub struct EventBus {
    events: broadcast::Sender<GatewayEvent>,
    kicks: broadcast::Sender<Kick>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            events: broadcast::channel(256).0,
            kicks: broadcast::channel(64).0,
        }
    }
}

impl EventBus {
    /// Sends `name` to every connection that may see it.
    pub fn publish(&self, name: &'static str, payload: Value) {
        // No subscriber is not an error: nobody is connected.
        let _ = self.events.send(GatewayEvent { name, payload });
    }

    /// Closes connections of a device.
    pub fn kick(&self, kick: Kick) {
        let _ = self.kicks.send(kick);
    }

    /// A receiver of events.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.events.subscribe()
    }

    /// A receiver of kicks.
    pub fn kicks(&self) -> broadcast::Receiver<Kick> {
        self.kicks.subscribe()
    }
}
