//! The committed JSON Schemas must match what the Rust types generate.
//! `UPDATE_GOLDEN=1 cargo test -p sdsec-sectosca --test schema_files` rewrites them.

// Test code fails by panicking.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn check(file: &str, generated: String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    similar_asserts::assert_eq!(
        committed,
        generated,
        "{} is out of date: run `UPDATE_GOLDEN=1 cargo test -p sdsec-sectosca --test schema_files`",
        path.display()
    );
}

#[test]
fn document_schema_is_up_to_date() {
    check("sectosca.schema.json", sectosca::schema::document_schema());
}

#[test]
fn plan_schema_is_up_to_date() {
    check("enforcement-plan.schema.json", sectosca::schema::plan_schema());
}

#[test]
fn document_schema_describes_every_policy_type() {
    let schema = sectosca::schema::document_schema();
    for kind in sectosca::model::PolicyKind::ALL {
        assert!(schema.contains(kind.type_name()), "{} missing", kind.type_name());
    }
    for kind in sectosca::model::NodeKind::ALL {
        assert!(schema.contains(kind.type_name()), "{} missing", kind.type_name());
    }
}
