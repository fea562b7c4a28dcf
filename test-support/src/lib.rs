//! What Outboard's tests share: finding the plugin binaries the workspace
//! builds, specs with short timeouts, and a private runtime directory per
//! test so each test can prove it left nothing behind.
//!
//! # Layout
//!
//! - [`bin`], [`go_plugin`], [`python_plugin`]: the example and fixture
//!   plugins, built by `scripts/build`; a missing one fails the test.
//! - [`Sandbox`]: a runtime directory base for one test, and specs for the
//!   fixture plugins (`broken-plugin`, `scripted-plugin`, `stress`) inside it.
//! - [`fake`]: the host's in-memory launcher and instances, for testing
//!   supervision and dispatch without processes, with paused time.
//! - [`otlp`]: a real OTLP/gRPC trace receiver, to check exported spans.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use outboard_host::PluginSpec;

pub mod otlp;

/// The host's in-memory launcher (`outboard_host::testing`).
pub use outboard_host::testing as fake;

/// A binary built by this workspace (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (the README's test command does)",
        path.display()
    );
    path
}

/// A runtime directory base for one test, removed when dropped.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// A new empty sandbox under `/tmp` (short, for socket paths).
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("obt-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        Sandbox { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A spec for the broken-plugin fixture in `mode`, with short timeouts
    /// and its runtime directory inside this sandbox.
    pub fn broken(&self, mode: &str) -> PluginSpec {
        let mut spec = PluginSpec::new(format!("broken-{mode}"), bin("broken-plugin"));
        spec.args = vec![mode.to_owned()];
        spec.handshake_timeout = Duration::from_secs(5);
        spec.call_timeout = Duration::from_secs(2);
        spec.stop_grace = Duration::from_secs(1);
        spec.runtime_base = Some(self.path().to_owned());
        spec
    }

    /// Asserts that no runtime directory (and so no socket) is left.
    pub fn assert_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path())
            .expect("read sandbox")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Sandbox {
    /// A spec for the scripted fixture: named `name`, subscribed to
    /// `subscribe` (`phase:priority,...`), answering as `script` says.
    pub fn scripted(&self, name: &str, subscribe: &str, script: serde_json::Value) -> PluginSpec {
        let mut spec = PluginSpec::new(name, bin("scripted-plugin"));
        spec.env
            .insert("SCRIPTED_SUBSCRIBE".into(), subscribe.into());
        spec.config = match script {
            serde_json::Value::Object(map) => map,
            _ => panic!("a script is an object"),
        };
        spec.handshake_timeout = Duration::from_secs(5);
        spec.call_timeout = Duration::from_secs(5);
        spec.stop_grace = Duration::from_secs(1);
        spec.runtime_base = Some(self.path().to_owned());
        spec
    }
}

impl Sandbox {
    /// A spec for the stress plugin: named `name`, subscribed to `phases`
    /// (`phase:priority,...`), misbehaving as `config` says.
    pub fn stress(&self, name: &str, phases: &str, config: serde_json::Value) -> PluginSpec {
        let mut spec = self.scripted(name, phases, config);
        spec.command = bin("stress");
        spec.env.clear();
        spec.env.insert("STRESS_PHASES".into(), phases.into());
        spec
    }
}

/// Lossy UTF-8, for output in assertions.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The Go example plugin, `target/go/env-guard`; fails (does not skip) if
/// it is not built.
pub fn go_plugin() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/go/env-guard");
    assert!(
        path.is_file(),
        "{} is not built: run scripts/build (it builds the Go plugin with \
         `cd plugin-examples/go && go build -o ../../target/go/env-guard .`)",
        path.display()
    );
    path
}

/// A Python example plugin, `.tools/venv/bin/<name>`; fails (does not skip)
/// if it is not installed.
pub fn python_plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/venv/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/tools (it installs the Python SDK and the example \
         plugins into .tools/venv with `pip install -e plugin-sdk-py -e plugin-examples/python`)",
        path.display()
    );
    path
}
