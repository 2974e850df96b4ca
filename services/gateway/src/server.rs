//! Wiring: opens the store, starts the gRPC server (bridges, agents), the operator API, the
//! turn runner, the outbox dispatcher and the lease renewer, and drains them on shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::ListenerExt;
use pincer_identity::Challenges;
use pincer_proto::v1::bridge_service_server::BridgeServiceServer;
use pincer_proto::v1::executor_link_service_server::ExecutorLinkServiceServer;
use pincer_proto::v1::gateway_service_server::GatewayServiceServer;
use pincer_runtime::config::validate::GatewayAuth;
use pincer_runtime::paths::{ensure_private_dir, write_private_file};
use pincer_runtime::service_auth::{PresentCredential, RequireCaller, ServiceName};
use pincer_runtime::{Config, Secret, SecretSource};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::GatewayError;
use crate::access::pairing::PairingConfig;
use crate::access::{AuthFailureLimiter, AuthLimitConfig, BucketConfig, KeyedBuckets};
use crate::agent_link::{AgentApi, agent_client};
use crate::approvals::Approvals;
use crate::bridge_link::{BridgeHub, BridgeLink};
use crate::grants::{ExecutorLink, GrantSigner, TurnTools};
use crate::operator::auth::OperatorAuth;
use crate::operator::devices::Devices;
use crate::operator::events::EventBus;
use crate::operator::http::{OperatorState, router};
use crate::senders::SenderAccess;
use crate::senders::service::SenderAccessSetup;
use crate::store::Store;
use crate::turn_events::TurnEvents;
use crate::turns::TurnRunner;

/// The agent every session talks to (multi-agent routing comes later).
pub const DEFAULT_AGENT_ID: &str = "main";

/// The gateway's two listeners.
#[derive(Debug)]
pub struct GatewayListeners {
    /// Operator API (WebSocket + HTTP), `gateway.port`.
    pub operator: TcpListener,
    /// gRPC for bridges and agents, `services.gateway.listen`.
    pub grpc: TcpListener,
}

impl GatewayListeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> Result<Self, GatewayError> {
        let bind = |addr: std::net::SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: addr.to_string(),
                    source,
                })
        };
        let interfaces =
            pincer_runtime::net::interface_addrs().map_err(|source| GatewayError::Bind {
                addr: "network interfaces".into(),
                source,
            })?;
        let operator = config.gateway.listen_addr(&interfaces)?;
        Ok(Self {
            operator: bind(operator).await?,
            grpc: bind(config.services.gateway.listen).await?,
        })
    }
}

/// The secrets the gateway uses, resolved.
#[derive(Debug, Clone)]
pub struct GatewaySecrets {
    /// How operator clients authenticate.
    pub operator_auth: OperatorAuth,
    /// Presented to agents.
    pub gateway_credential: Secret,
    /// Expected from bridges.
    pub bridge_credential: Secret,
    /// Expected from agents.
    pub agent_credential: Secret,
    /// Expected from executors.
    pub executor_credential: Secret,
}

impl GatewaySecrets {
    /// Resolves the gateway's secrets (and no others) from `source`.
    pub fn resolve(config: &Config, source: &dyn SecretSource) -> Result<Self, GatewayError> {
        let get = |what: &'static str, r: &pincer_runtime::SecretRef| {
            r.resolve(source)
                .map_err(|source| GatewayError::Secret { what, source })
        };
        let creds = &config.services.credentials;
        Ok(Self {
            operator_auth: match &config.gateway.auth {
                GatewayAuth::Token(r) => OperatorAuth::Token(get("gateway.auth.token", r)?),
                GatewayAuth::Password(hash) => OperatorAuth::Password(hash.clone()),
                GatewayAuth::None => OperatorAuth::None,
            },
            gateway_credential: get("services.credentials.gateway", &creds.gateway)?,
            bridge_credential: get("services.credentials.bridge", &creds.bridge)?,
            agent_credential: get("services.credentials.agent", &creds.agent)?,
            executor_credential: get("services.credentials.executor", &creds.executor)?,
        })
    }
}

/// Runs the gateway until `shutdown` is cancelled, then drains.
pub async fn run(
    config: Config,
    state_dir: PathBuf,
    listeners: GatewayListeners,
    secrets: GatewaySecrets,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    ensure_private_dir(&state_dir)?;
    let db_path = state_dir.join("gateway.db");
    if !db_path.exists() {
        write_private_file(&db_path, b"")?;
    }
    let store = Store::open(&db_path)?;

    let bus = EventBus::default();
    let approvals = Arc::new(
        Approvals::open(
            store.clone(),
            bus.clone(),
            config.exec.approval_timeout,
            shutdown.clone(),
        )
        .await?,
    );
    let outbox_ready = Arc::new(tokio::sync::Notify::new());
    let inbound_ready = Arc::new(tokio::sync::Notify::new());
    // Only configured chat channels have a policy; anything else (including a bridge
    // claiming the "operator" channel) is ignored.
    let policies: HashMap<String, _> = config
        .channel_access()
        .into_iter()
        .map(|(channel, access)| (channel.to_owned(), access.clone()))
        .collect();
    let senders = Arc::new(
        SenderAccess::open(SenderAccessSetup {
            store: store.clone(),
            policies,
            session: config.session.clone(),
            agent_id: DEFAULT_AGENT_ID.to_owned(),
            approvals: Arc::clone(&approvals),
            bus: bus.clone(),
            inbound_ready: Arc::clone(&inbound_ready),
            outbox_ready: Arc::clone(&outbox_ready),
        })
        .await?,
    );
    let hub = BridgeHub::new(store.clone(), Arc::clone(&senders), inbound_ready);
    let events = Arc::new(TurnEvents::default());

    let grants = GrantSigner::open(&state_dir)?;
    let credential = PresentCredential::new(ServiceName::Gateway, &secrets.gateway_credential)?;
    let agent =
        agent_client(&config.services.agent.url, credential).map_err(GatewayError::AgentUrl)?;
    let runner = Arc::new(TurnRunner {
        store: store.clone(),
        agent,
        hub: Arc::clone(&hub),
        events: Arc::clone(&events),
        agent_id: DEFAULT_AGENT_ID.to_owned(),
        tools: TurnTools::from_config(&config),
        outbox_ready: Arc::clone(&outbox_ready),
        grants: grants.clone(),
    });

    let operator_addr = listeners
        .operator
        .local_addr()
        .map_err(|source| GatewayError::Bind {
            addr: "operator".into(),
            source,
        })?;
    let grpc_addr = listeners
        .grpc
        .local_addr()
        .map_err(|source| GatewayError::Bind {
            addr: "grpc".into(),
            source,
        })?;
    tracing::info!(%operator_addr, %grpc_addr, "gateway listening");

    let bridge_auth = RequireCaller::new(vec![(
        ServiceName::Bridge,
        secrets.bridge_credential.clone(),
    )]);
    let agent_auth =
        RequireCaller::new(vec![(ServiceName::Agent, secrets.agent_credential.clone())]);
    let executor_auth = RequireCaller::new(vec![(
        ServiceName::Executor,
        secrets.executor_credential.clone(),
    )]);
    // HTTP/2 PINGs are the replicas' heartbeat: a bridge that stops answering (frozen,
    // cut off) loses its stream within ~3 s, and its leases stop being renewed.
    let grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(2)))
        .add_service(BridgeServiceServer::with_interceptor(
            BridgeLink::new(Arc::clone(&hub)),
            bridge_auth,
        ))
        .add_service(GatewayServiceServer::with_interceptor(
            AgentApi::new(store.clone()),
            agent_auth,
        ))
        .add_service(ExecutorLinkServiceServer::with_interceptor(
            ExecutorLink::new(grants, Arc::clone(&approvals)),
            executor_auth,
        ))
        .serve_with_incoming_shutdown(pincer_runtime::net::incoming(listeners.grpc), hub.closed());

    let devices = Devices::open(store.clone(), PairingConfig::default(), bus.clone()).await?;
    let limits = config.gateway.auth_rate_limit;
    let writes = BucketConfig {
        burst: config.gateway.write_rate_limit.burst,
        per_minute: config.gateway.write_rate_limit.per_minute,
    };
    let state = Arc::new(OperatorState {
        store: store.clone(),
        hub: Arc::clone(&hub),
        events,
        auth: secrets.operator_auth,
        agent_id: DEFAULT_AGENT_ID.to_owned(),
        auto_approve_local: config.gateway.auto_approve_local_devices,
        gateway: config.gateway.clone(),
        devices: Arc::new(devices),
        approvals,
        senders,
        bus,
        challenges: Mutex::new(Challenges::default()),
        limiter: Mutex::new(AuthFailureLimiter::new(AuthLimitConfig {
            max_failures: limits.max_failures,
            window: limits.window,
            lockout: limits.lockout,
            ..AuthLimitConfig::default()
        })),
        writes: Mutex::new(KeyedBuckets::new(writes, 4096)),
        http_writes: Mutex::new(KeyedBuckets::new(writes, 4096)),
        started: std::time::Instant::now(),
    });
    let operator_shutdown = shutdown.clone();
    // Replies are several small frames in a row; without TCP_NODELAY, Nagle's algorithm
    // and the peer's delayed ACK add ~40 ms to each.
    let operator_listener = listeners.operator.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let http = axum::serve(
        operator_listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { operator_shutdown.cancelled().await });

    let runner_task = tokio::spawn(Arc::clone(&runner).run(shutdown.clone()));
    let delivery_task = tokio::spawn(crate::delivery::run(
        store.clone(),
        Arc::clone(&hub),
        outbox_ready,
        shutdown.clone(),
    ));
    let lease_task = tokio::spawn(Arc::clone(&hub).lease_loop(shutdown.clone()));
    let closer = {
        let hub = Arc::clone(&hub);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            hub.close();
        })
    };

    let grpc_task = tokio::spawn(grpc);
    let http_task = tokio::spawn(async move { http.await });
    shutdown.cancelled().await;
    tracing::info!("gateway draining");
    let drain = async {
        let _ = runner_task.await;
        let _ = delivery_task.await;
        let _ = lease_task.await;
        let _ = closer.await;
        let grpc = grpc_task.await;
        let http = http_task.await;
        (grpc, http)
    };
    match tokio::time::timeout(Duration::from_secs(25), drain).await {
        Ok((grpc, http)) => {
            if let Ok(Err(e)) = grpc {
                return Err(GatewayError::Serve {
                    server: "gRPC",
                    message: e.to_string(),
                });
            }
            if let Ok(Err(e)) = http {
                return Err(GatewayError::Serve {
                    server: "operator",
                    message: e.to_string(),
                });
            }
        }
        Err(_) => tracing::warn!("gateway drain timed out; queued work stays in the database"),
    }
    tracing::info!("gateway stopped");
    Ok(())
}
