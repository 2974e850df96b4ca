//! https over the pinned connection: the certificate is verified against the configured
//! roots and the SNI is the URL's host name (not the address it resolved to). The server
//! is a rustls server on loopback with a throwaway CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::ip;
use pincer_egress::{EgressError, Fetcher, HickoryResolver, IpCidr, RecordingDialer};
use pincer_testkit::dns::FakeDns;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const NAME: &str = "secure.example.test";

struct TlsServer {
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

async fn tls_server() -> TlsServer {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![NAME.to_owned()])
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
    let sni = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sni);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_owned));
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = "over tls";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsServer {
        addr,
        ca: ca.der().clone(),
        sni,
    }
}

fn fetcher(dns: &FakeDns, roots: Option<RootCertStore>) -> Fetcher {
    let mut builder = Fetcher::builder()
        .resolver(Arc::new(HickoryResolver::with_name_servers(&[dns.addr()])))
        .dialer(Arc::new(RecordingDialer::new()))
        .allow_network("127.0.0.1/32".parse::<IpCidr>().unwrap());
    if let Some(roots) = roots {
        builder = builder.tls_roots(roots);
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn https_verifies_the_certificate_and_sends_the_host_name_as_sni() {
    let server = tls_server().await;
    let dns = FakeDns::start().await.unwrap();
    dns.set(NAME, [ip("127.0.0.1")]);
    let mut roots = RootCertStore::empty();
    roots.add(server.ca.clone()).unwrap();
    let port = server.addr.port();

    let page = fetcher(&dns, Some(roots.clone()))
        .fetch(&format!("https://{NAME}:{port}/"))
        .await
        .unwrap();
    assert_eq!(page.text, "over tls");
    assert_eq!(server.sni.lock().unwrap().clone(), [Some(NAME.to_owned())]);

    // The certificate names the host, not the address: an IP URL fails verification.
    let err = fetcher(&dns, Some(roots))
        .fetch(&format!("https://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Tls { .. }), "{err}");

    // The default roots (webpki) do not trust the throwaway CA.
    let err = fetcher(&dns, None)
        .fetch(&format!("https://{NAME}:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}
