//! What `channels.status` reports per channel account: which bridge replica holds its lease,
//! whether that replica is connected, the last inbound and outbound traffic, and the last
//! delivery error. Built from the lease table and the [`crate::bridge_link::BridgeHub`]'s
//! in-memory activity (which starts empty when the gateway starts).

use serde::Serialize;

/// Traffic seen on one account since the gateway started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountActivity {
    /// When the last inbound message was stored.
    pub last_inbound_at_ms: Option<i64>,
    /// When the last delivery was confirmed sent.
    pub last_outbound_at_ms: Option<i64>,
    /// The last failed delivery: when, and the bridge's error.
    pub last_error: Option<(i64, String)>,
}

/// One account's row in `channels.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// e.g. `telegram`.
    pub channel: String,
    /// e.g. `default`.
    pub account_id: String,
    /// The replica holding the lease (empty: none ever did, or it was released).
    pub replica: String,
    /// The lease's fencing token.
    pub fencing_token: u64,
    /// When the lease runs out unless renewed.
    pub lease_expires_at_ms: i64,
    /// True when the holder is connected and its lease is live: the account is served.
    pub connected: bool,
    /// Connected replicas that offer this account (the holder and its stand-bys).
    pub offered_by: Vec<String>,
    /// When the last inbound message was stored (since the gateway started).
    pub last_inbound_at_ms: Option<i64>,
    /// When the last reply was confirmed sent (since the gateway started).
    pub last_outbound_at_ms: Option<i64>,
    /// When the last delivery failed.
    pub last_error_at_ms: Option<i64>,
    /// The bridge's error for it.
    pub last_error: Option<String>,
}
