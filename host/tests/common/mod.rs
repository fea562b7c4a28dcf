//! What the host's integration tests share: the workspace's test support.

pub use outboard_test_support::*;
