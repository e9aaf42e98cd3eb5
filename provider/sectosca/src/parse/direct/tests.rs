//! The direct reader against the event parser, on every golden and example document and
//! on edits of them.

use std::path::Path;

use super::*;

/// Every document this reader reads, the event parser reads to the same tree, with no
/// diagnostic.
/// (The check the `direct_reader` fuzz target makes on arbitrary text.)
fn assert_same(text: &str, name: &str) -> bool {
    match super::super::direct_reader_agrees(text, &Limits::default()) {
        Ok(read) => read,
        Err(problem) => panic!("{name}: {problem}\n{text}"),
    }
}

fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dirs = ["provider/sectosca/tests/golden/valid", "provider/sectosca/tests/golden/invalid", "examples"];
    let mut docs = Vec::new();
    let mut pending: Vec<_> = dirs.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                docs.push((path.display().to_string(), text));
            }
        }
    }
    docs.push(("samples".into(), SAMPLES.into()));
    docs
}

const SAMPLES: &str = "# top\na: 1\nb:\n  c: x   # comment\n  d: [1, \"two\", 'th''ree', {e: f}]\n  g: { h: i, j: [k] }   # c\n\n  # inner\nl:\n  - m\n  - n: o\n    p: q\n  - [r, s]\nr: \"\"\ns:\nt: ~\nu: a:b\nv: -5\nw:   # c\n  - x: {}\n    y: []\n";

type Edit = fn(&str) -> Option<String>;

/// Line edits that make documents this reader must refuse or read as the parser does.
fn mutations(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for i in 0..lines.len() {
        let edits: [Edit; 9] = [
            |_| Some(String::new()),
            |l| Some(format!(" {l}")),
            |l| l.strip_prefix(' ').map(str::to_owned),
            |l| Some(format!("{l} # c")),
            |l| Some(format!("{l}:")),
            |l| Some(l.replacen(": ", ":", 1)),
            |l| Some(format!("- {l}")),
            |l| Some(format!("{l}\n{l}")),
            |l| Some(l.replacen(' ', "", 1)),
        ];
        for edit in edits {
            if let Some(line) = edit(lines[i]) {
                let mut doc: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
                doc[i] = line;
                out.push(doc.join("\n") + "\n");
            }
        }
    }
    out
}

#[test]
fn reads_what_the_event_parser_reads() {
    let docs = documents();
    assert!(docs.len() > 50, "the corpus is missing: {}", docs.len());
    let read_directly = docs.iter().filter(|(name, text)| assert_same(text, name)).count();
    assert!(read_directly > docs.len() / 2, "only {read_directly} of {} read directly", docs.len());
    for (name, text) in &docs {
        for (n, doc) in mutations(text).iter().enumerate() {
            assert_same(doc, &format!("{name} (mutation {n})"));
        }
    }
}

#[test]
fn leaves_the_rest_to_the_event_parser() {
    let limits = Limits::default();
    for text in [
        "a: &x 1\nb: *x\n",
        "a: |\n  text\n",
        "a: \"esc\\n\"\n",
        "a: b\n  c\n",
        "a: 1\na: 2\n",
        "---\na: 1\n",
        "a:\n- b\n",
        "a:\tb\n",
        "a: é\n",
        "a: [b,\n  c]\n",
        "a: !tag b\n",
        "- \n",
    ] {
        assert!(read(text, &limits).is_none(), "{text}");
    }
    let deep = "a:\n  a:\n    a: 1\n";
    assert!(read(deep, &Limits { max_depth: 2, ..limits }).is_none());
    assert!(read(deep, &Limits { max_nodes: 6, ..limits }).is_none());
    assert!(read(deep, &Limits { max_nodes: 7, ..limits }).is_some());
}
