//! Generates the fan-out's server code for `graphrelay.v1.Fanout`.
//!
//! Messages come from `graph-relay-proto` (extern paths), except the streamed
//! `EventBatch`, which maps to `graph_relay_log::wire::EncodedBatch`: events encoded ONCE
//! by prost and shared by every subscriber, instead of re-encoded per stream.
//! The codec is `crate::grpc::codec::ReservingCodec` (prost, sized buffers).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../proto";
    let files = ["graphrelay/v1/notification.proto", "graphrelay/v1/fanout.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={root}/{file}");
    }
    let descriptors = protox::compile(files, [root])?;
    // For server reflection: any language's tooling can call the service
    // without the .proto files.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("graphrelay_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("crate::grpc::codec::ReservingCodec")
        .extern_path(".graphrelay.v1", "::graph_relay_proto::v1")
        .extern_path(".graphrelay.v1.EventBatch", "::graph_relay_log::wire::EncodedBatch")
        .compile_fds(descriptors)?;
    Ok(())
}
