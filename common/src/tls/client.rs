//! The client side: tonic channels that connect with TLS through a
//! connector of their own, or in plaintext where the rule allows it.
//!
//! tonic's built-in TLS fixes the certificates when the channel is built.
//! This connector takes the configuration current at each new connection,
//! so a renewed client certificate or CA is used from the next connection
//! on. A connection already open keeps the certificates of its handshake.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use rustls::sign::SingleCertAndKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use super::reload::Reloading;
use super::{ALPN_H2, ClientTlsSettings, FileKind, TlsError, files, plaintext};

/// Port of an https URL that names none.
const DEFAULT_HTTPS_PORT: u16 = 443;
/// Port of an http URL that names none.
const DEFAULT_HTTP_PORT: u16 = 80;

/// Reasons a channel cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid URL {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
    #[error("{url} is an https URL, but no TLS CA file is configured for it")]
    HttpsWithoutTls { url: String },
    #[error("TLS is configured for {url}, so it must be an https URL")]
    TlsWithoutHttps { url: String },
    #[error(transparent)]
    Plaintext(#[from] plaintext::PlaintextError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The TLS configuration of a gRPC client, rebuilt when its files change.
/// Clones share the configuration.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<Reloading<ClientConfig>>,
}

impl ClientTls {
    /// Reads and checks the files of `settings` and starts re-reading them
    /// every `settings.reload_interval`. The client offers HTTP/2 only.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, unless the reload interval is zero.
    pub fn load(settings: &ClientTlsSettings) -> Result<Self, TlsError> {
        let mut sources = vec![(FileKind::CaCertificates, settings.ca.clone())];
        if let Some(identity) = &settings.identity {
            sources.push((FileKind::Certificate, identity.cert.clone()));
            sources.push((FileKind::PrivateKey, identity.key.clone()));
        }
        let build_settings = settings.clone();
        let config = Reloading::start(
            "client",
            sources,
            settings.reload_interval,
            move |contents| build_config(&build_settings, contents),
        )?;
        Ok(Self { config })
    }

    /// Returns the configuration built from the newest valid files.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.current()
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

/// Builds the configuration from the contents of the CA file and, when
/// configured, the client certificate and key.
fn build_config(
    settings: &ClientTlsSettings,
    contents: &[Vec<u8>],
) -> Result<ClientConfig, TlsError> {
    let roots = files::root_store(&settings.ca, &contents[0])?;
    let builder = ClientConfig::builder_with_provider(files::provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &settings.identity {
        Some(identity) => {
            let certified = files::certified_key(identity, &contents[1], &contents[2])?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Creates a channel to the gRPC server at `url` that connects on first
/// use, so that the caller starts while the server is down.
///
/// With `tls`, `url` must be an https URL. Every connection then uses TLS,
/// accepts only a server certificate that the CA file signed for the
/// server name, and presents the client certificate when one is
/// configured. Without `tls`, `url` must be an http URL, and
/// [`plaintext::check_remote`] decides with `allow_plaintext` whether it
/// may be used. `configure` sets the endpoint's timeouts and keep-alive.
///
/// # Panics
///
/// Outside a Tokio runtime, when `tls` is set with a reload interval.
pub fn lazy_channel(
    url: &str,
    tls: Option<&ClientTlsSettings>,
    allow_plaintext: bool,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, ChannelError> {
    Ok(Target::parse(url, tls, allow_plaintext)?.channel(None, configure))
}

/// A checked gRPC server URL with the TLS connector of its calls: what
/// [`lazy_channel`] and [`crate::balance`] open channels from.
#[derive(Clone)]
pub(crate) struct Target {
    /// The URL as configured; requests carry its scheme and authority.
    origin: Uri,
    host: String,
    port: u16,
    tls: Option<TlsConnect>,
}

impl Target {
    /// Checks `url` against `tls` and the plaintext rule, and loads the
    /// TLS files.
    pub(crate) fn parse(
        url: &str,
        tls: Option<&ClientTlsSettings>,
        allow_plaintext: bool,
    ) -> Result<Self, ChannelError> {
        let invalid_url = |message: String| ChannelError::InvalidUrl {
            url: url.to_owned(),
            message,
        };
        let uri: Uri = url
            .parse()
            .map_err(|error: http::uri::InvalidUri| invalid_url(error.to_string()))?;
        let host = uri
            .host()
            .ok_or_else(|| invalid_url("it has no host".to_owned()))?
            .to_owned();

        match (uri.scheme_str(), tls) {
            (Some("http"), None) => {
                plaintext::check_remote(&uri, allow_plaintext)?;
                let port = uri.port_u16().unwrap_or(DEFAULT_HTTP_PORT);
                Ok(Self {
                    origin: uri,
                    host,
                    port,
                    tls: None,
                })
            }
            (Some("https"), Some(tls)) => {
                let server_name = tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| unbracket(&host).to_owned());
                let server_name = ServerName::try_from(server_name.clone()).map_err(|error| {
                    TlsError::InvalidServerName {
                        name: server_name,
                        message: error.to_string(),
                    }
                })?;
                let connector = TlsConnect {
                    tls: ClientTls::load(tls)?,
                    server_name,
                };
                let port = uri.port_u16().unwrap_or(DEFAULT_HTTPS_PORT);
                Ok(Self {
                    origin: uri,
                    host,
                    port,
                    tls: Some(connector),
                })
            }
            (Some("https"), None) => Err(ChannelError::HttpsWithoutTls {
                url: url.to_owned(),
            }),
            (Some("http"), Some(_)) => Err(ChannelError::TlsWithoutHttps {
                url: url.to_owned(),
            }),
            _ => Err(invalid_url("the scheme must be http or https".to_owned())),
        }
    }

    /// Returns the host of the URL, without brackets around an IPv6 address.
    pub(crate) fn host(&self) -> &str {
        unbracket(&self.host)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Opens a lazy channel to `address`, or to the URL's host when `None`.
    /// Either way the requests carry the configured URL as their origin,
    /// and TLS checks the server name of the configuration.
    pub(crate) fn channel(
        &self,
        address: Option<SocketAddr>,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Channel {
        let endpoint = match address {
            None if self.tls.is_none() => Endpoint::from(self.origin.clone()),
            // tonic rejects an https URL unless it runs the TLS itself, so
            // the endpoint gets an http URL for the same host and port, and
            // the requests keep the https URL as their origin.
            None => Endpoint::from(http_uri(&format!("{}:{}", self.host, self.port)))
                .origin(self.origin.clone()),
            Some(address) => {
                Endpoint::from(http_uri(&address.to_string())).origin(self.origin.clone())
            }
        };
        let endpoint = configure(endpoint);
        match &self.tls {
            Some(connector) => endpoint.connect_with_connector_lazy(connector.clone()),
            None => endpoint.connect_lazy(),
        }
    }
}

/// Builds the http URL of `authority`, which comes from a URL already
/// parsed or from a socket address, so it is always valid.
fn http_uri(authority: &str) -> Uri {
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query("/")
        .build()
        .expect("a host and port of a parsed URL form a valid authority")
}

/// Removes the brackets around an IPv6 address.
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// Opens a TCP connection and runs the TLS handshake on it.
#[derive(Clone)]
struct TlsConnect {
    tls: ClientTls,
    server_name: ServerName<'static>,
}

impl tower_service::Service<Uri> for TlsConnect {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = TlsConnector::from(self.tls.config());
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|host| unbracket(host).to_owned())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("URL {uri} has no host"),
                    )
                })?;
            let port = uri.port_u16().unwrap_or(DEFAULT_HTTPS_PORT);
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            let stream = connector.connect(server_name, stream).await?;
            Ok(TokioIo::new(stream))
        })
    }
}
