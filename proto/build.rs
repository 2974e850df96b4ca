//! Compiles `pincer/v1/*.proto` with protox (a pure-Rust protobuf compiler), so building
//! Pincer needs no `protoc` on the machine.

use std::error::Error;

const PROTOS: &[&str] = &[
    "pincer/v1/common.proto",
    "pincer/v1/grant.proto",
    "pincer/v1/bridge.proto",
    "pincer/v1/agent.proto",
    "pincer/v1/gateway.proto",
    "pincer/v1/executor.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
