//! The engine side: one HTTP/1.1 connection over the engine's Unix socket per request
//! (upgradable, for attach), and the label check on an existing container.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use crate::GuardError;
use crate::rules::{SANDBOX_LABEL, SANDBOX_LABEL_VALUE};

/// How long connecting to the engine may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest container inspection the guard reads.
const MAX_INSPECT_BYTES: usize = 4 * 1024 * 1024;
/// How long an inspection may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Docker engine behind the guard.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
}

/// What the engine says about a container the caller named.
#[derive(Debug)]
pub enum Inspected {
    /// A sandbox, with its full id.
    Sandbox {
        /// The full container id.
        id: String,
        /// Its `Config.User` (what an exec into it must run as).
        user: String,
    },
    /// Exists, but is not a sandbox.
    NotSandbox,
    /// The engine refused the inspection (e.g. 404 no such container); passed on as is.
    Answer(Response<Full<Bytes>>),
}

/// What the engine says about an exec instance the caller named.
#[derive(Debug)]
pub enum ExecOwner {
    /// The full id of the container it belongs to.
    Container(String),
    /// The engine refused the inspection (e.g. 404 no such exec instance); passed on.
    Answer(Response<Full<Bytes>>),
}

/// A JSON answer, or the engine's refusal to pass on.
enum Fetched {
    Json(Value),
    Answer(Response<Full<Bytes>>),
}

impl Engine {
    /// The engine listening on `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A request skeleton for `path_and_query` (the engine requires a `Host` header).
    pub fn request(method: http::Method, path_and_query: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, "docker")
    }

    /// Sends `req` on a new connection and returns the answer (its body still streaming).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, GuardError> {
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&self.socket)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => {
                    return Err(GuardError::DockerConnect {
                        socket: self.socket.clone(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(GuardError::DockerTimeout {
                        socket: self.socket.clone(),
                        seconds: CONNECT_TIMEOUT.as_secs(),
                    });
                }
            };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "engine connection ended with an error");
            }
        });
        Ok(sender.send_request(req).await?)
    }

    /// Inspects container `name` (under API prefix `version_prefix`) and reports whether it
    /// carries `pincer.sandbox=1`.
    pub async fn inspect_container(
        &self,
        version_prefix: &str,
        name: &str,
    ) -> Result<Inspected, GuardError> {
        let path = format!("{version_prefix}/containers/{name}/json");
        let value = match self.get_json(&path, "a container inspection").await? {
            Fetched::Json(value) => value,
            Fetched::Answer(answer) => return Ok(Inspected::Answer(answer)),
        };
        let bad = |why: &str| GuardError::DockerAnswer {
            what: "a container inspection",
            why: why.to_owned(),
        };
        let id = value
            .get("Id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("no hexadecimal Id"))?;
        let config = value.get("Config");
        let label = config
            .and_then(|c| c.get("Labels"))
            .and_then(|l| l.get(SANDBOX_LABEL))
            .and_then(Value::as_str);
        let user = config
            .and_then(|c| c.get("User"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(if label == Some(SANDBOX_LABEL_VALUE) {
            Inspected::Sandbox {
                id: id.to_owned(),
                user: user.to_owned(),
            }
        } else {
            Inspected::NotSandbox
        })
    }

    /// The container exec instance `exec` belongs to (its full id), or the engine's refusal.
    pub async fn exec_container(
        &self,
        version_prefix: &str,
        exec: &str,
    ) -> Result<ExecOwner, GuardError> {
        let path = format!("{version_prefix}/exec/{exec}/json");
        let value = match self.get_json(&path, "an exec inspection").await? {
            Fetched::Json(value) => value,
            Fetched::Answer(answer) => return Ok(ExecOwner::Answer(answer)),
        };
        value
            .get("ContainerID")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|id| ExecOwner::Container(id.to_owned()))
            .ok_or_else(|| GuardError::DockerAnswer {
                what: "an exec inspection",
                why: "no hexadecimal ContainerID".to_owned(),
            })
    }

    /// `GET path` as JSON; a status other than 200 is the engine's answer, passed on.
    async fn get_json(&self, path: &str, what: &'static str) -> Result<Fetched, GuardError> {
        let req = Self::request(http::Method::GET, path).body(Full::new(Bytes::new()))?;
        let response = self.send(req).await?;
        let (parts, body) = response.into_parts();
        let bytes = match tokio::time::timeout(
            INSPECT_TIMEOUT,
            Limited::new(body, MAX_INSPECT_BYTES).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) => {
                return Err(GuardError::DockerAnswer {
                    what,
                    why: e.to_string(),
                });
            }
            Err(_) => {
                return Err(GuardError::DockerAnswer {
                    what,
                    why: format!("no answer within {} s", INSPECT_TIMEOUT.as_secs()),
                });
            }
        };
        if parts.status != StatusCode::OK {
            return Ok(Fetched::Answer(Response::from_parts(
                parts,
                Full::new(bytes),
            )));
        }
        serde_json::from_slice(&bytes)
            .map(Fetched::Json)
            .map_err(|e| GuardError::DockerAnswer {
                what,
                why: e.to_string(),
            })
    }
}
