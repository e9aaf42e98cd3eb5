//! The library half of the `sdsec` command line: the registry docs generator, kept here so
//! that a test can compare its pages with the committed ones without running the binary,
//! and the machine formats of diagnostics.

pub mod docs;
pub mod loader;
pub mod module;
pub mod report;
pub mod review;
