//! Client-side balancing of gRPC calls over every address of a server's
//! DNS name.
//!
//! HTTP/2 keeps one connection open for all calls, so a client behind a
//! Kubernetes ClusterIP Service sends everything to the one pod that its
//! connection reached. With [`Balance::Dns`], the client resolves the name
//! of a headless Service, which lists every ready pod, keeps one lazy
//! connection per address, and sends calls to them in turn. It resolves
//! the name again at each interval, so pods that start or stop join or
//! leave the rotation; a connection to an address that left closes once
//! its calls have finished.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower_service::Service;

use crate::tls::client::Target;
use crate::tls::{ChannelError, ClientTlsSettings};

/// Upper bound on one DNS lookup.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before the next lookup while no address is known.
const RETRY_WITHOUT_ADDRESS: Duration = Duration::from_secs(1);

/// Error of a call through a [`BackendChannel`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Spread of a client's calls over the servers behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// One connection to the URL's host, whatever it resolves to at
    /// connection time.
    Single,
    /// One connection per address of the URL's host, in turn, with the
    /// host resolved again every `refresh`.
    Dns { refresh: Duration },
}

impl Balance {
    /// Parses the setting's value `mode`, `single` or `dns`.
    pub fn from_mode(mode: &str, refresh: Duration) -> Result<Self, UnknownBalance> {
        match mode {
            "single" => Ok(Self::Single),
            "dns" => Ok(Self::Dns { refresh }),
            other => Err(UnknownBalance(other.to_owned())),
        }
    }
}

/// A balance setting other than `single` or `dns`.
#[derive(Debug, thiserror::Error)]
#[error("unknown balance {0:?}: expected single or dns")]
pub struct UnknownBalance(String);

/// A gRPC channel that follows a [`Balance`]. Cloning is cheap: clones
/// share the connections and the resolved addresses.
#[derive(Clone)]
pub struct BackendChannel {
    route: Route,
}

#[derive(Clone)]
enum Route {
    Single(Channel),
    Spread(Arc<Spread>),
}

/// The channels of the resolved addresses and the position of the turn.
struct Spread {
    /// The URL's host and port, for error messages.
    name: String,
    addresses: watch::Receiver<Resolution>,
    next: AtomicUsize,
}

/// Result of the last lookup of the host.
#[derive(Clone)]
enum Resolution {
    /// No lookup has finished yet.
    Pending,
    /// No lookup has found an address yet; the message of the last failure.
    Failed(Arc<str>),
    /// The channels of the addresses last found, in address order.
    Ready(Arc<[Channel]>),
}

impl BackendChannel {
    /// Creates a channel to the gRPC server at `url`, checked as by
    /// [`crate::tls::lazy_channel`], that connects on first use. With
    /// [`Balance::Dns`] and a host name rather than an IP address, a
    /// background task resolves the name and ends when the last clone of
    /// the channel is dropped. `configure` sets each endpoint's timeouts
    /// and keep-alive.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn connect_lazy(
        url: &str,
        tls: Option<&ClientTlsSettings>,
        allow_plaintext: bool,
        balance: Balance,
        configure: impl Fn(Endpoint) -> Endpoint + Send + Sync + 'static,
    ) -> Result<Self, ChannelError> {
        let target = Target::parse(url, tls, allow_plaintext)?;
        match balance {
            Balance::Dns { refresh } if target.host().parse::<IpAddr>().is_err() => {
                let (host, port) = (target.host().to_owned(), target.port());
                let lookup = move || system_lookup(host.clone(), port);
                Ok(Self::spread(target, configure, refresh, lookup))
            }
            _ => Ok(Self {
                route: Route::Single(target.channel(None, configure)),
            }),
        }
    }

    /// A channel over the addresses that `lookup` finds every `refresh`.
    fn spread<L, F>(
        target: Target,
        configure: impl Fn(Endpoint) -> Endpoint + Send + Sync + 'static,
        refresh: Duration,
        lookup: L,
    ) -> Self
    where
        L: FnMut() -> F + Send + 'static,
        F: Future<Output = Result<Vec<SocketAddr>, String>> + Send + 'static,
    {
        let (sender, addresses) = watch::channel(Resolution::Pending);
        let name = format!("{}:{}", target.host(), target.port());
        tokio::spawn(resolve(target, configure, refresh, lookup, sender));
        Self {
            route: Route::Spread(Arc::new(Spread {
                name,
                addresses,
                next: AtomicUsize::new(0),
            })),
        }
    }
}

impl Service<http::Request<Body>> for BackendChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.route {
            Route::Single(channel) => channel.poll_ready(context).map_err(Into::into),
            // The channel that takes the call is picked in `call` and made
            // ready inside the response future.
            Route::Spread(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match &mut self.route {
            Route::Single(channel) => ResponseFuture::Single(channel.call(request)),
            Route::Spread(spread) => {
                ResponseFuture::Spread(Box::pin(Arc::clone(spread).call(request)))
            }
        }
    }
}

impl Spread {
    async fn call(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let mut channel = self.pick().await?;
        std::future::poll_fn(|context| channel.poll_ready(context)).await?;
        Ok(channel.call(request).await?)
    }

    /// Returns the channel whose turn it is, after the first lookup.
    async fn pick(&self) -> Result<Channel, tonic::Status> {
        let mut addresses = self.addresses.clone();
        let resolution = addresses
            .wait_for(|resolution| !matches!(resolution, Resolution::Pending))
            .await
            .map(|resolution| resolution.clone())
            .map_err(|_closed| self.unavailable("its resolver stopped"))?;
        match resolution {
            Resolution::Ready(channels) => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed);
                Ok(channels[turn % channels.len()].clone())
            }
            Resolution::Failed(message) => Err(self.unavailable(&message)),
            Resolution::Pending => unreachable!("wait_for skips Pending"),
        }
    }

    fn unavailable(&self, reason: &str) -> tonic::Status {
        tonic::Status::unavailable(format!("no address of {} is known: {reason}", self.name))
    }
}

/// Response future of [`BackendChannel`].
pub enum ResponseFuture {
    Single(tonic::transport::channel::ResponseFuture),
    Spread(Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>),
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Single(future) => Pin::new(future).poll(context).map_err(Into::into),
            Self::Spread(future) => future.as_mut().poll(context),
        }
    }
}

/// Runs `lookup` every `refresh` and publishes a channel per address found,
/// keeping the channels of addresses that stay. A failed lookup keeps the
/// addresses found before. Ends when every receiver is gone.
async fn resolve<L, F>(
    target: Target,
    configure: impl Fn(Endpoint) -> Endpoint,
    refresh: Duration,
    mut lookup: L,
    sender: watch::Sender<Resolution>,
) where
    L: FnMut() -> F,
    F: Future<Output = Result<Vec<SocketAddr>, String>>,
{
    let name = format!("{}:{}", target.host(), target.port());
    let mut channels: HashMap<SocketAddr, Channel> = HashMap::new();
    loop {
        match lookup().await {
            Ok(found) => {
                let mut addresses: Vec<SocketAddr> = found;
                addresses.sort_unstable();
                addresses.dedup();
                let unchanged = addresses.len() == channels.len()
                    && addresses
                        .iter()
                        .all(|address| channels.contains_key(address));
                if !unchanged {
                    tracing::info!(server = %name, ?addresses, "resolved the server's addresses");
                    let mut kept = HashMap::with_capacity(addresses.len());
                    for address in &addresses {
                        let channel = channels
                            .remove(address)
                            .unwrap_or_else(|| target.channel(Some(*address), &configure));
                        kept.insert(*address, channel);
                    }
                    channels = kept;
                    let ordered: Arc<[Channel]> = addresses
                        .iter()
                        .map(|address| channels[address].clone())
                        .collect();
                    sender.send_replace(Resolution::Ready(ordered));
                }
            }
            Err(message) => {
                if channels.is_empty() {
                    tracing::warn!(server = %name, error = %message, "cannot resolve the server");
                    sender.send_replace(Resolution::Failed(message.into()));
                } else {
                    tracing::warn!(
                        server = %name,
                        error = %message,
                        "cannot resolve the server; keeping the addresses found before"
                    );
                }
            }
        }
        let wait = if channels.is_empty() {
            RETRY_WITHOUT_ADDRESS.min(refresh)
        } else {
            refresh
        };
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Looks `host` up with the system's resolver. A result without addresses
/// is an error.
async fn system_lookup(host: String, port: u16) -> Result<Vec<SocketAddr>, String> {
    let query = tokio::net::lookup_host((host.as_str(), port));
    let addresses: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, query)
        .await
        .map_err(|_elapsed| format!("timed out after {} s", RESOLVE_TIMEOUT.as_secs()))?
        .map_err(|error| error.to_string())?
        .collect();
    if addresses.is_empty() {
        return Err("the name has no address".to_owned());
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests;
