//! The committed JSON Schemas and TOSCA profile must match what the Rust types generate.
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
fn draft07_document_schema_is_up_to_date_and_has_no_2020_12_keywords() {
    let schema = sectosca::schema::document_schema_draft07();
    check("sectosca.draft-07.schema.json", schema.clone());
    assert!(schema.contains("\"$schema\": \"http://json-schema.org/draft-07/schema#\""), "{}", &schema[..200]);
    for keyword in ["$defs", "prefixItems", "unevaluatedProperties", "dependentRequired", "$dynamicRef"] {
        assert!(!schema.contains(&format!("\"{keyword}\"")), "{keyword} is not draft-07");
    }
    let value: serde_json::Value = serde_json::from_str(&schema).unwrap();
    // Every reference resolves within the file.
    for reference in schema.split("\"$ref\": \"#/definitions/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(value["definitions"].get(name).is_some(), "{name}");
    }
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

#[test]
fn tosca_profile_is_up_to_date_and_well_formed() {
    let profile = sectosca::profile::tosca_profile();
    check(sectosca::imports::PROFILE_FILE, profile.clone());
    // YAML that the compiler's own parser reads without a problem.
    let source = sectosca::Source::new("sdsec-profile.yaml", profile.as_str());
    let mut sink = sectosca::diagnostic::Sink::new(&source);
    let root = sectosca::parse::parse(&mut sink, &sectosca::Limits::default()).unwrap();
    assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
    assert!(root.get("tosca_definitions_version").is_some());
    let section = |name: &str| root.get(name).and_then(sectosca::parse::Node::as_map).unwrap();
    for kind in sectosca::model::NodeKind::ALL {
        assert!(section("node_types").iter().any(|(k, _)| k.text == kind.type_name()), "{kind:?}");
    }
    for kind in sectosca::model::PolicyKind::ALL {
        assert!(section("policy_types").iter().any(|(k, _)| k.text == kind.type_name()), "{kind:?}");
    }
    // Every data type a property names is defined.
    for reference in profile.split("type: sdsec.datatypes.").skip(1) {
        let name = reference.lines().next().unwrap();
        assert!(section("data_types").iter().any(|(k, _)| k.text == format!("sdsec.datatypes.{name}")), "{name}");
    }
}
