//! The outbox dispatcher: hands due replies to the bridge replica holding the account's
//! lease and records the receipt. Failures back off exponentially; a missing bridge only
//! postpones (it is not an attempt).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bridge_link::{BridgeHub, DeliverError};
use crate::store::Store;
use crate::store::db::now_ms;
use crate::store::outbox::{due, mark_attempt_failed, mark_sent, postpone};

/// Delivers replies until `shutdown`.
pub async fn run(
    store: Store,
    hub: Arc<BridgeHub>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let batch = match store.call(|c| due(c, now_ms(), 64)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                continue;
            }
        };
        for item in batch {
            if shutdown.is_cancelled() {
                return;
            }
            let id = item.delivery_id.clone();
            let result = hub.deliver(&item.delivery_id, &item.delivery).await;
            let update = match result {
                Ok(receipt) if receipt.ok => {
                    tracing::info!(delivery = %id, parts = receipt.platform_message_ids.len(), "reply delivered");
                    let ids = receipt.platform_message_ids;
                    store.call(move |c| mark_sent(c, &id, &ids, now_ms())).await
                }
                Ok(receipt) => {
                    let backoff = backoff_ms(item.attempts);
                    tracing::warn!(delivery = %id, error = %receipt.error, retryable = receipt.retryable, "delivery failed");
                    store
                        .call(move |c| {
                            mark_attempt_failed(
                                c,
                                &id,
                                &receipt.error,
                                receipt.retryable,
                                now_ms() + backoff,
                            )
                        })
                        .await
                }
                Err(DeliverError::NoBridge(..)) => {
                    store.call(move |c| postpone(c, &id, now_ms() + 1000)).await
                }
                Err(e @ DeliverError::NoReceipt(_)) => {
                    let backoff = backoff_ms(item.attempts);
                    let error = e.to_string();
                    store
                        .call(move |c| {
                            mark_attempt_failed(c, &id, &error, true, now_ms() + backoff)
                        })
                        .await
                }
            };
            if let Err(e) = update {
                tracing::error!(error = %e, "cannot record a delivery result");
            }
        }
    }
}

fn backoff_ms(attempts: i64) -> i64 {
    1000_i64.saturating_mul(1 << attempts.clamp(0, 8))
}
