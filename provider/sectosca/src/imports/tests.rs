use std::collections::BTreeMap;

use super::LoadError;
use crate::{Code, Compilation, Options, Source, compile_with};

const HEAD: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\n";

/// Compiles `main.yaml` of `files` (name → text), the others loaded from the same map.
fn compile(files: &[(&str, &str)]) -> Compilation {
    let files: BTreeMap<String, String> = files.iter().map(|(n, t)| ((*n).to_owned(), format!("{HEAD}{t}"))).collect();
    let loader = |name: &str| files.get(name).cloned().ok_or(LoadError::NotFound);
    let main = Source::new("p/main.yaml", files.get("p/main.yaml").cloned().unwrap_or_default());
    compile_with(&main, &BTreeMap::new(), &Options::default(), &loader)
}

fn codes(c: &Compilation) -> Vec<(Code, String, usize)> {
    c.diagnostics
        .iter()
        .map(|d| {
            let loc = d.location.as_ref().expect("located");
            (d.code, loc.file.to_string(), loc.line)
        })
        .collect()
}

const AUDIT: &str = "topology_template:
  policies:
    - audit: { type: sdsec.policies.Audit, properties: { events: [request] } }
";

#[test]
fn imported_policies_apply_to_the_importers_nodes() {
    let c = compile(&[
        (
            "p/main.yaml",
            "imports: [ ../common/audit.yaml, { file: sdsec-profile.yaml } ]
topology_template:
  node_templates:
    api: { type: sdsec.nodes.Unikernel }
",
        ),
        ("common/audit.yaml", AUDIT),
    ]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert!(c.plans["api"].runtime.audit.events.iter().any(|e| format!("{e:?}").contains("Request")));
    let names: Vec<&str> = c.sources.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["p/main.yaml", "common/audit.yaml"]);
}

#[test]
fn problems_in_an_imported_document_are_reported_there() {
    let c = compile(&[
        (
            "p/main.yaml",
            "imports: [ fw.yaml ]\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n",
        ),
        (
            "p/fw.yaml",
            "topology_template:\n  policies:\n    - fw:\n        type: sdsec.policies.Firewall\n        properties: { ingress: [ { from: [ 10.0.0.0/33 ] } ] }\n",
        ),
    ]);
    let d = c.diagnostics.iter().find(|d| d.code == Code::InvalidCidr).expect("a CIDR error");
    let loc = d.location.as_ref().unwrap();
    assert_eq!((&*loc.file, loc.line, loc.column), ("p/fw.yaml", 6, 44));
    let fw = &c.sources[1];
    assert_eq!(&fw.text[loc.span.start..loc.span.end], "10.0.0.0/33");
    assert_eq!(d.path.to_string(), "topology_template.policies[0].fw.properties.ingress[0].from[0]");
}

#[test]
fn cycles_missing_files_and_refused_forms_are_diagnosed_at_the_import() {
    let c = compile(&[
        (
            "p/main.yaml",
            "imports:
  - a.yaml
  - missing.yaml
  - https://example.com/x.yaml
  - /etc/x.yaml
  - { file: a.yaml, repository: r }
  - { file: b.yaml, namespace_prefix: p }
topology_template: { node_templates: { api: { type: sdsec.nodes.Unikernel } } }
",
        ),
        ("p/a.yaml", "imports: [ b.yaml ]\n"),
        ("p/b.yaml", "imports: [ ./a.yaml, main.yaml ]\n"),
    ]);
    let got = codes(&c);
    assert!(got.contains(&(Code::ImportNotFound, "p/main.yaml".into(), 4)), "{got:?}");
    assert!(got.contains(&(Code::UnsupportedImport, "p/main.yaml".into(), 5)), "{got:?}");
    assert!(got.contains(&(Code::UnsupportedImport, "p/main.yaml".into(), 6)), "{got:?}");
    assert!(got.contains(&(Code::UnsupportedImport, "p/main.yaml".into(), 7)), "{got:?}");
    assert!(got.contains(&(Code::UnsupportedImport, "p/main.yaml".into(), 8)), "{got:?}");
    let cycles: Vec<_> = c.diagnostics.iter().filter(|d| d.code == Code::ImportCycle).collect();
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(cycles.iter().all(|d| d.location.as_ref().unwrap().file.as_ref() == "p/b.yaml"));
    assert!(cycles[0].message.contains("p/a.yaml → p/b.yaml → p/a.yaml"), "{}", cycles[0].message);
}

#[test]
fn a_name_defined_in_two_documents_names_both_places() {
    let c = compile(&[
        (
            "p/main.yaml",
            "imports: [ a.yaml, b.yaml ]
topology_template:
  inputs: { level: { type: string, default: x } }
  node_templates: { api: { type: sdsec.nodes.Unikernel } }
  policies:
    - audit: { type: sdsec.policies.Audit }
",
        ),
        ("p/a.yaml", AUDIT),
        ("p/b.yaml", "imports: [ a.yaml ]\ntopology_template:\n  inputs: { level: { type: string } }\n"),
    ]);
    let dups: Vec<String> =
        c.diagnostics.iter().filter(|d| d.code == Code::DuplicateImported).map(|d| d.to_string()).collect();
    assert_eq!(dups.len(), 2, "{dups:?}");
    assert!(dups[0].starts_with("p/main.yaml:4:13: error[E1003] input `level`"), "{}", dups[0]);
    assert!(dups[0].contains("at p/b.yaml:4:13"), "{}", dups[0]);
    assert!(dups[1].starts_with("p/main.yaml:7:7: error[E1003] policy `audit`"), "{}", dups[1]);
    assert!(dups[1].contains("at p/a.yaml:4:7"), "{}", dups[1]);
}

#[test]
fn without_a_loader_only_the_profile_may_be_imported() {
    let text = format!(
        "{HEAD}imports: [ sdsec-profile.yaml ]\ntopology_template: {{ node_templates: {{ api: {{ type: sdsec.nodes.Unikernel }} }} }}\n"
    );
    assert!(crate::compile_str("d", &text).diagnostics.is_empty());
    let c = crate::compile_str("d", &text.replace("sdsec-profile.yaml", "a.yaml"));
    assert_eq!(c.diagnostics[0].code, Code::ImportNotFound);
}

#[test]
fn imports_are_bounded() {
    // A chain main → f1 → f2 → ... longer than the depth limit.
    let mut files: Vec<(String, String)> =
        (1..12).map(|i| (format!("p/f{i}.yaml"), format!("imports: [ f{}.yaml ]\n", i + 1))).collect();
    files.push(("p/f12.yaml".into(), String::new()));
    files.push(("p/main.yaml".into(), "imports: [ f1.yaml ]\ntopology_template: {}\n".into()));
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let c = compile(&refs);
    assert!(c.diagnostics.iter().any(|d| d.code == Code::TooManyImports), "{:?}", c.diagnostics);
}

#[test]
fn outputs_give_literals_and_inputs_and_refuse_the_rest() {
    let c = compile(&[(
        "p/main.yaml",
        "topology_template:
  inputs: { level: { type: string, default: high } }
  node_templates: { api: { type: sdsec.nodes.Unikernel } }
  outputs:
    level: { description: the level, value: { get_input: level } }
    port: { value: 8080 }
",
    )]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.outputs["level"].value.as_deref(), Some("high"));
    assert_eq!(c.outputs["port"].value.as_deref(), Some("8080"));
    let c = compile(&[(
        "p/main.yaml",
        "topology_template:
  node_templates: { api: { type: sdsec.nodes.Unikernel } }
  outputs:
    ip: { value: { get_attribute: [api, ip] } }
    list: { value: [1] }
    none: { description: x }
",
    )]);
    let got: Vec<Code> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(got, [Code::OutputValue, Code::OutputValue, Code::MissingKey]);
}
