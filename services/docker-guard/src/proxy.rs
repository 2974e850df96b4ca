//! The HTTP side: accept connections, decide each request with [`crate::rules`], forward
//! what is allowed to the engine (streaming answers, splicing attach upgrades), answer
//! everything else with 403 in Docker's error shape.
//!
//! The request sent to the engine is rebuilt from the decision: path and query from the
//! [`Route`], the body only for create (the checked JSON), and only the headers the engine
//! needs (`Host`, `Content-Type`, and the upgrade headers for attach).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::GuardError;
use crate::listen::{Accepted, Listener};
use crate::rules::bind::{BindKind, verify_on_disk, verify_socket_on_disk};
use crate::rules::create::exec::{check_exec_create, check_exec_start};
use crate::rules::endpoint::{ExecEndpoint, ExecRoute, classify_exec};
use crate::rules::{
    BindCheck, ContainerOp, Endpoint, Policy, Refusal, Route, check_create, classify,
};
use crate::upstream::{Engine, ExecOwner, Inspected};

/// The largest request body read (a create body is a few KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a request's headers and body may take to arrive.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After shutdown is asked, how long open connections (e.g. a wait) may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of every answer: the engine's (streamed) or the guard's own.
pub type Body = Either<Full<Bytes>, Incoming>;

/// The request handler, shared by all connections.
#[derive(Debug)]
struct Guard {
    policy: Policy,
    engine: Engine,
    /// Spliced attach streams, so shutdown can wait for them.
    tasks: TaskTracker,
}

/// Why a request was not forwarded.
enum Stop {
    Refused(Refusal),
    Failed(GuardError),
    /// The engine's own answer (e.g. 404 on the label check), passed on.
    Answer(Response<Full<Bytes>>),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

impl From<GuardError> for Stop {
    fn from(e: GuardError) -> Self {
        Self::Failed(e)
    }
}

impl From<http::Error> for Stop {
    fn from(e: http::Error) -> Self {
        Self::Failed(GuardError::Request(e))
    }
}

/// Serves `listener` until `shutdown`, then lets open connections finish for a while.
pub async fn serve(
    listener: Listener,
    policy: Policy,
    engine: Engine,
    shutdown: CancellationToken,
) -> Result<(), GuardError> {
    let tasks = TaskTracker::new();
    let guard = Arc::new(Guard {
        policy,
        engine,
        tasks: tasks.clone(),
    });
    tracing::info!(
        listen = %listener.describe(),
        docker = %guard.engine.socket().display(),
        image = %guard.policy.image,
        workspace_root = guard.policy.workspace_root.as_str(),
        bind_check = ?guard.policy.bind_check,
        "docker guard serving"
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(Accepted::Unix(io)) => {
                    tasks.spawn(connection(io, guard.clone(), shutdown.clone()));
                }
                Ok(Accepted::Tcp(io)) => {
                    tasks.spawn(connection(io, guard.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // E.g. too many open files: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the drain deadline; closing them"
        );
    }
    tracing::info!("docker guard stopped");
    Ok(())
}

async fn connection<I>(io: I, guard: Arc<Guard>, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let guard = guard.clone();
        async move { Ok::<_, Infallible>(guard.handle(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                break;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

impl Guard {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        match self.forward(req).await {
            Ok(response) => {
                tracing::debug!(%method, %path, status = response.status().as_u16(), "forwarded");
                response
            }
            Err(Stop::Refused(refusal)) => {
                tracing::warn!(%method, %path, reason = %refusal, "refused");
                own_answer(StatusCode::FORBIDDEN, &refusal.to_string())
            }
            Err(Stop::Failed(e @ GuardError::ClientBody(_))) => {
                tracing::warn!(%method, %path, error = %e, "bad request");
                own_answer(StatusCode::BAD_REQUEST, &e.to_string())
            }
            Err(Stop::Failed(e)) => {
                tracing::error!(%method, %path, error = %e, "cannot forward");
                own_answer(StatusCode::BAD_GATEWAY, &e.to_string())
            }
            Err(Stop::Answer(answer)) => {
                tracing::debug!(%method, %path, status = answer.status().as_u16(), "engine refused the label check");
                let (mut parts, body) = answer.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
        }
    }

    async fn forward(&self, mut req: Request<Incoming>) -> Result<Response<Body>, Stop> {
        let route = match classify(
            &self.policy,
            req.method(),
            req.uri().path(),
            req.uri().query(),
        ) {
            Ok(route) => route,
            // Not a container endpoint: maybe one of the exec endpoints, decided apart.
            Err(refusal @ Refusal::Endpoint { .. }) => {
                return match classify_exec(req.method(), req.uri().path(), req.uri().query()) {
                    Ok(exec) => self.exec(&exec, req).await,
                    Err(Refusal::Endpoint { .. }) => Err(refusal.into()),
                    Err(other) => Err(other.into()),
                };
            }
            Err(refusal) => return Err(refusal.into()),
        };
        let wants_upgrade = asks_for_tcp_upgrade(req.headers());
        let client_upgrade = hyper::upgrade::on(&mut req);
        let body = read_body(req.into_body()).await?;
        if !body.is_empty() && !route.takes_body() {
            return Err(Refusal::UnexpectedBody.into());
        }
        match &route.endpoint {
            Endpoint::CreateContainer => self.create(&route, &body).await,
            Endpoint::Container { id, op } => {
                if *op == ContainerOp::Attach && !wants_upgrade {
                    return Err(Refusal::NoUpgrade.into());
                }
                let (full_id, _) = self.sandbox(&route.version_prefix(), id).await?;
                let uri = route.upstream_path_and_query(&self.policy, Some(&full_id));
                if *op == ContainerOp::Attach {
                    self.upgrade(&uri, None, client_upgrade).await
                } else {
                    let upstream = Engine::request(route.method(), &uri).body(Full::default())?;
                    Ok(pass_on(self.engine.send(upstream).await?))
                }
            }
            _ => {
                let uri = route.upstream_path_and_query(&self.policy, None);
                let upstream = Engine::request(route.method(), &uri).body(Full::default())?;
                Ok(pass_on(self.engine.send(upstream).await?))
            }
        }
    }

    async fn create(&self, route: &Route, body: &[u8]) -> Result<Response<Body>, Stop> {
        let checked = check_create(&self.policy, body)?;
        if self.policy.bind_check == BindCheck::Filesystem {
            for (field, source, kind) in &checked.bind_sources {
                let on_disk = match kind {
                    BindKind::Workspace => verify_on_disk(source),
                    BindKind::EgressSocket => verify_socket_on_disk(source),
                };
                on_disk.map_err(|why| Refusal::BindSource {
                    field: field.clone(),
                    why,
                })?;
            }
        }
        let uri = route.upstream_path_and_query(&self.policy, None);
        let upstream = Engine::request(route.method(), &uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(checked.body)))?;
        Ok(pass_on(self.engine.send(upstream).await?))
    }

    /// The full id and user of sandbox `name`; a container without the label is refused,
    /// the engine's refusal (e.g. 404) passed on.
    async fn sandbox(&self, version: &str, name: &str) -> Result<(String, String), Stop> {
        match self.engine.inspect_container(version, name).await? {
            Inspected::Sandbox { id, user } => Ok((id, user)),
            Inspected::NotSandbox => Err(Refusal::NotSandbox(name.to_owned()).into()),
            Inspected::Answer(answer) => Err(Stop::Answer(answer)),
        }
    }

    /// An exec endpoint: only on a sandbox (for start and inspect: the exec's container),
    /// with the checked body.
    async fn exec(
        &self,
        route: &ExecRoute,
        mut req: Request<Incoming>,
    ) -> Result<Response<Body>, Stop> {
        let wants_upgrade = asks_for_tcp_upgrade(req.headers());
        let client_upgrade = hyper::upgrade::on(&mut req);
        let body = read_body(req.into_body()).await?;
        if !body.is_empty() && !route.takes_body() {
            return Err(Refusal::UnexpectedBody.into());
        }
        let version = route.version_prefix();
        let exec = match &route.endpoint {
            ExecEndpoint::Create { container } => {
                let (full_id, user) = self.sandbox(&version, container).await?;
                let checked = check_exec_create(&self.policy, &body, &user)?;
                let upstream = Engine::request(route.method(), &route.upstream_path(&full_id))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(checked.body)))?;
                return Ok(pass_on(self.engine.send(upstream).await?));
            }
            ExecEndpoint::Start { exec } | ExecEndpoint::Inspect { exec } => exec,
        };
        let container = match self.engine.exec_container(&version, exec).await? {
            ExecOwner::Container(id) => id,
            ExecOwner::Answer(answer) => return Err(Stop::Answer(answer)),
        };
        self.sandbox(&version, &container).await?;
        let uri = route.upstream_path(&container);
        if !route.takes_body() {
            let upstream = Engine::request(route.method(), &uri).body(Full::default())?;
            return Ok(pass_on(self.engine.send(upstream).await?));
        }
        let checked = check_exec_start(&self.policy, &body)?;
        if checked.detach {
            let upstream = Engine::request(route.method(), &uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(checked.body)))?;
            return Ok(pass_on(self.engine.send(upstream).await?));
        }
        if !wants_upgrade {
            return Err(Refusal::NoUpgrade.into());
        }
        self.upgrade(&uri, Some(checked.body), client_upgrade).await
    }

    /// Forwards an attach or exec start with an upgrade (and `body`, for exec start); on
    /// `101` from the engine, answers `101` and splices the two upgraded connections.
    async fn upgrade(
        &self,
        uri: &str,
        body: Option<Vec<u8>>,
        client_upgrade: hyper::upgrade::OnUpgrade,
    ) -> Result<Response<Body>, Stop> {
        let mut upstream = Engine::request(http::Method::POST, uri)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp");
        if body.is_some() {
            upstream = upstream.header(header::CONTENT_TYPE, "application/json");
        }
        let upstream = upstream.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let mut answer = self.engine.send(upstream).await?;
        if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(pass_on(answer));
        }
        let engine_upgrade = hyper::upgrade::on(&mut answer);
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp");
        if let Some(ct) = answer.headers().get(header::CONTENT_TYPE) {
            response = response.header(header::CONTENT_TYPE, ct);
        }
        self.tasks.spawn(async move {
            let (client, engine) = match tokio::try_join!(client_upgrade, engine_upgrade) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "attach upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut engine = TokioIo::new(engine);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut engine).await {
                tracing::debug!(error = %e, "attach stream ended with an error");
            }
        });
        Ok(response.body(Either::Left(Full::default()))?)
    }
}

/// Reads a request body up to [`MAX_BODY_BYTES`] within [`REQUEST_READ_TIMEOUT`].
async fn read_body(body: Incoming) -> Result<Bytes, Stop> {
    match tokio::time::timeout(
        REQUEST_READ_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Refusal::BodyTooLarge(MAX_BODY_BYTES).into())
        }
        Ok(Err(e)) => Err(Stop::Failed(GuardError::ClientBody(e.to_string()))),
        Err(_) => Err(Stop::Failed(GuardError::ClientBody(format!(
            "not complete within {} s",
            REQUEST_READ_TIMEOUT.as_secs()
        )))),
    }
}

/// Whether the request asks for `Connection: Upgrade` with `Upgrade: tcp`.
fn asks_for_tcp_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    let upgrade_tcp = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("tcp"));
    connection_upgrade && upgrade_tcp
}

/// The engine's answer, streamed back without its hop-by-hop headers.
fn pass_on(answer: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Either::Right(body))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::CONTENT_LENGTH,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// An answer of the guard's own, in Docker's error shape.
fn own_answer(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": format!("pincer-docker-guard: {message}") });
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
