//! The byte stream under an IRC connection: plain TCP or TLS (rustls with the webpki roots
//! plus operator-supplied CA certificates), read as lines with a length cap and written
//! one serialised [`Message`] at a time.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::wire::{MAX_INBOUND_LINE, Message};
use crate::adapter::PlatformError;

/// The channel name in errors.
const CHANNEL: &str = "irc";

/// A bidirectional byte stream (TCP or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens the TCP connection and, with `tls`, the TLS session (server name = `host`).
pub async fn connect(
    host: &str,
    port: u16,
    tls: bool,
    extra_ca_pem: Option<&[u8]>,
) -> Result<Box<dyn Io>, PlatformError> {
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
        PlatformError::transient(CHANNEL, format!("cannot connect to {host}:{port}: {e}"))
    })?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(Box::new(tcp));
    }
    let connector = TlsConnector::from(Arc::new(tls_config(extra_ca_pem)?));
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        PlatformError::operator(CHANNEL, format!("{host:?} is not a valid TLS server name"))
    })?;
    let stream = connector.connect(name, tcp).await.map_err(|e| {
        // A certificate the roots do not vouch for will not fix itself: the operator has to
        // add the server's CA (extra_ca_pem) or fix the host name.
        let certificate = e.get_ref().is_some_and(|inner| {
            inner
                .to_string()
                .to_ascii_lowercase()
                .contains("certificate")
        });
        let message = format!("TLS handshake with {host}:{port} failed: {e}");
        if certificate {
            PlatformError::operator(
                CHANNEL,
                format!(
                    "{message} (is the server's CA trusted? set extra_ca_pem for a private CA)"
                ),
            )
        } else {
            PlatformError::transient(CHANNEL, message)
        }
    })?;
    Ok(Box::new(stream))
}

/// The rustls client configuration: webpki roots plus `extra_ca_pem`.
fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<ClientConfig, PlatformError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                PlatformError::operator(CHANNEL, format!("extra_ca_pem is not valid PEM: {e}"))
            })?;
            roots.add(cert).map_err(|e| {
                PlatformError::operator(
                    CHANNEL,
                    format!("extra_ca_pem has an unusable CA certificate: {e}"),
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(PlatformError::operator(
                CHANNEL,
                "extra_ca_pem contains no CERTIFICATE block",
            ));
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PlatformError::permanent(CHANNEL, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Splits a byte stream into lines (LF-terminated, a CR before it dropped), at most
/// [`MAX_INBOUND_LINE`] bytes each. Cancel-safe: bytes read are kept in the buffer.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
}

/// What [`LineReader::next_line`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// One line (lossily decoded as UTF-8, without CR LF).
    Text(String),
    /// The peer closed the connection.
    Closed,
}

impl LineReader {
    /// Reads until a full line is buffered and returns it.
    pub async fn next_line<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> std::io::Result<Line> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Text(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() > MAX_INBOUND_LINE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the server sent a line longer than {MAX_INBOUND_LINE} bytes"),
                ));
            }
            let mut chunk = [0u8; 4096];
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Line::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Serialises `message` (refusing line breaks, see [`Message::to_line`]) and writes it with
/// CR LF.
pub async fn write_message<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    message: &Message,
) -> Result<(), PlatformError> {
    let line = message.to_line().map_err(|e| {
        PlatformError::permanent(
            CHANNEL,
            format!("refusing to send a malformed {} line: {e}", message.command),
        )
    })?;
    let mut bytes = line.into_bytes();
    bytes.extend_from_slice(b"\r\n");
    writer.write_all(&bytes).await.map_err(|e| {
        PlatformError::transient(CHANNEL, format!("writing to the server failed: {e}"))
    })?;
    writer.flush().await.map_err(|e| {
        PlatformError::transient(CHANNEL, format!("writing to the server failed: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_across_reads_and_caps_length() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut reader = LineReader::default();
        server.write_all(b"PING :a\r\nPIN").await.unwrap();
        assert_eq!(
            reader.next_line(&mut client).await.unwrap(),
            Line::Text("PING :a".into())
        );
        server.write_all(b"G :b\nX \xff\r\n").await.unwrap();
        assert_eq!(
            reader.next_line(&mut client).await.unwrap(),
            Line::Text("PING :b".into())
        );
        assert_eq!(
            reader.next_line(&mut client).await.unwrap(),
            Line::Text("X \u{fffd}".into())
        );
        drop(server);
        assert_eq!(reader.next_line(&mut client).await.unwrap(), Line::Closed);

        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        server
            .write_all(&vec![b'a'; MAX_INBOUND_LINE + 10])
            .await
            .unwrap();
        let mut reader = LineReader::default();
        assert!(reader.next_line(&mut client).await.is_err());
    }

    #[test]
    fn bad_extra_ca_is_an_operator_error() {
        let e = tls_config(Some(b"not pem")).unwrap_err();
        assert!(e.needs_operator, "{e}");
        assert!(tls_config(None).is_ok());
    }
}
