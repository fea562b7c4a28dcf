//! The seam through which an embedder gives every launch something of its
//! own to reach, before the spawn: the host library knows nothing of what
//! (host services bind a socket and hand out a token through it), only
//! when to ask, which variables to add, and when to let go.
//!
//! The order, for one launch: [`Attach::attach`] in the fresh runtime
//! directory → the spawn, with [`Attachment::env`] added to the handshake
//! variables → [`Attachment::spawned`] with its pid → `Describe` → [`Attachment::described`] → … → the process
//! exits (or the launch is dropped): the attachment is dropped. A restart
//! is a new launch, so it gets a new attachment.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::manifest::Manifest;

/// Gives each launch its attachment; one per host, shared by every launch.
pub trait Attach: Send + Sync + 'static {
    /// Before the spawn of instance `name` in its private runtime dir `dir`:
    /// binds what the instance will reach and returns it; an error fails the
    /// launch naming the plugin.
    fn attach(&self, name: &str, dir: &Path) -> Result<Box<dyn Attachment>, String>;
}

/// What one launch was given; dropped when its process has exited (or the
/// launch is dropped, whichever comes first), and from then on whatever it
/// granted must be refused.
pub trait Attachment: Send + Sync {
    /// The variables to add (layer 3: configuration cannot set or override
    /// them).
    fn env(&self) -> Vec<(String, String)>;

    /// Right after the spawn: the plugin's pid (also its process group's),
    /// so that what was bound can tell the plugin's processes from others
    /// of the same user.
    fn spawned(&self, pid: u32) {
        let _ = pid;
    }

    /// After `Describe`: the manifest and the permissions granted.
    fn described(&self, manifest: &Manifest, granted: &[String]);
}

/// A launch's attachment, held until its process exits or the launch is
/// dropped: a task waits for the exit and drops it then, so that a token
/// dies with its process even while the instance is still referenced.
pub(crate) struct Held {
    /// The attachment, `None` once let go.
    slot: Arc<Mutex<Option<Box<dyn Attachment>>>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl Held {
    /// Holds `attachment` until `exit` reports an exit (or its sender goes).
    pub(crate) fn until_exit<T: Send + Sync + 'static>(
        attachment: Box<dyn Attachment>,
        mut exit: watch::Receiver<Option<T>>,
    ) -> Held {
        let slot = Arc::new(Mutex::new(Some(attachment)));
        let watched = Arc::downgrade(&slot);
        tokio::spawn(async move {
            // Err: the reaper is gone, so is the process (or the runtime).
            let _ = exit.wait_for(Option::is_some).await;
            if let Some(slot) = watched.upgrade() {
                let gone = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                drop(gone);
            }
        });
        Held { slot }
    }

    /// Tells the attachment, if still held, what `Describe` said.
    pub(crate) fn described(&self, manifest: &Manifest, granted: &[String]) {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(attachment) = slot.as_ref() {
            attachment.described(manifest, granted);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let gone = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(gone);
    }
}
