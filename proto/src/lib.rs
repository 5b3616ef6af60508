//! Rust types, servers and clients generated from the platform's `.proto`
//! contracts, plus the encoded descriptor set that gRPC server reflection serves.

/// Shared messages: response metadata, sort direction and health check.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("common.v1");
    }
}

/// The user service contract, package `user.v1`.
pub mod user {
    pub mod v1 {
        tonic::include_proto!("user.v1");
    }
}

/// The order service contract, package `order.v1`.
pub mod order {
    pub mod v1 {
        tonic::include_proto!("order.v1");
    }
}

/// Encoded `FileDescriptorSet` of every contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));
