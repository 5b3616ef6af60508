//! Building blocks shared by the gateway and both gRPC services.
//!
//! This crate owns process-level plumbing (shutdown signals, the service run loop,
//! the standard gRPC health and reflection services), the request metadata
//! that every response carries, signed page tokens, and field validation
//! errors. It contains no business rules, which live in each service, except
//! the field limits (`limits`) that the gateway's API document publishes.

pub mod balance;
pub mod database;
pub mod errors;
pub mod grpc;
pub mod idempotency;
pub mod limits;
pub mod memory;
pub mod metadata;
pub mod page_token;
pub mod process;
pub mod shutdown;
#[cfg(feature = "test-pki")]
pub mod test_pki;
pub mod testing;
pub mod time;
pub mod tls;
pub mod validation;
