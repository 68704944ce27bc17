//! Compiles the etcd v3 protobuf definitions with pure-Rust protox, so no `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/kv.proto", "proto/auth.proto", "proto/rpc.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
