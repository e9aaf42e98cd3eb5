//! The direct YAML reader against the event parser: on every document the direct reader
//! reads, the event parser must read the same tree, spans included, and report nothing.
//! Arbitrary bytes seldom make such a document; seeded with the golden documents, the
//! fuzzer's edits of them do.

#![no_main]
// A fuzz target fails by panicking.
#![allow(clippy::panic)]

use libfuzzer_sys::fuzz_target;
use sectosca::Limits;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(problem) = sectosca::parse::direct_reader_agrees(text, &Limits::default()) {
        panic!("{problem}\n--- document ---\n{text}");
    }
});
