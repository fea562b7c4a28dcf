//! manifest (being written).
