//! Test certificates for the real servers' TLS listeners: a fresh private CA and a server
//! certificate for `localhost` / `127.0.0.1` it signed, made with the `openssl` command in
//! a directory of the test's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A CA and the server certificate it signed (ECDSA P-256, valid for 2 days).
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate (PEM), for clients to trust.
    pub ca_pem: String,
    /// The server's certificate (PEM file).
    pub cert_file: PathBuf,
    /// The server's private key (PEM file, mode 0600).
    pub key_file: PathBuf,
}

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// `openssl` is not installed.
    #[error("openssl is not installed; install the openssl package")]
    Missing,
    /// A file could not be written or read.
    #[error("cannot write the test certificates: {0}")]
    Io(#[from] std::io::Error),
    /// An `openssl` step failed.
    #[error("{what} failed: {log}")]
    Failed {
        /// The command.
        what: String,
        /// Its error output.
        log: String,
    },
}

impl TestCertificates {
    /// Makes the CA and the server certificate in `dir` (created if missing): `ca.pem`,
    /// `server.pem`, `server.key`.
    pub fn make(dir: &Path) -> Result<Self, CertificateError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Pincer Test CA",
                ][..],
            ]
            .concat(),
            [
                &["req"][..],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ][..],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        ];
        for args in steps {
            let output = Command::new("openssl")
                .args(&args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => CertificateError::Missing,
                    _ => CertificateError::Io(e),
                })?;
            if !output.status.success() {
                return Err(CertificateError::Failed {
                    what: format!("openssl {}", args.join(" ")),
                    log: String::from_utf8_lossy(&output.stderr).into_owned(),
                });
            }
        }
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )?;
        Ok(Self {
            ca_pem: std::fs::read_to_string(dir.join("ca.pem"))?,
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        })
    }
}
