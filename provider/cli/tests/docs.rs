//! The committed registry docs must be what the generator makes from the schemas and
//! examples. `UPDATE_GOLDEN=1 cargo test -p sdsec-cli --test docs` (or
//! `sdsec docs`) rewrites them.

// A failed expectation in a test is reported by panicking.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn committed_docs_are_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pages = sdsec_cli::docs::generate(&root.join("examples")).expect("generate docs");
    assert!(pages.len() >= 4, "index, one resource, one data source, one function at least");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        sdsec_cli::docs::write(&root.join("docs"), &pages).expect("write docs");
        return;
    }
    for page in pages {
        let path = root.join("docs").join(&page.path);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        similar_asserts::assert_eq!(committed, page.text, "{} is stale: run `sdsec docs`", path.display());
    }
}

#[test]
fn every_attribute_and_function_is_described() {
    use tfplugin::Provider as _;
    let provider = sdsec_provider::SdsecProvider::new();
    let mut blocks = vec![("provider".to_owned(), provider.schema().block)];
    blocks.extend(provider.resources().iter().map(|r| (r.type_name().to_owned(), r.schema().block)));
    blocks.extend(provider.data_sources().iter().map(|d| (d.type_name().to_owned(), d.schema().block)));
    for (name, block) in blocks {
        assert!(!block.description.is_empty(), "{name} has no description");
        for a in &block.attributes {
            assert!(a.description.len() > 10, "{name}.{} has no real description", a.name);
        }
    }
    for f in provider.functions() {
        let sig = f.signature();
        assert!(
            !sig.description.is_empty() && sig.parameters.iter().all(|p| !p.description.is_empty()),
            "{}",
            f.name()
        );
    }
}
