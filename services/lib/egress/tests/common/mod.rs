//! Shared test plumbing: a scripted HTTP/1.1 server on loopback that records what it
//! received, and a fetcher wired to the fake DNS server and the recording dialer.
//!
//! Network rule (TESTING.md): the only sockets opened are the loopback servers started
//! here and the fake DNS server; every other address goes through classification or the
//! [`RecordingDialer`], which records it and refuses without dialling.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod proxy;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pincer_egress::{Fetcher, HickoryResolver, IpCidr, Limits, RecordingDialer};
use pincer_testkit::dns::FakeDns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server answers on a path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body without `Content-Length`, then close.
    pub until_close: bool,
    /// Wait this long after the head before sending the body.
    pub stall: Option<Duration>,
}

impl Reply {
    pub fn text(content_type: &str, body: &str) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            until_close: false,
            stall: None,
        }
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self {
            status,
            headers: vec![
                ("Location".into(), location.into()),
                ("Content-Type".into(), "text/plain".into()),
            ],
            body: b"moved".to_vec(),
            until_close: false,
            stall: None,
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub target: String,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted HTTP/1.1 server on `127.0.0.1:0`.
pub struct Server {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = Arc::new(Mutex::new(HashMap::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (Arc::clone(&routes), Arc::clone(&seen));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(handle(stream, Arc::clone(&r), Arc::clone(&s)));
            }
        });
        Self {
            addr,
            routes,
            seen,
            task,
        }
    }

    /// Answer `target` (path and query) with `reply`.
    pub fn route(&self, target: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(target.into(), reply);
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(
    mut stream: TcpStream,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    seen.lock().unwrap().push(Seen {
        target: target.clone(),
        headers,
    });
    let reply = routes
        .lock()
        .unwrap()
        .get(&target)
        .cloned()
        .unwrap_or_else(|| Reply {
            status: 404,
            ..Reply::text("text/plain", "not found")
        });
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !reply.until_close {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    if stream.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    if let Some(stall) = reply.stall {
        tokio::time::sleep(stall).await;
    }
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

/// A fetcher that resolves through `dns`, dials through `dialer`, and re-allows `allow`.
pub fn fetcher(dns: &FakeDns, dialer: &RecordingDialer, allow: &[&str]) -> Fetcher {
    fetcher_with(dns, dialer, allow, Limits::default())
}

pub fn fetcher_with(
    dns: &FakeDns,
    dialer: &RecordingDialer,
    allow: &[&str],
    limits: Limits,
) -> Fetcher {
    let mut builder = Fetcher::builder()
        .resolver(Arc::new(HickoryResolver::with_name_servers(&[dns.addr()])))
        .dialer(Arc::new(dialer.clone()))
        .limits(limits);
    for net in allow {
        builder = builder.allow_network(net.parse::<IpCidr>().unwrap());
    }
    builder.build().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
