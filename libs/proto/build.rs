//! Compiles `proto/` with protox (pure Rust, no `protoc` needed) and generates the tonic code.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "coffer/v1/common.proto",
    "coffer/v1/kms.proto",
    "coffer/v1/auth.proto",
    "coffer/v1/credential.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTOS)?;
    // Encoded by the compiler, not through prost_types: that would drop the extension options
    // (`google.api.http`, which the REST gateway routes by) and keep only known fields. The
    // source info carries the proto comments, for reflection and the OpenAPI descriptions.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("coffer_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let descriptors = compiler.file_descriptor_set();

    tonic_prost_build::configure()
        // google.rpc.Status (per-item batch errors) is tonic-types' own, so a batch item's
        // status converts to and from `tonic::Status` with its details.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
