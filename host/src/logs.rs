//! logs (being written).
