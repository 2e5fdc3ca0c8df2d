//! Generates tonic server traits and clients for Temporal's public services from the descriptor
//! set that `temporalio-protos` publishes. Message types are reused through `extern_path`.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = PathBuf::from(
        env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH")
            .expect("temporalio-protos publishes its descriptor set to direct dependents"),
    );
    println!("cargo:rerun-if-changed={}", descriptors.display());
    let bytes = std::fs::read(&descriptors)?;
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(bytes.as_slice())?;
    // Keep only the services Sundial serves; the set also carries cloud and test services.
    let wanted = [
        "temporal.api.workflowservice.v1",
        "temporal.api.operatorservice.v1",
        "grpc.health.v1",
    ];
    let mut services = set.clone();
    for file in services.file.iter_mut() {
        if !wanted.contains(&file.package()) {
            file.service.clear();
        }
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .generate_default_stubs(true)
        .extern_path(".temporal", "::temporalio_protos::temporal")
        .extern_path(".coresdk", "::temporalio_protos::coresdk")
        .extern_path(".google.api", "::temporalio_protos::google::api")
        .extern_path(".google.rpc", "::temporalio_protos::google::rpc")
        .extern_path(".grpc", "::temporalio_protos::grpc")
        .extern_path(".nexusannotations", "::temporalio_protos::nexusannotations")
        .compile_fds(services)?;
    internal(set)
}

/// Sundial's own internal API (`protos/sundial/internal/v1`), compiled with protox against
/// Temporal's messages from the same descriptor set.
fn internal(temporal: prost_types::FileDescriptorSet) -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("protos");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("internal");
    std::fs::create_dir_all(&out)?;
    println!("cargo:rerun-if-changed={}", root.display());
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(protox::file::IncludeFileResolver::new(root));
    resolver.add(protox::file::DescriptorSetFileResolver::new(temporal));
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    // prost needs the imported messages to know their traits; their code goes to a directory
    // of its own (only the internal package is included) so it cannot overwrite the files above.
    compiler.include_imports(true);
    compiler.open_files([
        "sundial/internal/v1/error.proto",
        "sundial/internal/v1/history.proto",
        "sundial/internal/v1/matching.proto",
    ])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .extern_path(".temporal", "::temporalio_protos::temporal")
        .extern_path(".google", "::temporalio_protos::google")
        .out_dir(&out)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
