//! Client-side balancing of gRPC calls over every address of a server's
//! DNS name.
//!
//! HTTP/2 keeps one connection open for all calls, so a client behind a
//! Kubernetes ClusterIP Service sends everything to the one pod that its
//! connection reached. With [`Balance::Dns`], the client resolves the name
//! of a headless Service, which lists every ready pod, keeps one lazy
//! connection per address, and sends calls to them in turn. It resolves
//! the name again at each interval, so pods that start or stop join or
//! leave the rotation. A connection to an address that left closes once
//! its calls have finished.
//!
//! Each second the client sends every address a `grpc.health.v1` check.
//! An address is in the rotation while its last check got SERVING, and
//! leaves it at once when a call to it fails without a response. So a
//! name that also resolves to an address without a listener, such as
//! `localhost` to `::1` beside `127.0.0.1`, costs no failed call, and a
//! server that stops or hangs leaves within about a second.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower_service::Service;

use crate::errors::with_sources;
use crate::tls::client::Target;
use crate::tls::{ChannelError, ClientTlsSettings};

mod metrics;
mod resolver;

pub use metrics::register_address_gauge;

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
    /// The addresses last found, in address order.
    Ready(Arc<[Arc<Member>]>),
}

/// One address of the server, with its connection.
struct Member {
    address: SocketAddr,
    channel: Channel,
    /// Whether the last health check passed and no call has failed since.
    reachable: AtomicBool,
}

impl Member {
    /// Wraps the error of a call that got no response in UNAVAILABLE, with
    /// the address in its message and `error` as its source.
    fn unavailable(&self, error: BoxError) -> BoxError {
        let text = format!("{}: {}", self.address, with_sources(&*error));
        let mut status = tonic::Status::unavailable(text);
        status.set_source(Arc::from(error));
        Box::new(status)
    }

    /// Takes the address out of the rotation after a call failed without a
    /// response, logging the first failure.
    fn mark_unreachable(&self, server: &str, error: &(dyn std::error::Error + 'static)) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                server,
                address = %self.address,
                error = %with_sources(error),
                "call failed without a response; the address leaves the rotation until a health check passes"
            );
        }
    }
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
                let lookup = move || resolver::system_lookup(host.clone(), port);
                Ok(Self::spread(target, configure, refresh, lookup))
            }
            _ => Ok(Self {
                route: Route::Single(target.channel(None, configure)),
            }),
        }
    }

    /// Creates a channel over the addresses that `lookup` finds every
    /// `refresh`.
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
        tokio::spawn(resolver::run(
            target,
            name.clone(),
            configure,
            refresh,
            lookup,
            sender,
        ));
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
        let member = self.pick().await?;
        let mut channel = member.channel.clone();
        let result = match std::future::poll_fn(|context| channel.poll_ready(context)).await {
            Ok(()) => channel.call(request).await,
            Err(error) => Err(error),
        };
        // A gRPC error status arrives as a response; an error here means the
        // call got no response at all.
        result.map_err(|error| {
            member.mark_unreachable(&self.name, &error);
            member.unavailable(error.into())
        })
    }

    /// Returns the next reachable address in turn, or the address whose
    /// turn it is when none is reachable, after the first lookup.
    async fn pick(&self) -> Result<Arc<Member>, tonic::Status> {
        let mut addresses = self.addresses.clone();
        let resolution = addresses
            .wait_for(|resolution| !matches!(resolution, Resolution::Pending))
            .await
            .map(|resolution| resolution.clone())
            .map_err(|_closed| self.unavailable("its resolver stopped"))?;
        match resolution {
            Resolution::Ready(members) => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed);
                let count = members.len();
                let reachable = (0..count)
                    .map(|offset| &members[(turn + offset) % count])
                    .find(|member| member.reachable.load(Ordering::Relaxed));
                Ok(Arc::clone(reachable.unwrap_or(&members[turn % count])))
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

#[cfg(test)]
mod tests;
