//! The checks, one file each (or a small group), in the order they run.

pub(crate) mod configure;
pub(crate) mod deadline;
pub(crate) mod describe;
pub(crate) mod fastpath;
pub(crate) mod handshake;
pub(crate) mod health;
pub(crate) mod host_services;
pub(crate) mod invoke;
pub(crate) mod run_by_hand;
pub(crate) mod shutdown;
pub(crate) mod sigterm;
pub(crate) mod socket;
pub(crate) mod token;
pub(crate) mod unknown_fields;
