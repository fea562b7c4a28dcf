//! The host seam with a real plugin process: an `Attach` is asked before
//! the spawn, in the launch's runtime directory; its variables reach the
//! plugin; it learns the manifest and the grants after `Describe`; it is
//! let go when the process exits, even while the instance is still held;
//! and an attach that fails fails the launch, leaving nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Sandbox;
use outboard_host::{Attach, Attachment, ErrorKind, Manifest, Plugin};

/// What the recording attach saw.
#[derive(Debug, Default)]
struct Seen {
    /// `(instance name, runtime dir)` per attach.
    attached: Vec<(String, PathBuf)>,
    /// `(manifest name, granted)` per `described`.
    described: Vec<(String, Vec<String>)>,
    /// Attachments let go.
    dropped: usize,
}

#[derive(Default)]
struct Recording {
    seen: Arc<Mutex<Seen>>,
    refuse: bool,
}

struct Recorded {
    seen: Arc<Mutex<Seen>>,
}

impl Attach for Recording {
    fn attach(&self, name: &str, dir: &Path) -> Result<Box<dyn Attachment>, String> {
        if self.refuse {
            return Err("no socket for you".to_owned());
        }
        assert!(dir.is_dir(), "attached before its runtime dir exists");
        self.seen
            .lock()
            .unwrap()
            .attached
            .push((name.to_owned(), dir.to_owned()));
        Ok(Box::new(Recorded {
            seen: self.seen.clone(),
        }))
    }
}

impl Attachment for Recorded {
    fn env(&self) -> Vec<(String, String)> {
        vec![("OUTBOARD_HOST_TOKEN".to_owned(), "f".repeat(64))]
    }

    fn described(&self, manifest: &Manifest, granted: &[String]) {
        self.seen
            .lock()
            .unwrap()
            .described
            .push((manifest.name.clone(), granted.to_vec()));
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.seen.lock().unwrap().dropped += 1;
    }
}

#[tokio::test]
async fn an_attachment_lives_from_before_the_spawn_until_the_exit() {
    let sandbox = Sandbox::new();
    let attach = Recording::default();
    let spec = sandbox.broken("ok");
    let plugin = Plugin::start_attached(&spec, None, Some(&attach))
        .await
        .expect("starts");
    {
        let seen = attach.seen.lock().unwrap();
        assert_eq!(
            seen.attached,
            [(spec.name.clone(), plugin.runtime_dir().to_owned())]
        );
        assert_eq!(seen.described, [("broken-ok".to_owned(), Vec::new())]);
        assert_eq!(seen.dropped, 0);
    }
    // The process exits while the instance is still held: the attachment
    // goes anyway.
    plugin.kill().await;
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        while attach.seen.lock().unwrap().dropped == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the attachment outlived its process");
    drop(plugin);
    assert_eq!(attach.seen.lock().unwrap().dropped, 1);
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_failed_attach_fails_the_launch_naming_the_plugin() {
    let sandbox = Sandbox::new();
    let attach = Recording {
        refuse: true,
        ..Recording::default()
    };
    let err = Plugin::start_attached(&sandbox.broken("ok"), None, Some(&attach))
        .await
        .expect_err("refused");
    assert!(matches!(err.kind, ErrorKind::Attach(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("broken-ok"), "{text}");
    assert!(text.contains("no socket for you"), "{text}");
    sandbox.assert_empty();
}
