//! A real mail system on loopback for the e-mail adapter's tests (TESTING.md: real peers
//! where they can run locally): dovecot (IMAP + LMTP) and OpenSMTPD (SMTP), installed by
//! `scripts/setup-peers.sh` (Debian: `dovecot-imapd dovecot-lmtpd opensmtpd`).
//!
//! Everything lives in the caller's temp dir:
//! - dovecot runs in the foreground (`dovecot -F -c <dir>/dovecot.conf`) with its own
//!   `base_dir` / `state_dir`, plaintext IMAP on a free `127.0.0.1` port, LMTP on a unix
//!   socket, users from a passwd-file ([`USERS`]) and maildirs under `<dir>/mail` owned by
//!   the `mail` user (dovecot refuses root as a mail uid);
//! - OpenSMTPD listens on another free loopback port and delivers every recipient in
//!   [`DOMAIN`] to dovecot over LMTP. Its queue (`/var/spool/smtpd`) and control socket
//!   (`/run/smtpd.sock`) are compiled-in paths, so it runs in a private mount namespace
//!   (`unshare --mount`) where `<dir>/spool` and `<dir>/run` are bind-mounted over them;
//!   several servers can therefore run side by side. This needs root (tests run as root).
//!
//! Both daemons are stopped (SIGTERM, then SIGKILL) when the [`MailServer`] is dropped.
//! The test-side "human" sends mail with [`MailServer::send_raw`] (plain SMTP, no
//! authentication, like a peer MTA); reading mailboxes over IMAP is left to the tests,
//! which have an IMAP client.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The mail domain the server is final destination for.
pub const DOMAIN: &str = "test.local";

/// The mailbox users and their passwords (`bot` is the assistant, `alice` a human,
/// `mallory` an attacker).
pub const USERS: &[(&str, &str)] = &[
    ("bot@test.local", "bot-imap-password"),
    ("alice@test.local", "alice-imap-password"),
    ("mallory@test.local", "mallory-imap-password"),
];

/// The password of one of [`USERS`].
pub fn password(user: &str) -> Option<&'static str> {
    USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p)
}

const DOVECOT: &str = "/usr/sbin/dovecot";
const SMTPD: &str = "/usr/sbin/smtpd";
const UNSHARE: &str = "/usr/bin/unshare";
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the mail server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum MailServerError {
    /// A binary is not installed.
    #[error(
        "{0} is not installed; run scripts/setup-peers.sh (dovecot-imapd dovecot-lmtpd opensmtpd)"
    )]
    Missing(&'static str),
    /// A system user the daemons need does not exist.
    #[error("system user {0:?} does not exist; (re)install dovecot-core and opensmtpd")]
    NoUser(&'static str),
    /// Could not prepare or run a daemon.
    #[error("cannot run the mail server: {0}")]
    Io(#[from] std::io::Error),
    /// A daemon did not come up.
    #[error("{what} did not start within {START_TIMEOUT:?}; its log says:\n{log}")]
    NotStarted {
        /// Which daemon and what was awaited.
        what: String,
        /// Its log.
        log: String,
    },
    /// A setup command failed.
    #[error("{what} failed: {log}")]
    Failed {
        /// The command.
        what: String,
        /// Its error output.
        log: String,
    },
    /// The test certificates could not be made.
    #[error(transparent)]
    Certificates(#[from] crate::tls::CertificateError),
    /// The SMTP server refused a message.
    #[error("SMTP {command} was answered {reply:?}")]
    Smtp {
        /// The command.
        command: String,
        /// The server's reply.
        reply: String,
    },
}

/// Variations of the server.
#[derive(Debug, Clone)]
pub struct MailServerOptions {
    /// Advertise IDLE (dovecot does by default); `false` makes clients fall back to polling.
    pub idle: bool,
    /// Also serve IMAP over TLS: STARTTLS on the IMAP port plus an implicit-TLS IMAPS
    /// port, with a certificate for `127.0.0.1` / `localhost` issued by a fresh test CA
    /// (made with the `openssl` command; see [`MailServer::ca_pem`]). SMTP itself stays
    /// plaintext: Debian bookworm's OpenSMTPD 6.8 fails every TLS handshake with OpenSSL 3
    /// (`SSL routines::EVP lib` from its privilege-separated signing), with RSA and ECDSA
    /// keys alike; [`MailServer::smtps_front`] puts implicit TLS in front of it.
    pub tls: bool,
}

impl Default for MailServerOptions {
    fn default() -> Self {
        Self {
            idle: true,
            tls: false,
        }
    }
}

/// A running dovecot + OpenSMTPD pair.
#[derive(Debug)]
pub struct MailServer {
    dovecot: Option<Child>,
    smtpd: Option<Child>,
    dir: PathBuf,
    /// Plaintext IMAP (LOGIN allowed without TLS).
    pub imap_addr: SocketAddr,
    /// SMTP, accepting mail for [`DOMAIN`] from anyone, without authentication.
    pub smtp_addr: SocketAddr,
    /// IMAP over implicit TLS (with [`MailServerOptions::tls`]).
    pub imaps_addr: Option<SocketAddr>,
    /// The PEM of the CA that issued the IMAP server's certificate (with
    /// [`MailServerOptions::tls`]).
    pub ca_pem: Option<String>,
}

impl MailServer {
    /// Starts both daemons with config, state and mail under `dir` (a fresh temp dir).
    pub fn start(dir: &Path) -> Result<Self, MailServerError> {
        Self::start_with(dir, &MailServerOptions::default())
    }

    /// [`Self::start`] with options.
    pub fn start_with(dir: &Path, options: &MailServerOptions) -> Result<Self, MailServerError> {
        for (bin, name) in [
            (DOVECOT, "dovecot"),
            (SMTPD, "OpenSMTPD (smtpd)"),
            (UNSHARE, "unshare (util-linux)"),
        ] {
            if !Path::new(bin).exists() {
                return Err(MailServerError::Missing(name));
            }
        }
        let (mail_uid, mail_gid) = system_user("mail")?;
        system_user("nobody")?;
        // The daemons' unprivileged processes must reach their files under `dir`.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
        let mail = dir.join("mail");
        for sub in ["base", "state", "mail", "spool", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::os::unix::fs::chown(&mail, Some(mail_uid), Some(mail_gid))?;
        // OpenSMTPD insists on these modes for its queue root.
        std::fs::set_permissions(dir.join("spool"), std::fs::Permissions::from_mode(0o711))?;

        let imap_addr = free_port()?;
        let smtp_addr = free_port()?;
        let (imaps_addr, ca_pem) = if options.tls {
            let ca = crate::tls::TestCertificates::make(&dir.join("tls"))?.ca_pem;
            (Some(free_port()?), Some(ca))
        } else {
            (None, None)
        };
        let mut server = Self {
            dovecot: None,
            smtpd: None,
            dir: dir.to_path_buf(),
            imap_addr,
            smtp_addr,
            imaps_addr,
            ca_pem,
        };
        server.start_dovecot(options)?;
        server.start_smtpd()?;
        Ok(server)
    }

    fn start_dovecot(&mut self, options: &MailServerOptions) -> Result<(), MailServerError> {
        let d = self.dir.display();
        let users: String = USERS
            .iter()
            .map(|(user, pass)| format!("{user}:{{PLAIN}}{pass}::::::\n"))
            .collect();
        std::fs::write(self.dir.join("passwd"), users)?;
        let port = self.imap_addr.port();
        let capabilities = if options.idle {
            String::new()
        } else {
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS\n"
                .to_owned()
        };
        let ssl = match self.imaps_addr {
            Some(_) => format!(
                "ssl = yes\nssl_cert = <{d}/tls/server.pem\nssl_key = <{d}/tls/server.key\n"
            ),
            None => "ssl = no\n".to_owned(),
        };
        let imaps_port = self.imaps_addr.map_or(0, |a| a.port());
        let config = format!(
            r#"base_dir = {d}/base
state_dir = {d}/state
instance_name = pincer-test-{port}
listen = 127.0.0.1
protocols = imap lmtp
{ssl}auth_mechanisms = plain login
disable_plaintext_auth = no
log_path = {d}/dovecot.log
mail_uid = mail
mail_gid = mail
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
default_login_user = nobody
default_internal_user = nobody
default_internal_group = nogroup
{capabilities}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service lmtp {{
  unix_listener {d}/lmtp {{
    mode = 0666
  }}
}}
"#
        );
        let conf = self.dir.join("dovecot.conf");
        std::fs::write(&conf, config)?;
        let out = std::fs::File::create(self.dir.join("dovecot.out"))?;
        self.dovecot = Some(
            Command::new(DOVECOT)
                .arg("-F")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()?,
        );
        let lmtp = self.dir.join("lmtp");
        let ports: Vec<SocketAddr> = [Some(self.imap_addr), self.imaps_addr]
            .into_iter()
            .flatten()
            .collect();
        self.wait(
            "dovecot (IMAP ports and LMTP socket)",
            &["dovecot.log", "dovecot.out"],
            || lmtp.exists() && listening(&ports),
        )
    }

    fn start_smtpd(&mut self) -> Result<(), MailServerError> {
        let d = self.dir.display();
        let smtp = self.smtp_addr;
        let listen = format!("listen on 127.0.0.1 port {}\n", smtp.port());
        let config = format!(
            r#"table vusers {{ "@" = "mail" }}
{listen}action "deliver" lmtp "{d}/lmtp" rcpt-to virtual <vusers>
match from any for domain "{DOMAIN}" action "deliver"
"#
        );
        let conf = self.dir.join("smtpd.conf");
        std::fs::write(&conf, config)?;
        let script = format!(
            r#"set -e
mkdir -p /var/spool/smtpd
mount --bind {d}/spool /var/spool/smtpd
mount --bind {d}/run /run
exec {SMTPD} -d -f {d}/smtpd.conf
"#
        );
        let script_path = self.dir.join("smtpd.sh");
        std::fs::write(&script_path, script)?;
        let out = std::fs::File::create(self.dir.join("smtpd.log"))?;
        self.smtpd = Some(
            Command::new(UNSHARE)
                .args(["--mount", "--propagation", "private", "sh"])
                .arg(&script_path)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()?,
        );
        self.wait("OpenSMTPD (SMTP port)", &["smtpd.log"], || {
            listening(&[smtp])
        })
    }

    fn wait(
        &mut self,
        what: &str,
        logs: &[&str],
        ready: impl Fn() -> bool,
    ) -> Result<(), MailServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if ready() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let log = logs
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                format!("--- {name}\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n");
        Err(MailServerError::NotStarted {
            what: what.to_owned(),
            log,
        })
    }

    /// How many messages `user` has received (files in its maildir INBOX), for waiting until
    /// SMTP delivery went through.
    pub fn delivered(&self, user: &str) -> usize {
        let inbox = self.dir.join("mail").join(user);
        ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(inbox.join(sub)).ok())
            .map(|entries| entries.filter_map(Result::ok).count())
            .sum()
    }

    /// Starts an implicit-TLS front for the SMTP port on the current tokio runtime and
    /// returns its address: TLS with the certificate of [`MailServerOptions::tls`] (for
    /// `localhost` / `127.0.0.1`, issued by [`Self::ca_pem`]), then the bytes go to the
    /// real OpenSMTPD, whose own TLS does not work on Debian bookworm (see
    /// [`MailServerOptions::tls`]). Lets clients' SMTP-over-TLS code be tested against a
    /// real SMTP server. The front stops with the runtime.
    pub async fn smtps_front(&self) -> Result<SocketAddr, MailServerError> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let tls_dir = self.dir.join("tls");
        let bad = |e: &dyn std::fmt::Display| {
            MailServerError::Io(std::io::Error::other(format!("SMTP TLS front: {e}")))
        };
        let certs = CertificateDer::pem_file_iter(tls_dir.join("server.pem"))
            .map_err(|e| bad(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        let key = PrivateKeyDer::from_pem_file(tls_dir.join("server.key")).map_err(|e| bad(&e))?;
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream = self.smtp_addr;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(addr)
    }

    /// The raw messages `user` has received, in delivery order (maildir file names start
    /// with the delivery time), read straight from the maildir.
    pub fn messages(&self, user: &str) -> Vec<String> {
        let inbox = self.dir.join("mail").join(user);
        let mut files: Vec<(String, std::path::PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(inbox.join(sub)).ok())
            .flat_map(|entries| entries.filter_map(Result::ok))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .collect()
    }

    /// Waits (polling, up to `timeout`) until `user` has received at least `count` messages.
    pub async fn wait_delivered(&self, user: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.delivered(user) >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The daemons' logs, for test failure messages.
    pub fn logs(&self) -> String {
        ["dovecot.log", "smtpd.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                format!("--- {name}\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Submits one raw RFC 5322 message over plain SMTP, as another MTA would: `MAIL FROM`
    /// `from`, one `RCPT TO` per recipient. Line ends are normalised to CRLF and lines
    /// starting with `.` are dot-stuffed.
    pub async fn send_raw(
        &self,
        from: &str,
        to: &[&str],
        message: &str,
    ) -> Result<(), MailServerError> {
        let stream = TcpStream::connect(self.smtp_addr).await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        expect(&mut read, "greeting", '2').await?;
        let mut commands = vec![
            "EHLO tester.test.local".to_owned(),
            format!("MAIL FROM:<{from}>"),
        ];
        commands.extend(to.iter().map(|rcpt| format!("RCPT TO:<{rcpt}>")));
        for line in commands {
            write.write_all(format!("{line}\r\n").as_bytes()).await?;
            expect(&mut read, &line, '2').await?;
        }
        write.write_all(b"DATA\r\n").await?;
        expect(&mut read, "DATA", '3').await?;
        let mut body = String::with_capacity(message.len() + 64);
        for line in message.lines() {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        write.write_all(body.as_bytes()).await?;
        expect(&mut read, "end of DATA", '2').await?;
        write.write_all(b"QUIT\r\n").await?;
        Ok(())
    }
}

/// Reads one (possibly multi-line) SMTP reply and checks its class.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    command: &str,
    class: char,
) -> Result<(), MailServerError> {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Err(MailServerError::Smtp {
                command: command.to_owned(),
                reply: format!("{reply}<connection closed>"),
            });
        }
        reply.push_str(&line);
        // The last line of a reply has a space (or nothing) after the code.
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    if reply.starts_with(class) {
        Ok(())
    } else {
        Err(MailServerError::Smtp {
            command: command.to_owned(),
            reply: reply.trim_end().to_owned(),
        })
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        for child in [self.smtpd.take(), self.dovecot.take()]
            .into_iter()
            .flatten()
        {
            stop(child);
        }
    }
}

/// SIGTERM (so the daemon takes its worker processes down), then SIGKILL after a grace.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn listening(ports: &[SocketAddr]) -> bool {
    ports
        .iter()
        .all(|addr| std::net::TcpStream::connect(addr).is_ok())
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The uid and gid of a system user, from `/etc/passwd`.
fn system_user(name: &'static str) -> Result<(u32, u32), MailServerError> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != name {
                return None;
            }
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or(MailServerError::NoUser(name))
}
