//! plugin (being written).
