//! Plumbing for the guarded-proxy tests: the proxy served on loopback TCP or a unix
//! socket, a raw HTTP/1.1 client that shows exactly what the proxy answered, and echo
//! servers (plain and TLS with a throwaway CA) on `127.0.0.1:0`.
//!
//! Network rule (TESTING.md): the proxy dials through the [`RecordingDialer`], which
//! records every address and dials loopback only; the echo and HTTP servers are on
//! loopback; names resolve through the fake DNS server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pincer_egress::{
    EgressError, GuardedProxy, GuardedProxyBuilder, HickoryResolver, IpCidr, RecordingDialer,
};
use pincer_testkit::dns::FakeDns;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A proxy whose resolver is `dns`, whose dialer is `dialer`, re-allowing `allow`.
pub fn proxy_builder(
    dns: &FakeDns,
    dialer: &RecordingDialer,
    allow: &[&str],
) -> GuardedProxyBuilder {
    let mut builder = GuardedProxy::builder()
        .resolver(Arc::new(HickoryResolver::with_name_servers(&[dns.addr()])))
        .dialer(Arc::new(dialer.clone()));
    for net in allow {
        builder = builder.allow_network(net.parse::<IpCidr>().unwrap());
    }
    builder
}

/// A fake DNS server with the names the proxy tests use.
pub async fn dns() -> FakeDns {
    let dns = FakeDns::start().await.unwrap();
    for (name, ips) in [
        ("private.example.test", &["10.0.0.1"][..]),
        ("metadata.example.test", &["169.254.169.254"]),
        ("loop.example.test", &["127.0.0.1"]),
        ("mixed.example.test", &["93.184.216.34", "10.0.0.1"]),
        ("public.example.test", &["93.184.216.34"]),
        ("web.example.test", &["127.0.0.1"]),
        ("secure.example.test", &["127.0.0.1"]),
        ("printer.local", &["127.0.0.1"]),
    ] {
        dns.set(name, ips.iter().map(|s| super::ip(s)));
    }
    dns
}

/// `CONNECT target` is refused 403 with a one-line body containing `phrase`.
pub async fn assert_connect_refused(proxy: &RunningProxy, target: &str, phrase: &str) {
    let reply = proxy.client().await.connect(target).await;
    let text = reply.text();
    assert_eq!(reply.status, 403, "{target}: {text}");
    assert!(text.contains(phrase), "{target}: {text:?} lacks {phrase:?}");
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
}

/// A loopback HTTP server that answers every request with its method and body.
pub async fn body_echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async {
                    let method = request.method().to_string();
                    let body = request.into_body().collect().await?.to_bytes();
                    let response = http::Response::builder()
                        .header("x-method", method)
                        .body(Full::<Bytes>::new(body))
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// Where a running proxy listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A proxy serving in a task until [`RunningProxy::stop`] or drop.
pub struct RunningProxy {
    pub endpoint: Endpoint,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EgressError>>>,
}

impl RunningProxy {
    pub async fn tcp(proxy: GuardedProxy) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            proxy
                .serve_tcp(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            endpoint,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn unix(proxy: GuardedProxy) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pincer-proxy-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            proxy
                .serve_unix(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            endpoint: Endpoint::Unix(path),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A new client connection to the proxy.
    pub async fn client(&self) -> Client {
        let stream: Box<dyn Stream> = match &self.endpoint {
            Endpoint::Tcp(addr) => Box::new(TcpStream::connect(addr).await.unwrap()),
            Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await.unwrap()),
        };
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Resolves shutdown and waits for `serve_*` to return.
    pub async fn stop(&mut self) -> Result<(), EgressError> {
        let _ = self.stop.take().expect("stopped twice").send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the proxy did not stop")
            .unwrap()
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        if let Endpoint::Unix(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What the proxy (or the target, through it) answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client connection to the proxy.
pub struct Client {
    stream: Box<dyn Stream>,
    /// Bytes read past the last response head.
    buf: Vec<u8>,
}

impl Client {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// `CONNECT target`; on 200 only the head is read (the tunnel follows).
    pub async fn connect(&mut self, target: &str) -> Reply {
        self.send(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await;
        let head = self.head().await;
        if head.status == 200 {
            head
        } else {
            self.body(head).await
        }
    }

    /// Sends `request` (a whole head, `\r\n\r\n` included) and reads the response.
    pub async fn request(&mut self, request: &str) -> Reply {
        self.send(request.as_bytes()).await;
        let head = self.head().await;
        self.body(head).await
    }

    /// Reads a response head; its body is left unread.
    pub async fn head(&mut self) -> Reply {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8(head).unwrap();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Reply {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads the body `head` announces with `Content-Length` (or up to EOF without one).
    async fn body(&mut self, mut head: Reply) -> Reply {
        match head
            .header("content-length")
            .map(|v| v.parse::<usize>().unwrap())
        {
            Some(len) => {
                while self.buf.len() < len {
                    let mut chunk = [0u8; 4096];
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the body ended early");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                head.body = self.buf.drain(..len).collect();
            }
            None => {
                self.stream.read_to_end(&mut self.buf).await.unwrap();
                head.body = std::mem::take(&mut self.buf);
            }
        }
        head
    }

    /// Reads exactly `n` bytes (buffered ones first).
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = self.stream.read(&mut chunk).await.unwrap();
            assert!(got > 0, "closed after {} of {n} bytes", self.buf.len());
            self.buf.extend_from_slice(&chunk[..got]);
        }
        self.buf.drain(..n).collect()
    }

    /// Whether the proxy closes the connection (EOF or reset) within `limit`, reading and
    /// discarding whatever arrives until then.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let drain = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(limit, drain).await.is_ok()
    }

    /// The raw stream, for TLS over a tunnel.
    pub fn into_stream(self) -> Box<dyn Stream> {
        assert!(self.buf.is_empty(), "unread bytes: {:?}", self.buf);
        self.stream
    }
}

/// An echo server on `127.0.0.1:0`: every connection gets back what it sends.
pub struct EchoServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Self { addr, task }
    }
}

/// A TLS echo server on `127.0.0.1:0` for `name`, with a throwaway CA.
pub struct TlsEchoServer {
    pub addr: SocketAddr,
    pub ca: CertificateDer<'static>,
    task: JoinHandle<()>,
}

impl Drop for TlsEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsEchoServer {
    pub async fn start(name: &str) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Self {
            addr,
            ca: ca.der().clone(),
            task,
        }
    }
}
