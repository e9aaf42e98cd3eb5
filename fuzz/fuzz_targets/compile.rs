//! Feeds arbitrary UTF-8 to the compiler, with no inputs and with a few `name=value` inputs
//! derived from the same bytes, and checks what every compilation promises.

#![no_main]
// A fuzz target fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sectosca::{Compilation, Options, Source};

/// Input names that documents commonly declare, and values of every type and some bad ones.
const NAMES: &[&str] = &["threat_level", "level", "rps", "realm", "region", "api_port", "incident", "x"];
const VALUES: &[&str] =
    &["high", "normal", "elevated", "0", "1", "-1", "8080", "70000", "true", "false", "1.5", "NaN", "", " ", "é"];

/// Up to three inputs chosen by the last bytes, so that mutations of the text and of the
/// inputs are independent.
fn derive_inputs(data: &[u8]) -> BTreeMap<String, String> {
    let mut tail = data.iter().rev().copied();
    let count = tail.next().map_or(0, |b| b % 4);
    let mut inputs = BTreeMap::new();
    for _ in 0..count {
        let (Some(n), Some(v)) = (tail.next(), tail.next()) else { break };
        inputs.insert(NAMES[n as usize % NAMES.len()].to_owned(), VALUES[v as usize % VALUES.len()].to_owned());
    }
    inputs
}

fn check(text: &str, c: &Compilation) {
    assert!(!c.has_errors() || c.plans.is_empty(), "errors, yet plans");
    for d in &c.diagnostics {
        let loc = d.location.as_ref().expect("every diagnostic has a location");
        assert!(loc.line >= 1 && loc.column >= 1, "{d}");
        assert!(loc.span.start <= loc.span.end && loc.span.end <= text.len(), "span outside the text: {d}");
        assert!(text.is_char_boundary(loc.span.start) && text.is_char_boundary(loc.span.end), "{d}");
        let _ = d.to_string();
    }
    if !c.has_errors() {
        assert!(c.canonical_json().starts_with('{'));
        let _ = c.digest();
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = Source::new("fuzz.yaml", text);
    let options = Options::default();
    check(text, &sectosca::compile(&source, &BTreeMap::new(), &options));
    let inputs = derive_inputs(data);
    if !inputs.is_empty() {
        check(text, &sectosca::compile(&source, &inputs, &options));
    }
});
