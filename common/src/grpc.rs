//! The standard gRPC services every backend serves beside its own:
//! `grpc.health.v1.Health` and server reflection (v1 and v1alpha), so that
//! grpcurl and Kubernetes gRPC probes work without extra configuration.

use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

/// Name of the standard health service.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Names of the standard services [`router_with_standard_services`] adds,
/// for labelling metrics.
pub const STANDARD_SERVICES: &[&str] = &[
    HEALTH_SERVICE,
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Starts a router with health and reflection. Reflection lists
/// `service_name` (the caller's own service, for example
/// "user.v1.UserService"), the health service and itself. The caller adds
/// its own service and marks it serving through the returned reporter.
pub fn router_with_standard_services<L: Clone>(
    server: &mut Server<L>,
    service_name: &str,
) -> (HealthReporter, Router<L>) {
    let (health_reporter, health) = tonic_health::server::health_reporter();
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
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    (health_reporter, router)
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
