//! Where objects come from. Embedded mode reads a local directory.

pub mod local;
