//! What the command line's tests share: the `outboard` binary, and the
//! workspace's test support.

#![allow(dead_code, clippy::unwrap_used)]

pub use outboard_test_support::*;

/// Runs the `outboard` binary with `args`, runtime directories under /tmp.
pub fn outboard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .output()
        .expect("run outboard")
}
