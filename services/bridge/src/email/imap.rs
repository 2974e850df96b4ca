//! IMAP connections (async-imap over tokio): TCP, implicit TLS or STARTTLS, LOGIN, SELECT;
//! and the few commands the adapter uses, with errors mapped to [`PlatformError`]s that
//! never contain the password.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::CHANNEL;
use super::settings::{ImapSettings, Security};
use crate::adapter::PlatformError;

/// A plaintext or TLS connection.
#[derive(Debug)]
pub enum MailStream {
    /// Loopback only.
    Plain(TcpStream),
    /// TLS (implicit or after STARTTLS).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in IMAP session.
pub type Session = async_imap::Session<MailStream>;

/// The TLS client config: Web PKI roots plus the operator's extra CAs.
pub fn tls_config(extra_ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, PlatformError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| {
                PlatformError::operator(CHANNEL, format!("extra CA PEM is not valid: {e}"))
            })?;
            roots.add(cert).map_err(|e| {
                PlatformError::operator(CHANNEL, format!("extra CA certificate refused: {e}"))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(PlatformError::operator(
                CHANNEL,
                "extra CA PEM contains no certificate",
            ));
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PlatformError::operator(CHANNEL, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn transient(what: &str, e: impl std::fmt::Display) -> PlatformError {
    PlatformError::transient(CHANNEL, format!("IMAP {what}: {e}"))
}

/// Runs `f` with the I/O timeout.
pub async fn timed<T>(
    timeout: Duration,
    what: &str,
    f: impl Future<Output = Result<T, PlatformError>>,
) -> Result<T, PlatformError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| transient(what, format!("timed out after {timeout:?}")))?
}

/// Connects, protects and logs in.
pub async fn connect(
    settings: &ImapSettings,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Session, PlatformError> {
    timed(timeout, "connect", connect_inner(settings, tls)).await
}

async fn connect_inner(
    settings: &ImapSettings,
    tls: &Arc<ClientConfig>,
) -> Result<Session, PlatformError> {
    let host = settings.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((host, settings.port))
        .await
        .map_err(|e| {
            transient(
                "connect",
                format!("{}:{}: {e}", settings.host, settings.port),
            )
        })?;
    let stream = match settings.security {
        Security::Plain => MailStream::Plain(tcp),
        Security::Tls => wrap_tls(tcp, host, tls).await?,
        Security::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client).await?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .map_err(|e| {
                    PlatformError::operator(
                        CHANNEL,
                        format!("IMAP server refused STARTTLS (not downgrading): {e}"),
                    )
                })?;
            wrap_tls(client.into_inner(), host, tls).await?
        }
    };
    let mut client = async_imap::Client::new(stream);
    if settings.security != Security::StartTls {
        greeting(&mut client).await?;
    }
    client
        .login(&settings.username, settings.password.expose())
        .await
        .map_err(|(e, _)| match e {
            async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => {
                PlatformError::operator(
                    CHANNEL,
                    format!("IMAP login as {:?} was refused", settings.username),
                )
            }
            // Never the error text of a validation failure: it could quote the password.
            async_imap::error::Error::Validate(_) => {
                PlatformError::operator(CHANNEL, "IMAP username or password contains a line break")
            }
            other => transient("login", other),
        })
}

async fn greeting(
    client: &mut async_imap::Client<impl AsyncIoStream>,
) -> Result<(), PlatformError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(transient("greeting", "connection closed")),
        Err(e) => Err(transient("greeting", e)),
    }
}

/// The stream bound async-imap needs.
pub trait AsyncIoStream: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send> AsyncIoStream for T {}

async fn wrap_tls(
    tcp: TcpStream,
    host: &str,
    tls: &Arc<ClientConfig>,
) -> Result<MailStream, PlatformError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        PlatformError::operator(
            CHANNEL,
            format!("{host:?} is not a valid TLS server name: {e}"),
        )
    })?;
    let stream = TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| transient("TLS handshake", e))?;
    Ok(MailStream::Tls(Box::new(stream)))
}

/// SELECTs the mailbox; its UIDVALIDITY.
pub async fn select(session: &mut Session, mailbox: &str) -> Result<u32, PlatformError> {
    let selected = session
        .select(mailbox)
        .await
        .map_err(|e| PlatformError::operator(CHANNEL, format!("IMAP SELECT {mailbox:?}: {e}")))?;
    selected
        .uid_validity
        .ok_or_else(|| transient("SELECT", "the server reported no UIDVALIDITY"))
}

/// UIDs of unseen messages, ascending.
pub async fn unseen(session: &mut Session) -> Result<Vec<u32>, PlatformError> {
    let uids: HashSet<u32> = session
        .uid_search("UNSEEN")
        .await
        .map_err(|e| transient("UID SEARCH", e))?;
    let mut uids: Vec<u32> = uids.into_iter().collect();
    uids.sort_unstable();
    Ok(uids)
}

/// One message's raw bytes, without setting `\Seen`. `None` when it is gone.
pub async fn fetch(
    session: &mut Session,
    uid: u32,
    query: &str,
) -> Result<Option<Vec<u8>>, PlatformError> {
    let fetches: Vec<_> = session
        .uid_fetch(uid.to_string(), query)
        .await
        .map_err(|e| transient("UID FETCH", e))?
        .try_collect()
        .await
        .map_err(|e| transient("UID FETCH", e))?;
    Ok(fetches
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.body().or_else(|| f.header()))
        .map(<[u8]>::to_vec))
}

/// Sets `\Seen` on the given UIDs.
pub async fn mark_seen(session: &mut Session, uids: &[u32]) -> Result<(), PlatformError> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let _: Vec<_> = session
        .uid_store(set, "+FLAGS.SILENT (\\Seen)")
        .await
        .map_err(|e| transient("UID STORE", e))?
        .try_collect()
        .await
        .map_err(|e| transient("UID STORE", e))?;
    Ok(())
}

/// True when the server supports IDLE.
pub async fn has_idle(session: &mut Session) -> Result<bool, PlatformError> {
    Ok(session
        .capabilities()
        .await
        .map_err(|e| transient("CAPABILITY", e))?
        .has_str("IDLE"))
}
