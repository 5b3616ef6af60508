//! HTTPS on the gateway's own listener, for deployments where no ingress
//! controller or load balancer terminates TLS in front of it. Clients
//! choose HTTP/2 or HTTP/1.1 through ALPN. The certificate files are
//! re-read every minute, so a renewed certificate needs no restart.

use std::io;
use std::net::SocketAddr;

use lintas_common::tls::{ALPN_H2, ALPN_HTTP1, ServerTls, ServerTlsSettings, TlsIncoming};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// A listener whose connections have completed their TLS handshake.
pub struct HttpsListener {
    incoming: TlsIncoming,
}

impl HttpsListener {
    /// Loads the certificate files and starts accepting on `listener`.
    pub fn new(listener: TcpListener, settings: &ServerTlsSettings) -> anyhow::Result<Self> {
        let tls = ServerTls::load(settings, &[ALPN_H2, ALPN_HTTP1])?;
        Ok(Self {
            incoming: TlsIncoming::new(listener, tls)?,
        })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.accept().await {
            Some(accepted) => accepted,
            None => {
                // The accept task returns only once this listener is
                // dropped, so it panicked.
                tracing::error!("https accept task stopped, no more connections are accepted");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.incoming.local_addr())
    }
}
