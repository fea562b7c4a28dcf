//! `notifier`: after the command exits, sends a signed `job.finished` event
//! to a file or to a webhook on this machine.
//!
//! The event is the compact JSON object
//!
//! ```json
//! {"command":["make","test"],"event":"job.finished","exit_code":0,"job_id":"6f1c…","status":"succeeded","timestamp":"2024-05-01T12:00:00.250Z"}
//! ```
//!
//! with its keys in alphabetical order (so a receiver that parses it and
//! writes it back compactly with sorted keys gets the same bytes), `status`
//! `succeeded` when `exit_code` is 0 and `failed` otherwise, `timestamp`
//! RFC 3339 in UTC. Its signature is `sha256=<hex HMAC-SHA256 of the event's
//! bytes under the secret>`. When the context has no `exit_code` (the
//! command did not run: a dry run) nothing is sent.
//!
//! - **File mode** appends one line per job:
//!   `{"signature":"sha256=<hex>","event":{...}}`, the event being the exact
//!   bytes that were signed. A new file is created 0600; a symbolic link at
//!   the path, or anything but a regular file, is refused, not followed.
//! - **URL mode** POSTs the event as the request body (HTTP/1.1, written by
//!   hand over TCP) with `Content-Type: application/json`,
//!   `X-Outboard-Signature: sha256=<hex>` and `Connection: close`. Only
//!   `http://` URLs to this machine are accepted: the host must be in
//!   127.0.0.0/8, `[::1]` or `localhost` (which is tried as 127.0.0.1, then
//!   ::1, never looked up). The whole request is bounded by the invocation's
//!   deadline (2 s without one); a status other than 2xx, a connection error
//!   or no answer in time is `UNAVAILABLE`, naming the URL.
//!
//! # Config
//!
//! Exactly one of `file` and `url`; the key is the host secret
//! `notifier-hmac` (recommended), unless `secret` or `secret_env` is set:
//!
//! ```toml
//! [secrets.notifier-hmac]            # in outboard.toml
//! file = "/run/secrets/notifier-hmac"
//!
//! [[plugin]]
//! name = "notifier"
//! grant = ["secret:notifier-hmac"]   # the manifest asks for it
//! [plugin.config]
//! url = "http://127.0.0.1:8787/hooks/outboard"   # or: file = "/var/log/outboard/events.jsonl"
//! ```
//!
//! With neither `secret` nor `secret_env`, `Configure` checks that the host
//! secret is granted and configured (`FAILED_PRECONDITION` saying what to
//! add otherwise; a source that is only down for now, or a host without
//! host services such as `outboard describe`, is left to the first event),
//! and every event reads it through host services (the host keeps
//! it for its `cache` time), so a rotated key is used without a restart
//! and the key is in no process environment.
//!
//! The older ways still work: `secret = "..."`, or `secret_env` naming a
//! variable of the plugin's own environment, read at `Configure`. The host
//! passes a plugin only a few of its own variables, so set it with `env` in
//! the `[[plugin]]` table.
//!
//! # Patches
//!
//! `/metadata/notifier = {"delivered_to": "<file or url>", "signature": "sha256=<hex>"}`
//! (`post_container` is parallel in the job profile, so it writes only under
//! its own key).
//!
//! # Layout
//!
//! - `plugin`: the config, the event and its signature.
//! - `url`: the checked `url` key.
//! - `http`: the POST, bounded by the invocation's deadline.

mod http;
mod plugin;
mod url;

#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::time::SystemTime;

use crate::plugin::Notifier;

fn main() -> ExitCode {
    outboard_plugin::run(Notifier::new(SystemTime::now, |name| {
        std::env::var(name).ok()
    }))
}
