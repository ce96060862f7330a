//! Compiles Epitaph's own `.proto` files. OTLP needs no compiler: its tonic services come
//! generated inside `opentelemetry-proto`. A `protoc` from `$PROTOC` wins; otherwise the one
//! vendored by `protoc-bin-vendored` is used, so a fresh machine needs no package for it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let vendored = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the environment now.
        unsafe { std::env::set_var("PROTOC", vendored) };
    }
    println!("cargo:rerun-if-changed=proto/lifecycle.proto");
    tonic_prost_build::configure().compile_protos(&["proto/lifecycle.proto"], &["proto"])?;
    Ok(())
}
