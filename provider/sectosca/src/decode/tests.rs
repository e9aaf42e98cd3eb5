//! Decoding records: fields, renamed keys, and every problem reported at once.

use super::*;
use crate::parse::{Limits, parse};
use crate::source::Source;

record! {
    /// A test record.
    pub struct Demo ("demo settings", UnknownKey) {
        pub port: Bounded<1, 65535>,
        pub name: Option<String>,
        pub tags: Option<Vec<String>>,
        pub inside as "in": Option<bool>,
    }
}

fn decode_demo(text: &str) -> (Option<Demo>, Vec<crate::Diagnostic>) {
    let source = Source::new("t", text);
    let mut sink = Sink::new(&source);
    let node = parse(&mut sink, &Limits::default()).unwrap();
    let demo = Demo::decode(&node, &LazyPath::new(&YamlPath::root()), &mut sink);
    (demo, sink.diagnostics)
}

#[test]
fn decodes_fields_and_renamed_keys() {
    let (demo, diags) = decode_demo("port: 80\nin: true\ntags: [a, b]\n");
    assert!(diags.is_empty(), "{diags:?}");
    let demo = demo.unwrap();
    assert_eq!(demo.port.0, 80);
    assert_eq!(demo.inside, Some(true));
    assert_eq!(demo.tags.unwrap(), vec!["a", "b"]);
}

#[test]
fn reports_every_problem_at_once() {
    let (demo, diags) = decode_demo("port: 70000\nnmae: x\ntags: a\n");
    assert!(demo.is_none());
    let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::InvalidValue, Code::WrongType, Code::UnknownKey]);
    assert_eq!(diags[2].hint.as_deref(), Some("did you mean `name`?"));
    assert_eq!(diags[1].path.to_string(), "tags");
}

#[test]
fn missing_required_field_and_quoted_number() {
    let (_, diags) = decode_demo("name: x\n");
    assert_eq!(diags[0].code, Code::MissingKey);
    let (_, diags) = decode_demo("port: \"80\"\n");
    assert_eq!(diags[0].code, Code::WrongType);
}
