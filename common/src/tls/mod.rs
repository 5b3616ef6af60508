//! TLS for the gRPC services, their clients and the gateway's HTTPS
//! listener, with rustls and its `ring` crypto provider.
//!
//! The binaries configure TLS with file paths: a PEM certificate chain and
//! private key to serve with or to present as a client, and a PEM file of
//! CA certificates to verify the peer with. This module reads and checks
//! those files, builds the rustls configurations, and re-reads the files
//! every [`DEFAULT_RELOAD_INTERVAL`], so that a certificate that
//! cert-manager renews in a mounted Secret is used without a restart.
//!
//! - [`ServerTls`] and [`TlsIncoming`]: a listener's TLS handshakes. With a
//!   client CA, the server requires a client certificate that the CA signed.
//! - [`lazy_channel`]: a tonic channel that connects with TLS, or in
//!   plaintext where [`plaintext`] allows it.
//!
//! It owns no flags: each binary names its own settings and fills
//! [`ServerTlsSettings`] and [`ClientTlsSettings`] from them.

pub(crate) mod client;
mod files;
pub mod plaintext;
mod reload;
mod server;

use std::path::PathBuf;
use std::time::Duration;

pub use client::{ChannelError, ClientTls, lazy_channel};
pub use plaintext::PlaintextError;
pub use server::{ServerTls, TlsIncoming};

/// ALPN protocol id of HTTP/2, which gRPC requires.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How often the certificate files are read again. The kubelet updates a
/// mounted Secret a minute or two after it changes (its sync period plus
/// its cache's lifetime), and cert-manager renews a certificate when a
/// third of its lifetime is left by default, so one more minute is far
/// inside that margin.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The certificate first, then any intermediate CA certificates.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key of the certificate.
    pub key: PathBuf,
}

/// TLS settings of a server: the gRPC services, or the gateway's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsSettings {
    /// The certificate the server presents.
    pub identity: IdentityFiles,
    /// CA certificates that sign the accepted client certificates. When
    /// set, a client without such a certificate is rejected during the
    /// handshake. When unset, clients need no certificate.
    pub client_ca: Option<PathBuf>,
    /// How often the files are read again; see [`DEFAULT_RELOAD_INTERVAL`].
    pub reload_interval: Duration,
}

impl ServerTlsSettings {
    /// Settings without client certificates, re-read every
    /// [`DEFAULT_RELOAD_INTERVAL`].
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            identity: IdentityFiles {
                cert: cert.into(),
                key: key.into(),
            },
            client_ca: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

/// TLS settings of a gRPC client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsSettings {
    /// CA certificates that sign the server's certificate. Only these are
    /// trusted: the system's CA store is not used.
    pub ca: PathBuf,
    /// The client certificate, for servers that require one.
    pub identity: Option<IdentityFiles>,
    /// Name that the server's certificate must carry. Unset, the host of the
    /// URL is used, so set it when the URL names an IP address or an alias
    /// that the certificate does not list.
    pub server_name: Option<String>,
    /// How often the files are read again; see [`DEFAULT_RELOAD_INTERVAL`].
    pub reload_interval: Duration,
}

impl ClientTlsSettings {
    /// Settings that trust `ca`, without a client certificate.
    pub fn new(ca: impl Into<PathBuf>) -> Self {
        Self {
            ca: ca.into(),
            identity: None,
            server_name: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}

/// Kind of a TLS file, named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Certificate,
    PrivateKey,
    CaCertificates,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Certificate => "certificate",
            Self::PrivateKey => "private key",
            Self::CaCertificates => "CA certificate",
        })
    }
}

/// Reasons the TLS files cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {kind} file {}: {source}", .path.display())]
    Read {
        kind: FileKind,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{kind} file {} is not valid PEM: {message}", .path.display())]
    InvalidPem {
        kind: FileKind,
        path: PathBuf,
        message: String,
    },
    #[error("{kind} file {} contains no PEM certificate (BEGIN CERTIFICATE)", .path.display())]
    NoCertificate { kind: FileKind, path: PathBuf },
    #[error(
        "private key file {} contains no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
        .path.display()
    )]
    NoPrivateKey { path: PathBuf },
    #[error("private key file {} cannot be used: {source}", .path.display())]
    UnsupportedKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("certificate file {} is invalid: {source}", .path.display())]
    InvalidCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "private key file {} does not belong to the certificate in {}",
        .key.display(),
        .cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("certificate {index} in CA certificate file {} is invalid: {source}", .path.display())]
    InvalidCaCertificate {
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        source: rustls::Error,
    },
    #[error("invalid TLS server name {name:?}: {message}")]
    InvalidServerName { name: String, message: String },
    /// rustls rejected the configuration built from valid files.
    #[error("failed to build the TLS configuration: {0}")]
    Config(String),
}
