//! What the host's integration tests share: the workspace's test support.

#![allow(unreachable_pub)]

pub use outboard_test_support::*;
