//! Compiles `proto/` with protox (pure Rust, no `protoc` needed) and generates the tonic code.

use std::path::PathBuf;

use prost::Message as _;

const PROTOS: &[&str] = &[
    "coffer/v1/common.proto",
    "coffer/v1/kms.proto",
    "coffer/v1/auth.proto",
    "coffer/v1/credential.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let descriptors = protox::compile(PROTOS, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("coffer_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // google.rpc.Status (per-item batch errors) is tonic-types' own, so a batch item's
        // status converts to and from `tonic::Status` with its details.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
