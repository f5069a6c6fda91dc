//! Generates the client of the catalog's gRPC API from the catalog's own
//! `.proto` (the contract the catalog publishes), with `protox`, so a
//! build needs no system `protoc`.

const PROTO: &str = "../catalog/proto/weir/catalog/v1/catalog.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["../catalog/proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
