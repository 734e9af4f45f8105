//! Where findings go. Each sink owns one destination; so far local files and stdout.

pub mod file;
pub mod stdout;
