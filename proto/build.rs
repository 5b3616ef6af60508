//! Compiles the `.proto` contracts with protox, a pure-Rust compiler, so the
//! build needs no system `protoc`.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "common/v1/metadata.proto",
    "user/v1/user.proto",
    "order/v1/order.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptor_set.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
