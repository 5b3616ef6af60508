//! The standard gRPC services every backend serves beside its own:
//! `grpc.health.v1.Health` and server reflection (v1 and v1alpha), so that
//! grpcurl and Kubernetes gRPC probes work without extra configuration.

use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

/// Starts a router with health and reflection over every platform contract.
/// The caller adds its own service and marks it serving through the
/// returned reporter.
pub fn router_with_standard_services(server: &mut Server) -> (HealthReporter, Router) {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lintas_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lintas_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor set is valid");

    let router = server
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    (health_reporter, router)
}
