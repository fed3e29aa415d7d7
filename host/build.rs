//! Compiles Juturna's protocol (`proto/juturna/*.proto`) into Rust with
//! protox, a protobuf compiler in Rust, so that building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/juturna/payloads.proto",
        "proto/juturna/messaging_service.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        // Maps in key order (Juturna's `timers`), so that an envelope
        // encodes to the same bytes every time, as protobuf's deterministic
        // serialisation does.
        .btree_map(".")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
