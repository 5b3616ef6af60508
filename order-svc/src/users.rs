//! Client of `user.v1.UserService`, used to check that an order's user
//! exists and is active before the order is written.
//!
//! The channel connects lazily, so the order service starts and serves reads
//! while the user service is down. Each call is bounded by one timeout,
//! which also bounds the TCP connect and the TLS handshake.

use std::time::Duration;

use lintas_common::balance::{BackendChannel, Balance, register_address_gauge};
use lintas_common::metadata::REQUEST_ID_KEY;
use lintas_common::tls::ClientTlsSettings;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_proto::user::v1::{GetUserRequest, UserStatus};
use lintas_telemetry::grpc::{RpcMetrics, TracedChannel};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

/// Name under which the user service reports its health.
const USER_SERVICE_NAME: &str = "user.v1.UserService";

/// Reasons a user cannot place an order or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum UserCheckError {
    #[error("user {0} not found")]
    NotFound(Uuid),
    #[error("user {0} is suspended")]
    Suspended(Uuid),
    #[error("user service timed out after {0:?}")]
    TimedOut(Duration),
    /// The user service could not be reached or failed; the status is
    /// the one it or the transport returned.
    #[error("user service failed: {0}")]
    Unavailable(tonic::Status),
}

/// Looks users up in the user service.
#[derive(Clone)]
pub struct UserDirectory {
    channel: TracedChannel<BackendChannel>,
    timeout: Duration,
}

impl UserDirectory {
    /// Creates a client for `url` without connecting; the first call
    /// connects. With `tls`, `url` is an https URL; without it, an http URL
    /// that must be on loopback unless `allow_plaintext`.
    pub fn connect_lazy(
        url: &str,
        tls: Option<&ClientTlsSettings>,
        allow_plaintext: bool,
        balance: Balance,
        timeout: Duration,
        metrics: RpcMetrics,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Self> {
        let channel =
            BackendChannel::connect_lazy(url, tls, allow_plaintext, balance, move |endpoint| {
                endpoint.connect_timeout(timeout).timeout(timeout)
            })?;
        register_address_gauge(registry, &[("users", &channel)])?;
        Ok(Self {
            channel: TracedChannel::new(channel, Some(metrics)),
            timeout,
        })
    }

    /// Checks that user `id` exists and is active, forwarding `request_id`
    /// so both services log the same id.
    pub async fn ensure_active(&self, id: Uuid, request_id: &str) -> Result<(), UserCheckError> {
        let mut request = tonic::Request::new(GetUserRequest { id: id.to_string() });
        if let Ok(value) = MetadataValue::try_from(request_id) {
            request.metadata_mut().insert(REQUEST_ID_KEY, value);
        }
        // Sends grpc-timeout so the user service gives up at the same time.
        request.set_timeout(self.timeout);

        let mut client = UserServiceClient::new(self.channel.clone());
        let response = match tokio::time::timeout(self.timeout, client.get_user(request)).await {
            Err(_elapsed) => return Err(UserCheckError::TimedOut(self.timeout)),
            Ok(Err(status)) if status.code() == Code::NotFound => {
                return Err(UserCheckError::NotFound(id));
            }
            // The channel's own timeout reports CANCELLED, and the server's
            // grpc-timeout reports DEADLINE_EXCEEDED.
            Ok(Err(status))
                if matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded) =>
            {
                return Err(UserCheckError::TimedOut(self.timeout));
            }
            Ok(Err(status)) => return Err(UserCheckError::Unavailable(status)),
            Ok(Ok(response)) => response.into_inner(),
        };

        match response.user.map(|user| user.status()) {
            Some(UserStatus::Active) => Ok(()),
            Some(UserStatus::Suspended) => Err(UserCheckError::Suspended(id)),
            // A user in no known status cannot be trusted to order either.
            Some(UserStatus::Unspecified) | None => Err(UserCheckError::Unavailable(
                tonic::Status::internal("user service returned no user status"),
            )),
        }
    }

    /// Asks the user service's `grpc.health.v1.Health` whether it serves,
    /// for the order service's own health report.
    pub async fn health(&self) -> Result<(), String> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = tonic_health::pb::HealthCheckRequest {
            service: USER_SERVICE_NAME.to_owned(),
        };
        match tokio::time::timeout(self.timeout, client.check(request)).await {
            Err(_elapsed) => Err(format!("timed out after {:?}", self.timeout)),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Ok(Ok(response)) => match response.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(format!("reports {}", other.as_str_name())),
            },
        }
    }
}
