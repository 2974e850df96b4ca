//! Where the executor learns the gateway's grant keys: fixed (tests, or a key given in
//! advance) or fetched from the gateway's `ExecutorLinkService` with the executor's own
//! credential. A grant naming a key not yet known triggers one fetch (at most one per
//! second); a key that still does not match is refused by the grant check.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use pincer_identity::PublicKey;
use pincer_proto::v1::GetGrantKeyRequest;
use pincer_proto::v1::executor_link_service_client::ExecutorLinkServiceClient;
use pincer_runtime::service_auth::PresentCredential;
use tokio::sync::Mutex;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::grant::{GrantKeys, StaticKeys};

/// A client of the gateway's `ExecutorLinkService`, presenting the executor's credential.
pub type LinkClient = ExecutorLinkServiceClient<InterceptedService<Channel, PresentCredential>>;

const MIN_REFETCH: Duration = Duration::from_secs(1);

/// The executor's grant keys.
#[derive(Debug)]
pub enum KeySet {
    /// A fixed set.
    Fixed(StaticKeys),
    /// Fetched from the gateway.
    Gateway(Box<GatewayKeys>),
}

/// Keys fetched from the gateway.
#[derive(Debug)]
pub struct GatewayKeys {
    client: LinkClient,
    known: RwLock<StaticKeys>,
    last_fetch: Mutex<Option<Instant>>,
}

impl GatewayKeys {
    /// A client for the gateway at `url` presenting `credential` (connects lazily).
    pub fn new(
        url: &url::Url,
        credential: PresentCredential,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            client: ExecutorLinkServiceClient::with_interceptor(channel, credential),
            known: RwLock::new(StaticKeys::default()),
            last_fetch: Mutex::new(None),
        })
    }

    /// The link client (for approval requests over the same connection).
    pub fn link_client(&self) -> LinkClient {
        self.client.clone()
    }

    async fn fetch(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
            return;
        }
        *last = Some(Instant::now());
        let answer = self
            .client
            .clone()
            .get_grant_key(GetGrantKeyRequest {})
            .await;
        match answer {
            Ok(r) => {
                let key = r.into_inner();
                let parsed = <[u8; 32]>::try_from(key.public_key.as_slice())
                    .ok()
                    .and_then(|b| PublicKey::from_bytes(&b).ok());
                match parsed {
                    Some(pk) if pk.device_id().to_string() == key.key_id => {
                        if let Ok(mut known) = self.known.write() {
                            known.insert(pk);
                        }
                        tracing::info!(key_id = %key.key_id, "learned the gateway's grant key");
                    }
                    _ => tracing::error!(
                        "the gateway sent a malformed grant key; grants stay refused"
                    ),
                }
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "cannot fetch the gateway's grant key");
            }
        }
    }
}

impl KeySet {
    /// Makes sure the key `key_id` is known if the gateway has it.
    pub async fn ensure(&self, key_id: Option<&str>) {
        if let (Self::Gateway(g), Some(id)) = (self, key_id)
            && !id.is_empty()
            && g.key(id).is_none()
        {
            g.fetch().await;
        }
    }
}

impl GrantKeys for GatewayKeys {
    fn key(&self, key_id: &str) -> Option<PublicKey> {
        self.known.read().ok().and_then(|k| k.key(key_id))
    }
}

impl GrantKeys for KeySet {
    fn key(&self, key_id: &str) -> Option<PublicKey> {
        match self {
            Self::Fixed(k) => k.key(key_id),
            Self::Gateway(g) => g.key(key_id),
        }
    }
}
