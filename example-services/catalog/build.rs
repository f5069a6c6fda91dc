//! Generates the gRPC server and client of `proto/weir/catalog/v1/catalog.proto`
//! and the encoded descriptor set that server reflection serves.
//!
//! The `.proto` is compiled by `protox`, a protobuf compiler in Rust, so a
//! build needs nothing installed beside cargo (no system `protoc`).

use std::path::PathBuf;

use protox::prost::Message as _;

const PROTO: &str = "proto/weir/catalog/v1/catalog.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    std::fs::write(
        out.join("catalog_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
