//! Which requests may pass: the endpoints the executor's Docker client (bollard) calls, and
//! nothing else. A request becomes a [`Route`]; the guard sends the engine a request it
//! builds from the route (path and query re-encoded from the parsed values), never the
//! caller's bytes.
//!
//! | method | path (after an optional `/v1.N` prefix, N ≥ [`MIN_API_MINOR`]) | query accepted |
//! |---|---|---|
//! | GET, HEAD | `/_ping` | — |
//! | GET | `/version` (version negotiation) | — |
//! | GET | `/images/<the sandbox image>/json` | — |
//! | POST | `/containers/create` (body: [`super::create`]) | `name`, `platform` |
//! | GET | `/containers/json` (the guard adds the `pincer.sandbox=1` label filter) | `all`, `limit`, `size`, `filters` |
//! | POST | `/containers/{id}/attach` (connection upgrade) | `stream`, `stdout`, `stderr`, `stdin`, `logs`, `detachKeys` |
//! | POST | `/containers/{id}/start` | `detachKeys` |
//! | POST | `/containers/{id}/wait` | `condition` |
//! | POST | `/containers/{id}/kill` | `signal` |
//! | DELETE | `/containers/{id}` | `force`, `v`, `link` (only `false`) |
//!
//! `{id}` operations are forwarded only after the guard has inspected the container and found
//! the label `pincer.sandbox=1`; they go to the engine under the full container id.
//!
//! The `docker exec` endpoints that per-session containers need (`POST
//! /containers/{id}/exec`, `POST /exec/{id}/start`, `GET /exec/{id}/json`) are decided
//! apart, by [`classify_exec`]: [`classify`] refuses them, so they pass only through code
//! that checks the target container and the body as described there.

use std::collections::{BTreeMap, HashSet};

use http::Method;
use serde_json::Value;

use super::json::parse_strict;
use super::{Policy, Refusal, SANDBOX_LABEL, SANDBOX_LABEL_VALUE};

/// The oldest API minor version accepted (`/v1.40`). Older versions let `start` carry a
/// host config, among other things the checks here do not look at.
pub const MIN_API_MINOR: u32 = 40;

/// The longest container id or name accepted in a path.
const MAX_CONTAINER_REF_LEN: usize = 128;

/// An API version prefix (`/v1.41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    /// The minor version (major is always 1).
    pub minor: u32,
}

/// An operation on one existing container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerOp {
    /// `POST /containers/{id}/attach` with a connection upgrade.
    Attach,
    /// `POST /containers/{id}/start`.
    Start,
    /// `POST /containers/{id}/wait`.
    Wait,
    /// `POST /containers/{id}/kill`.
    Kill,
    /// `DELETE /containers/{id}`.
    Remove,
}

/// An allowed endpoint, with its accepted query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /_ping`.
    Ping,
    /// `HEAD /_ping`.
    PingHead,
    /// `GET /version`.
    Version,
    /// `GET /images/{image}/json` for the sandbox image.
    InspectImage,
    /// `POST /containers/create`; the body is checked separately.
    CreateContainer,
    /// `GET /containers/json`; the query's filters carry the sandbox label.
    ListContainers,
    /// An operation on container `id` (a name or an id, as sent).
    Container {
        /// The container as named by the caller.
        id: String,
        /// What to do.
        op: ContainerOp,
    },
}

/// An allowed request: its version prefix, endpoint and (re-encoded) query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The `/v1.N` prefix, when sent.
    pub version: Option<ApiVersion>,
    /// What is asked.
    pub endpoint: Endpoint,
    /// The accepted query parameters, in order, at most once each.
    pub query: Vec<(String, String)>,
}

impl Route {
    /// Whether the request may carry a body (only create does).
    pub fn takes_body(&self) -> bool {
        self.endpoint == Endpoint::CreateContainer
    }

    /// The path and query to send to the engine. Container operations use `container`
    /// (the full id the guard resolved) instead of the name the caller sent.
    pub fn upstream_path_and_query(&self, policy: &Policy, container: Option<&str>) -> String {
        let mut out = self.version_prefix();
        match &self.endpoint {
            Endpoint::Ping | Endpoint::PingHead => out.push_str("/_ping"),
            Endpoint::Version => out.push_str("/version"),
            Endpoint::InspectImage => {
                out.push_str("/images/");
                out.push_str(&policy.image);
                out.push_str("/json");
            }
            Endpoint::CreateContainer => out.push_str("/containers/create"),
            Endpoint::ListContainers => out.push_str("/containers/json"),
            Endpoint::Container { id, op } => {
                out.push_str("/containers/");
                out.push_str(container.unwrap_or(id));
                out.push_str(match op {
                    ContainerOp::Attach => "/attach",
                    ContainerOp::Start => "/start",
                    ContainerOp::Wait => "/wait",
                    ContainerOp::Kill => "/kill",
                    ContainerOp::Remove => "",
                });
            }
        }
        if !self.query.is_empty() {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
            out.push('?');
            out.push_str(&q.finish());
        }
        out
    }

    /// The version prefix (`/v1.41`, or empty).
    pub fn version_prefix(&self) -> String {
        self.version
            .map(|v| format!("/v1.{}", v.minor))
            .unwrap_or_default()
    }

    /// The method to send to the engine.
    pub fn method(&self) -> Method {
        match &self.endpoint {
            Endpoint::Ping | Endpoint::Version | Endpoint::InspectImage => Method::GET,
            Endpoint::ListContainers => Method::GET,
            Endpoint::PingHead => Method::HEAD,
            Endpoint::CreateContainer => Method::POST,
            Endpoint::Container {
                op: ContainerOp::Remove,
                ..
            } => Method::DELETE,
            Endpoint::Container { .. } => Method::POST,
        }
    }
}

/// Decides whether `method path?query` is allowed.
pub fn classify(
    policy: &Policy,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Route, Refusal> {
    let refuse = || Refusal::Endpoint {
        method: method.to_string(),
        path: path.to_owned(),
    };
    let (version, segments) = split_path(method, path)?;
    let image_path = format!("images/{}/json", policy.image);
    let rest = segments.join("/");
    let (endpoint, accepted): (Endpoint, &[&str]) = match (method, segments.as_slice()) {
        (&Method::GET, ["_ping"]) => (Endpoint::Ping, &[]),
        (&Method::HEAD, ["_ping"]) => (Endpoint::PingHead, &[]),
        (&Method::GET, ["version"]) => (Endpoint::Version, &[]),
        (&Method::GET, _) if rest == image_path => (Endpoint::InspectImage, &[]),
        (&Method::POST, ["containers", "create"]) => {
            (Endpoint::CreateContainer, &["name", "platform"])
        }
        (&Method::GET, ["containers", "json"]) => (
            Endpoint::ListContainers,
            &["all", "limit", "size", "filters"],
        ),
        (&Method::POST, ["containers", id, op]) => {
            let (op, accepted): (ContainerOp, &[&str]) = match *op {
                "attach" => (
                    ContainerOp::Attach,
                    &["stream", "stdout", "stderr", "stdin", "logs", "detachKeys"],
                ),
                "start" => (ContainerOp::Start, &["detachKeys"]),
                "wait" => (ContainerOp::Wait, &["condition"]),
                "kill" => (ContainerOp::Kill, &["signal"]),
                _ => return Err(refuse()),
            };
            (container(id, op).ok_or_else(refuse)?, accepted)
        }
        (&Method::DELETE, ["containers", id]) => (
            container(id, ContainerOp::Remove).ok_or_else(refuse)?,
            &["force", "v", "link"],
        ),
        _ => return Err(refuse()),
    };
    let mut query = parse_query(query, accepted)?;
    // bollard always sends `link=false`; `link=true` removes a link instead of a container.
    if let Some((key, _)) = query.iter().find(|(k, v)| k == "link" && v != "false") {
        return Err(Refusal::Query { key: key.clone() });
    }
    if endpoint == Endpoint::ListContainers {
        add_sandbox_filter(&mut query)?;
    }
    Ok(Route {
        version,
        endpoint,
        query,
    })
}

/// The API version prefix (refused when too old) and the segments after it. Percent
/// escapes, empty and dot segments never name an allowed endpoint.
fn split_path<'p>(
    method: &Method,
    path: &'p str,
) -> Result<(Option<ApiVersion>, Vec<&'p str>), Refusal> {
    let refuse = || Refusal::Endpoint {
        method: method.to_string(),
        path: path.to_owned(),
    };
    if path.contains('%') || path.contains("//") || path.ends_with('/') {
        return Err(refuse());
    }
    let mut segments: Vec<&str> = path
        .strip_prefix('/')
        .ok_or_else(refuse)?
        .split('/')
        .collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(refuse());
    }
    let version_segment = segments
        .first()
        .and_then(|s| s.strip_prefix('v'))
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()));
    let version = match version_segment {
        Some(v) => {
            let parsed = parse_version(v).ok_or_else(refuse)?;
            if parsed.minor < MIN_API_MINOR {
                return Err(Refusal::ApiVersion(format!("v{v}")));
            }
            segments.remove(0);
            Some(parsed)
        }
        None => None,
    };
    Ok((version, segments))
}

fn parse_version(v: &str) -> Option<ApiVersion> {
    let (major, minor) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if major != "1" || !digits(minor) {
        return None;
    }
    Some(ApiVersion {
        minor: minor.parse().ok()?,
    })
}

/// A container reference as the engine accepts it: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
fn container(id: &str, op: ContainerOp) -> Option<Endpoint> {
    let mut bytes = id.bytes();
    let ok = id.len() <= MAX_CONTAINER_REF_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    ok.then(|| Endpoint::Container {
        id: id.to_owned(),
        op,
    })
}

/// The length of an exec instance's id (hexadecimal).
const EXEC_ID_LEN: usize = 64;

/// A `docker exec` endpoint: what a session's calls need (`executor.docker.reuse:
/// "session"`). Kept apart from [`classify`], which refuses them: the proxy may forward one
/// only after it resolved the target to a sandbox container (for [`ExecOp::Start`] and
/// [`ExecOp::Inspect`]: the exec's `ContainerID`, from `GET /exec/{id}/json` on the engine,
/// must carry `pincer.sandbox=1`), and a create only with the body
/// [`super::create::exec::check_exec_create`] accepted for that container's `User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEndpoint {
    /// `POST /containers/{id}/exec`, with a body.
    Create {
        /// The container as named by the caller.
        container: String,
    },
    /// `POST /exec/{id}/start`, with a body, as a connection upgrade (unless detached).
    Start {
        /// The exec instance (64 hexadecimal digits).
        exec: String,
    },
    /// `GET /exec/{id}/json`.
    Inspect {
        /// The exec instance (64 hexadecimal digits).
        exec: String,
    },
}

/// An allowed exec request: its version prefix and endpoint (no query is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRoute {
    /// The `/v1.N` prefix, when sent.
    pub version: Option<ApiVersion>,
    /// What is asked.
    pub endpoint: ExecEndpoint,
}

impl ExecRoute {
    /// The path to send to the engine: a create goes to `container` (the full id the guard
    /// resolved), never to the caller's name.
    pub fn upstream_path(&self, container: &str) -> String {
        let version = self.version_prefix();
        match &self.endpoint {
            ExecEndpoint::Create { .. } => format!("{version}/containers/{container}/exec"),
            ExecEndpoint::Start { exec } => format!("{version}/exec/{exec}/start"),
            ExecEndpoint::Inspect { exec } => format!("{version}/exec/{exec}/json"),
        }
    }

    /// The version prefix (`/v1.41`, or empty), also for the guard's own inspections.
    pub fn version_prefix(&self) -> String {
        self.version
            .map(|v| format!("/v1.{}", v.minor))
            .unwrap_or_default()
    }

    /// The method to send to the engine.
    pub fn method(&self) -> Method {
        match self.endpoint {
            ExecEndpoint::Inspect { .. } => Method::GET,
            ExecEndpoint::Create { .. } | ExecEndpoint::Start { .. } => Method::POST,
        }
    }

    /// Whether the request carries a (checked) body: create and start do.
    pub fn takes_body(&self) -> bool {
        !matches!(self.endpoint, ExecEndpoint::Inspect { .. })
    }
}

/// Decides whether `method path?query` is one of the exec endpoints. Resize, exec on a
/// name that is not a container reference, other methods and any query are refused.
pub fn classify_exec(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<ExecRoute, Refusal> {
    let refuse = || Refusal::Endpoint {
        method: method.to_string(),
        path: path.to_owned(),
    };
    let (version, segments) = split_path(method, path)?;
    let exec_id = |id: &str| {
        (id.len() == EXEC_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| id.to_ascii_lowercase())
    };
    let endpoint = match (method, segments.as_slice()) {
        (&Method::POST, ["containers", id, "exec"]) => match container(id, ContainerOp::Start) {
            Some(_) => ExecEndpoint::Create {
                container: (*id).to_owned(),
            },
            None => return Err(refuse()),
        },
        (&Method::POST, ["exec", id, "start"]) => ExecEndpoint::Start {
            exec: exec_id(id).ok_or_else(refuse)?,
        },
        (&Method::GET, ["exec", id, "json"]) => ExecEndpoint::Inspect {
            exec: exec_id(id).ok_or_else(refuse)?,
        },
        _ => return Err(refuse()),
    };
    parse_query(query, &[])?;
    Ok(ExecRoute { version, endpoint })
}

fn parse_query(query: Option<&str>, accepted: &[&str]) -> Result<Vec<(String, String)>, Refusal> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !accepted.contains(&k.as_ref()) || !seen.insert(k.clone()) {
            return Err(Refusal::Query {
                key: k.into_owned(),
            });
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// Makes the `filters` of a container list include `label=pincer.sandbox=1`. The engine ANDs
/// label filters, so the answer holds sandboxes only, whatever else was asked.
fn add_sandbox_filter(query: &mut Vec<(String, String)>) -> Result<(), Refusal> {
    let raw = query
        .iter()
        .position(|(k, _)| k == "filters")
        .map(|i| query.remove(i).1)
        .unwrap_or_default();
    let filters = parse_filters(&raw)?;
    let mut filters = filters;
    filters
        .entry("label".to_owned())
        .or_default()
        .insert(format!("{SANDBOX_LABEL}={SANDBOX_LABEL_VALUE}"), true);
    let encoded = serde_json::to_string(&filters).map_err(|e| Refusal::Filters(e.to_string()))?;
    query.push(("filters".to_owned(), encoded));
    Ok(())
}

/// Reads Docker's filter JSON in either form: `{"k": ["v"]}` or `{"k": {"v": true}}`.
fn parse_filters(raw: &str) -> Result<BTreeMap<String, BTreeMap<String, bool>>, Refusal> {
    let mut out = BTreeMap::new();
    if raw.trim().is_empty() {
        return Ok(out);
    }
    let bad = |why: &str| Refusal::Filters(why.to_owned());
    let value = parse_strict(raw.as_bytes()).map_err(|e| Refusal::Filters(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad("must be a JSON object"))?;
    for (key, values) in object {
        let set: &mut BTreeMap<String, bool> = out.entry(key.clone()).or_default();
        match values {
            Value::Array(items) => {
                for item in items {
                    let s = item.as_str().ok_or_else(|| bad("values must be strings"))?;
                    set.insert(s.to_owned(), true);
                }
            }
            Value::Object(map) => {
                for (s, flag) in map {
                    let flag = flag
                        .as_bool()
                        .ok_or_else(|| bad("flags must be booleans"))?;
                    set.insert(s.clone(), flag);
                }
            }
            _ => return Err(bad("each filter must be a list or a map")),
        }
    }
    Ok(out)
}
