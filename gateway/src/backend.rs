//! gRPC clients of the user and order services, with per-call timeouts,
//! request-id propagation, a counter of calls per method, and the
//! deadlines, retries and circuit breakers of [`crate::resilience`].

use std::time::Duration;

use lintas_common::metadata::REQUEST_ID_KEY;
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_telemetry::grpc::TracedChannel;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::metrics::Metrics;
use crate::resilience::{ResilienceMetrics, ResilienceSettings, Resilient};

/// Connection settings of one backend.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// Base URL, for example `http://127.0.0.1:50051`.
    pub url: String,
    /// Upper bound on one call, sent to the service as the gRPC deadline.
    pub timeout: Duration,
    /// Upper bound on establishing the HTTP/2 connection.
    pub connect_timeout: Duration,
    pub resilience: ResilienceSettings,
}

/// Client of the user service: retries and breaker, tracing, channel.
pub type UserClient = UserServiceClient<Resilient<TracedChannel<Channel>>>;
/// Client of the order service, with the same layers.
pub type OrderClient = OrderServiceClient<Resilient<TracedChannel<Channel>>>;

/// Clients of both backends. Cloning is cheap: clones share the HTTP/2
/// connections.
#[derive(Clone)]
pub struct Backends {
    pub users: UserClient,
    pub orders: OrderClient,
    pub user_channel: Channel,
    pub order_channel: Channel,
    metrics: Metrics,
}

impl Backends {
    /// Creates the clients. Connections are opened on first use, so the
    /// gateway starts even while a backend is down.
    pub fn connect_lazy(
        users: &BackendSettings,
        orders: &BackendSettings,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let user_channel = channel(users)?;
        let order_channel = channel(orders)?;
        let resilience = ResilienceMetrics::new(metrics.registry())?;
        let stack = |channel: &Channel, name, settings: &BackendSettings| {
            Resilient::new(
                TracedChannel::new(channel.clone(), None),
                name,
                settings.timeout,
                &settings.resilience,
                &resilience,
            )
        };
        Ok(Self {
            users: UserServiceClient::new(stack(&user_channel, "users", users)),
            orders: OrderServiceClient::new(stack(&order_channel, "orders", orders)),
            user_channel,
            order_channel,
            metrics,
        })
    }

    /// Wraps `message` in a request that carries the gateway's request id,
    /// and counts the call under `method`.
    pub fn request<T>(
        &self,
        method: &'static str,
        request_id: &str,
        message: T,
    ) -> tonic::Request<T> {
        self.metrics.record_backend_call(method);
        let mut request = tonic::Request::new(message);
        if let Ok(value) = MetadataValue::try_from(request_id) {
            request.metadata_mut().insert(REQUEST_ID_KEY, value);
        }
        request
    }
}

fn channel(settings: &BackendSettings) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(settings.url.clone())
        .map_err(|error| anyhow::anyhow!("invalid backend URL {}: {error}", settings.url))?
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}
