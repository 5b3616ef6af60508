//! The standard gRPC services every backend serves beside its own:
//! `grpc.health.v1.Health` and server reflection (v1 and v1alpha), so that
//! grpcurl and Kubernetes gRPC probes work without extra configuration.
//! Also the optional plaintext health port, for probes that cannot use TLS.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

/// Name of the standard health service.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Names of the standard services [`router_with_standard_services`] adds,
/// for labelling metrics.
pub const STANDARD_SERVICES: &[&str] = &[
    HEALTH_SERVICE,
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The listeners of a gRPC service. A bare [`TcpListener`] converts into
/// one without a health port.
pub struct ServiceListeners {
    /// The service's port: its own service, health and reflection, with TLS
    /// when the service is configured for it.
    pub grpc: TcpListener,
    /// A port that serves only `grpc.health.v1.Health`, always in
    /// plaintext, for the kubelet's gRPC probes, which cannot use TLS. It
    /// carries no data beyond the serving status, so it is allowed on any
    /// address.
    pub health: Option<TcpListener>,
}

impl From<TcpListener> for ServiceListeners {
    fn from(grpc: TcpListener) -> Self {
        Self { grpc, health: None }
    }
}

/// Starts a router with health and reflection. Reflection lists
/// `service_name` (the caller's own service, for example
/// "user.v1.UserService"), the health service and itself. The caller adds
/// its own service and marks it serving through the returned reporter.
/// The returned health service shares the reporter's statuses, for
/// [`start_health_port`].
pub fn router_with_standard_services<L: Clone>(
    server: &mut Server<L>,
    service_name: &str,
) -> (HealthReporter, HealthServer<HealthService>, Router<L>) {
    let health_reporter = HealthReporter::new();
    let health = HealthServer::new(HealthService::from_health_reporter(health_reporter.clone()));
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lintas_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service_name)
            .with_service_name(HEALTH_SERVICE)
    };
    let reflection_v1 = reflection()
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    let router = server
        .add_service(health.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    (health_reporter, health, router)
}

/// Serves `health` alone in plaintext on `listener`, when there is one,
/// and returns the shutdown future to give the main server. That future
/// completes when `shutdown` does and stops the health port with it. If the
/// main server returns early and drops the future, the health port stops
/// too.
pub fn start_health_port(
    listener: Option<TcpListener>,
    health: HealthServer<HealthService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let (stop, stopped) = watch::channel(false);
    if let Some(listener) = listener {
        let address = listener.local_addr()?;
        let mut stopped = stopped;
        tokio::spawn(async move {
            tracing::info!(%address, "health port listening");
            let result = Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(incoming(listener), async move {
                    // An error means the sender is gone, which also means stop.
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%address, %error, "health port failed");
            }
        });
    }
    Ok(async move {
        shutdown.await;
        let _ = stop.send(true);
    })
}

/// Accepted connections of `listener` with `TCP_NODELAY` set. Without it,
/// Nagle's algorithm and delayed ACKs add about 40 ms to small responses.
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
