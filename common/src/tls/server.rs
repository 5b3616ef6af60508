//! The server side: the rustls configuration of a listener and the stream
//! of its connections after their handshakes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::reload::Reloading;
use super::{FileKind, ServerTlsSettings, TlsError, files};

/// Maximum time a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept, such as running out of file descriptors,
/// so the loop does not spin while the cause lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Minimum interval between two log lines about failed handshakes. Each
/// line counts the failures that were not logged.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Connections past their handshake that wait for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The TLS configuration of a listener, rebuilt when its files change.
/// Clones share the configuration.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<Reloading<ServerConfig>>,
    requires_client_certificate: bool,
}

impl ServerTls {
    /// Reads and checks the files of `settings` and starts re-reading them
    /// every `settings.reload_interval`. `alpn` lists the application
    /// protocols to offer, most preferred first: [`super::ALPN_H2`] for
    /// gRPC.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, unless the reload interval is zero.
    pub fn load(settings: &ServerTlsSettings, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let mut sources = vec![
            (FileKind::Certificate, settings.identity.cert.clone()),
            (FileKind::PrivateKey, settings.identity.key.clone()),
        ];
        if let Some(client_ca) = &settings.client_ca {
            sources.push((FileKind::CaCertificates, client_ca.clone()));
        }
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let build_settings = settings.clone();
        let config = Reloading::start(
            "server",
            sources,
            settings.reload_interval,
            move |contents| build_config(&build_settings, &alpn, contents),
        )?;
        Ok(Self {
            config,
            requires_client_certificate: settings.client_ca.is_some(),
        })
    }

    /// Returns the configuration built from the newest valid files.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.current()
    }

    /// Whether clients must present a certificate that the client CA signed.
    pub fn requires_client_certificate(&self) -> bool {
        self.requires_client_certificate
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerTls")
            .field(
                "requires_client_certificate",
                &self.requires_client_certificate,
            )
            .finish_non_exhaustive()
    }
}

/// Builds the configuration from the contents of the certificate, the key
/// and, when configured, the client CA file.
fn build_config(
    settings: &ServerTlsSettings,
    alpn: &[Vec<u8>],
    contents: &[Vec<u8>],
) -> Result<ServerConfig, TlsError> {
    let certified = files::certified_key(&settings.identity, &contents[0], &contents[1])?;
    let provider = files::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let builder = match (&settings.client_ca, contents.get(2)) {
        (Some(path), Some(ca_contents)) => {
            let roots = files::root_store(path, ca_contents)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// The connections of a listener after a successful TLS handshake.
///
/// A background task accepts connections and runs their handshakes
/// concurrently, each bounded by ten seconds, so a slow or silent client
/// holds up no other. Each handshake uses the configuration current when
/// the connection arrived. Failed handshakes, such as a client without a
/// valid certificate, close the connection and are logged. The task stops,
/// closing the listener, when this value is dropped.
///
/// As a [`Stream`](tokio_stream::Stream) it fits tonic's
/// `serve_with_incoming_shutdown`.
pub struct TlsIncoming {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsIncoming {
    /// Starts accepting on `listener` with `tls`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn new(listener: TcpListener, tls: ServerTls) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        tokio::spawn(accept_loop(listener, tls, sender));
        Ok(Self {
            accepted,
            local_addr,
        })
    }

    /// Waits for the next connection and returns it with the client's
    /// address. Returns `None` only if the accept task ended.
    pub async fn accept(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.accepted.recv().await
    }

    /// Returns the address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.accepted
            .poll_recv(context)
            .map(|next| next.map(|(stream, _peer)| Ok(stream)))
    }
}

type Handshake = (
    SocketAddr,
    Result<io::Result<TlsStream<TcpStream>>, tokio::time::error::Elapsed>,
);

async fn accept_loop(
    listener: TcpListener,
    tls: ServerTls,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let mut handshakes: JoinSet<Handshake> = JoinSet::new();
    let mut failures = FailureLog::default();
    loop {
        tokio::select! {
            // The server dropped the stream: it has stopped.
            () = sender.closed() => return,

            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs
                    // add about 40 ms to small responses.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "failed to set TCP_NODELAY");
                    }
                    let acceptor = TlsAcceptor::from(tls.config());
                    handshakes.spawn(async move {
                        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        (peer, result)
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },

            Some(joined) = handshakes.join_next() => match joined {
                Ok((peer, Ok(Ok(stream)))) => {
                    if sender.send((stream, peer)).await.is_err() {
                        return;
                    }
                }
                Ok((peer, Ok(Err(error)))) => failures.record(peer, &error.to_string()),
                Ok((peer, Err(_elapsed))) => {
                    failures.record(peer, &format!("no handshake within {HANDSHAKE_TIMEOUT:?}"));
                }
                Err(error) => tracing::error!(%error, "tls handshake task failed"),
            },
        }
    }
}

/// Logs failed handshakes, at most one per [`FAILURE_LOG_INTERVAL`], so
/// that a scanner or a misconfigured client cannot flood the log.
#[derive(Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl FailureLog {
    fn record(&mut self, peer: SocketAddr, error: &str) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|logged| now.duration_since(logged) < FAILURE_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            %peer,
            error,
            earlier_failures_not_logged = self.unlogged,
            "tls handshake failed"
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}
