//! Compiles the etcd v3 protobuf definitions with pure-Rust protox, so no `protoc` is needed.
//! With the `json` feature it also generates serde impls in the JSON mapping of etcd's gRPC
//! gateway: the proto's own field names, 64-bit integers as strings, bytes as base64, enums
//! by name, and fields at their default value left out.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/kv.proto",
        "proto/auth.proto",
        "proto/rpc.proto",
        "proto/v3lock.proto",
        "proto/v3election.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    if std::env::var_os("CARGO_FEATURE_JSON").is_some() {
        pbjson_build::Builder::new()
            .register_descriptors(&fds.encode_to_vec())?
            .preserve_proto_field_names()
            // etcd's gateway (golang/protobuf's jsonpb) skips fields it does not know.
            .ignore_unknown_fields()
            .build(&[
                ".etcdserverpb",
                ".mvccpb",
                ".authpb",
                ".v3lockpb",
                ".v3electionpb",
            ])?;
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
