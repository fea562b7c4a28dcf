//! process (being written).
