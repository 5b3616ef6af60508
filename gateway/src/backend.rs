//! gRPC clients of the user and order services, with per-call timeouts,
//! request-id propagation, a counter of calls per method, and the
//! deadlines, retries and circuit breakers of [`crate::resilience`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lintas_common::balance::{BackendChannel, Balance, register_address_gauge};
use lintas_common::metadata::{CALLER_ROLE_KEY, CALLER_SUBJECT_KEY, REQUEST_ID_KEY};
use lintas_common::tls::ClientTlsSettings;
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_telemetry::grpc::TracedChannel;
use tonic::metadata::MetadataValue;

use crate::auth::{Call, Caller};
use crate::metrics::Metrics;
use crate::resilience::breaker::Breaker;
use crate::resilience::{ResilienceMetrics, ResilienceSettings, Resilient};

/// Connection settings of one backend.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// Base URL, for example `http://127.0.0.1:50051`, or an https URL
    /// with `tls`.
    pub url: String,
    /// Upper bound on one call, sent to the service as the gRPC deadline.
    pub timeout: Duration,
    /// Upper bound on establishing the HTTP/2 connection, TLS handshake
    /// included.
    pub connect_timeout: Duration,
    pub resilience: ResilienceSettings,
    /// TLS of the calls: the CA that signs the backend's certificate, and
    /// the certificate that the gateway presents to it.
    pub tls: Option<ClientTlsSettings>,
    /// One connection to the URL's host, or one per address of its name.
    pub balance: Balance,
}

/// Client of the user service: retries and breaker, tracing, channel.
pub type UserClient = UserServiceClient<Resilient<TracedChannel<BackendChannel>>>;
/// Client of the order service, with the same layers.
pub type OrderClient = OrderServiceClient<Resilient<TracedChannel<BackendChannel>>>;

/// Clients of both backends. Cloning is cheap: clones share the HTTP/2
/// connections.
#[derive(Clone)]
pub struct Backends {
    pub users: UserClient,
    pub orders: OrderClient,
    pub user_channel: BackendChannel,
    pub order_channel: BackendChannel,
    pub user_breaker: Arc<Breaker>,
    pub order_breaker: Arc<Breaker>,
    metrics: Metrics,
}

impl Backends {
    /// Creates the clients. Connections are opened on first use, so the
    /// gateway starts even while a backend is down. A backend without TLS
    /// must be on loopback unless `allow_plaintext`.
    pub fn connect_lazy(
        users: &BackendSettings,
        orders: &BackendSettings,
        allow_plaintext: bool,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let user_channel = channel(users, allow_plaintext).context(
            "invalid user service settings (USER_SERVICE_URL, USER_SERVICE_TLS_SERVER_NAME, \
             BACKEND_TLS_CA, BACKEND_TLS_CERT, BACKEND_TLS_KEY)",
        )?;
        let order_channel = channel(orders, allow_plaintext).context(
            "invalid order service settings (ORDER_SERVICE_URL, ORDER_SERVICE_TLS_SERVER_NAME, \
             BACKEND_TLS_CA, BACKEND_TLS_CERT, BACKEND_TLS_KEY)",
        )?;
        let resilience = ResilienceMetrics::new(metrics.registry())?;
        register_address_gauge(
            metrics.registry(),
            &[("users", &user_channel), ("orders", &order_channel)],
        )?;
        let stack = |channel: &BackendChannel, name, settings: &BackendSettings| {
            Resilient::new(
                TracedChannel::new(channel.clone(), None),
                name,
                settings.timeout,
                &settings.resilience,
                &resilience,
            )
        };
        let (user_stack, order_stack) = (
            stack(&user_channel, "users", users),
            stack(&order_channel, "orders", orders),
        );
        Ok(Self {
            user_breaker: user_stack.breaker(),
            order_breaker: order_stack.breaker(),
            users: UserServiceClient::new(user_stack),
            orders: OrderServiceClient::new(order_stack),
            user_channel,
            order_channel,
            metrics,
        })
    }

    /// Wraps `message` in a request that carries the gateway's request id
    /// and the caller's identity, and counts the call under `method`.
    pub fn request<T>(&self, method: &'static str, call: &Call, message: T) -> tonic::Request<T> {
        self.metrics.record_backend_call(method);
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(call.request_id.as_str()) {
            metadata.insert(REQUEST_ID_KEY, value);
        }
        if let Caller::Authenticated(identity) = &call.caller {
            // The verifier admits visible ASCII subjects only, so this fits.
            if let Ok(value) = MetadataValue::try_from(identity.subject.as_str()) {
                metadata.insert(CALLER_SUBJECT_KEY, value);
            }
            let role = if identity.admin { "admin" } else { "user" };
            metadata.insert(CALLER_ROLE_KEY, MetadataValue::from_static(role));
        }
        request
    }
}

fn channel(settings: &BackendSettings, allow_plaintext: bool) -> anyhow::Result<BackendChannel> {
    let (timeout, connect_timeout) = (settings.timeout, settings.connect_timeout);
    let channel = BackendChannel::connect_lazy(
        &settings.url,
        settings.tls.as_ref(),
        allow_plaintext,
        settings.balance,
        move |endpoint| {
            endpoint
                .timeout(timeout)
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true)
        },
    )?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn backends() -> Backends {
        let settings = BackendSettings {
            url: "http://127.0.0.1:9".to_owned(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            resilience: ResilienceSettings::default(),
            tls: None,
            balance: Balance::Single,
        };
        Backends::connect_lazy(&settings, &settings, false, Metrics::new()).unwrap()
    }

    fn metadata_of(caller: Caller) -> http::HeaderMap {
        let call = Call {
            request_id: "req-1".to_owned(),
            caller,
        };
        backends()
            .request("user.v1.UserService/GetUser", &call, ())
            .metadata()
            .clone()
            .into_headers()
    }

    #[tokio::test]
    async fn requests_carry_the_callers_identity() {
        let user = metadata_of(Caller::Authenticated(Identity {
            subject: "0190a000-0000-7000-8000-000000000001".to_owned(),
            admin: false,
        }));
        assert_eq!(user[REQUEST_ID_KEY], "req-1");
        assert_eq!(
            user[CALLER_SUBJECT_KEY],
            "0190a000-0000-7000-8000-000000000001"
        );
        assert_eq!(user[CALLER_ROLE_KEY], "user");

        let admin = metadata_of(Caller::Authenticated(Identity {
            subject: "ops".to_owned(),
            admin: true,
        }));
        assert_eq!(admin[CALLER_ROLE_KEY], "admin");

        let unchecked = metadata_of(Caller::Unchecked);
        assert!(unchecked.get(CALLER_SUBJECT_KEY).is_none());
        assert!(unchecked.get(CALLER_ROLE_KEY).is_none());
    }
}
