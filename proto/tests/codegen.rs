//! Regenerates the checked-in Rust code and descriptor sets from
//! `proto/outboard/v1/*.proto` and `proto/outboard/control/v1/*.proto` and fails if they differ, so the generated code
//! never drifts from the contract. Run with `OUTBOARD_BLESS=1` to rewrite the
//! checked-in files after changing a `.proto`.

use std::path::{Path, PathBuf};

use prost::Message;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The checked-in files, each package's code and descriptor set.
const FILES: [&str; 4] = [
    "outboard.v1.rs",
    "outboard_v1_descriptor.bin",
    "outboard.control.v1.rs",
    "outboard_control_v1_descriptor.bin",
];

/// Generates into `out_dir`: per package its code and its descriptor set
/// (the control API's includes the plugin contract it imports).
fn generate(out_dir: &Path) {
    let plugin = protox::compile(
        ["outboard/v1/plugin.proto", "outboard/v1/host.proto"],
        [crate_dir()],
    )
    .expect("the outboard.v1 protos compile");
    std::fs::write(
        out_dir.join("outboard_v1_descriptor.bin"),
        plugin.encode_to_vec(),
    )
    .expect("write descriptor set");
    let control = protox::compile(["outboard/control/v1/control.proto"], [crate_dir()])
        .expect("the outboard.control.v1 protos compile");
    std::fs::write(
        out_dir.join("outboard_control_v1_descriptor.bin"),
        control.encode_to_vec(),
    )
    .expect("write descriptor set");
    // One run over both: the control API's code refers to the plugin
    // contract's types instead of repeating them.
    let mut both = control;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out_dir)
        .emit_rerun_if_changed(false)
        .compile_fds({
            both.file.retain(|f| f.package() != "outboard.v1");
            both.file.extend(plugin.file);
            both
        })
        .expect("code generation succeeds");
}

#[test]
fn generated_code_matches_the_protos() {
    let checked_in = crate_dir().join("src/generated");
    let fresh = tempfile_dir();
    generate(&fresh);

    if std::env::var_os("OUTBOARD_BLESS").is_some() {
        for name in FILES {
            std::fs::copy(fresh.join(name), checked_in.join(name)).expect("bless");
        }
    }

    for name in FILES {
        let want = std::fs::read(fresh.join(name)).expect("read fresh");
        let have = std::fs::read(checked_in.join(name)).unwrap_or_default();
        assert!(
            want == have,
            "proto/src/generated/{name} is stale: the .proto files changed. \
             Regenerate with `OUTBOARD_BLESS=1 cargo test -p outboard-proto --test codegen` \
             and commit the result."
        );
    }
    let _ = std::fs::remove_dir_all(&fresh);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outboard-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
