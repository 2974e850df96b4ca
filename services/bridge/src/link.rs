//! The gateway link: dial, authenticate, say hello, run a [`session`](crate::session), and
//! reconnect with capped exponential backoff until shutdown.
//!
//! A refused credential, an unreachable gateway and a dropped stream are all retried the
//! same way (never a hot loop); the backoff resets only after a session in which the
//! gateway actually talked to us.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pincer_proto::v1::bridge_service_client::BridgeServiceClient;
use pincer_proto::v1::bridge_up::Kind as Up;
use pincer_proto::v1::{BridgeHello, BridgeUp, ChannelAccount, DeliveryReceipt};
use pincer_runtime::service_auth::PresentCredential;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use crate::adapter::ChannelAdapter;
use crate::backoff::Backoff;
use crate::lease::{AccountKey, SharedLeases};
use crate::outbox::Outbox;
use crate::session::{SessionEnd, SessionParts, run_session};

/// Timing of the gateway link.
#[derive(Debug, Clone)]
pub struct LinkTiming {
    /// First reconnect delay.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Dial timeout.
    pub connect_timeout: Duration,
    /// How long shutdown waits for sends in progress.
    pub drain_timeout: Duration,
}

impl Default for LinkTiming {
    fn default() -> Self {
        Self {
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Everything the link loop drives.
pub struct Link {
    /// The gateway's gRPC endpoint (validated).
    pub endpoint: Endpoint,
    /// The bridge's credential.
    pub credential: PresentCredential,
    /// This process's replica id.
    pub replica_id: String,
    /// Adapters by account.
    pub adapters: HashMap<AccountKey, Arc<dyn ChannelAdapter>>,
    /// The delivery workers.
    pub outbox: Outbox,
    /// Receipts from the workers.
    pub receipts: mpsc::Receiver<DeliveryReceipt>,
    /// This replica's leases.
    pub leases: SharedLeases,
    /// Timing.
    pub timing: LinkTiming,
}

/// Why one connection attempt ended.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("cannot connect to the gateway: {0}")]
    Connect(#[source] tonic::transport::Error),
    #[error(
        "the gateway refused this bridge's credential ({0}); check services.credentials.bridge \
         (default: the PINCER_BRIDGE_CREDENTIAL environment variable) matches the gateway's"
    )]
    Unauthenticated(tonic::Status),
    #[error("the gateway refused the stream: {0}")]
    Refused(tonic::Status),
    #[error("the gateway stream failed: {0}")]
    Stream(tonic::Status),
    #[error("the gateway closed the stream")]
    Closed,
}

impl Link {
    /// Runs until `shutdown`, then drains sends and confirms acknowledged inbound messages.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.timing.reconnect_initial, self.timing.reconnect_max);
        while !shutdown.is_cancelled() {
            match self.attempt(&shutdown).await {
                Ok(()) => break,
                Err((error, talked)) => {
                    if talked {
                        backoff.reset();
                    }
                    let wait = backoff.next_delay();
                    let wait_ms = wait.as_millis() as u64;
                    match &error {
                        AttemptError::Unauthenticated(_) | AttemptError::Refused(_) => {
                            tracing::error!(error = %error, wait_ms, "gateway link failed; reconnecting");
                        }
                        _ => {
                            tracing::warn!(error = %error, wait_ms, "gateway link failed; reconnecting")
                        }
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        self.outbox.drain(self.timing.drain_timeout).await;
        for adapter in self.adapters.values() {
            if let Err(e) = adapter.flush().await {
                tracing::warn!(error = %e, "could not confirm acknowledged messages before exit; they will be received again and de-duplicated");
            }
        }
        tracing::info!("bridge stopped");
    }

    /// One connection. `Ok` only on shutdown; the error says whether the gateway had
    /// talked to us (a lease or any frame), which resets the backoff.
    async fn attempt(&mut self, shutdown: &CancellationToken) -> Result<(), (AttemptError, bool)> {
        let channel = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            c = self.endpoint.connect() => c.map_err(|e| (AttemptError::Connect(e), false))?,
        };
        let mut client = BridgeServiceClient::with_interceptor(channel, self.credential.clone());
        let (up, up_rx) = mpsc::channel::<BridgeUp>(64);
        let accounts: Vec<ChannelAccount> = self
            .adapters
            .keys()
            .map(|k| ChannelAccount {
                channel: k.channel.clone(),
                account_id: k.account_id.clone(),
            })
            .collect();
        let hello = BridgeUp {
            kind: Some(Up::Hello(BridgeHello {
                replica_id: self.replica_id.clone(),
                accounts,
            })),
        };
        if up.send(hello).await.is_err() {
            return Err((AttemptError::Closed, false));
        }
        let opened = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = client.open_stream(ReceiverStream::new(up_rx)) => r,
        };
        let down = match opened {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                return Err((AttemptError::Unauthenticated(status), false));
            }
            Err(status) => return Err((AttemptError::Refused(status), false)),
        };
        tracing::info!(replica_id = %self.replica_id, "connected to the gateway");
        let parts = SessionParts {
            adapters: &self.adapters,
            outbox: &mut self.outbox,
            receipts: &mut self.receipts,
            up,
            down,
            drain_timeout: self.timing.drain_timeout,
            pump_backoff: (self.timing.reconnect_initial, self.timing.reconnect_max),
            leases: self.leases.clone(),
        };
        let (end, talked) = run_session(parts, shutdown).await;
        match end {
            SessionEnd::Shutdown => Ok(()),
            SessionEnd::Closed => Err((AttemptError::Closed, talked)),
            SessionEnd::Failed(status) if status.code() == tonic::Code::Unauthenticated => {
                Err((AttemptError::Unauthenticated(status), talked))
            }
            SessionEnd::Failed(status) => Err((AttemptError::Stream(status), talked)),
        }
    }
}
