//! A plugin's walls, enforced by the kernel: what the machine offers
//! (`detect`).
//!
//! # Layout
//!
//! - [`detect`]: cgroups v2 and v1, Landlock, network namespaces, found at
//!   runtime.

pub mod detect;
pub mod landlock;

pub use detect::{Offers, detect};
