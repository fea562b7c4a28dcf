//! A plugin's walls, enforced by the kernel: what the machine offers, and
//! the cgroup, limits and namespaces put up around each plugin process.
//!
//! # Layout
//!
//! - [`detect`]: cgroups v2 and v1, Landlock, network namespaces, found at
//!   runtime.
//! - `cgroup`: [`Cgroup`], an instance's own cgroup, its limits, its
//!   out-of-memory kills, its removal.
//! - `netns`: a network namespace of the plugin's own, `lo` up or not.
//! - `plan`: [`plan`], how each setting is enforced here (mechanism,
//!   fallback or refusal), without side effects: the rows `describe` and
//!   `status` show.
//! - `enforce`: [`apply`], building what the plan decided: the cgroup
//!   before the fork; in the child `no_new_privs`, joining the cgroup,
//!   rlimits, the network namespace, the drop to another user.
//! - [`landlock`]: the `filesystem` wall, a Landlock ruleset prepared
//!   before the fork and entered in the child.

mod cgroup;
pub mod detect;
mod enforce;
pub mod landlock;
mod netns;
mod plan;

use std::sync::OnceLock;

pub use cgroup::{Cgroup, cgroups_of};
pub use detect::{Offers, detect};
pub use enforce::{Walls, apply};
pub(crate) use plan::account_of;
pub use plan::{RLIMIT_AS_MECHANISM, SandboxError, Wall, plan, runs_as, shared_users, size};

/// What this machine offers, detected once per process: mounts and
/// privileges do not change under a running host.
pub fn offers() -> &'static Offers {
    static OFFERS: OnceLock<Offers> = OnceLock::new();
    OFFERS.get_or_init(detect)
}
