//! The `sdsec` command line as a user runs it: exit codes, what goes to stdout and stderr.

// A failed expectation in a test is reported by panicking.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A policy with an input and an adaptation, shared with the acceptance tests.
const POLICY: &str = include_str!("../../../acceptance/fixtures/policy.yaml");

/// The same policies, written differently: other key order, flow style, comments.
const POLICY_REFORMATTED: &str = r#"# reordered
topology_template:
  policies:
    - auth: { targets: [api], type: sdsec.policies.Authentication, properties: { principals: [ { roles: [deployer], token_sha256: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", name: ci } ], scheme: bearer } }
    - rbac: { type: sdsec.policies.Authorization, targets: [api], properties: { rules: [ { effect: allow, paths: ["/deploy"], methods: [POST], roles: [deployer] } ] } }
    - fw: { type: sdsec.policies.Firewall, targets: [api], properties: { rate_limit: { requests_per_second: 20 } } }   # limit
    - calm_down: { type: sdsec.policies.Adaptation, targets: [api], properties: { then: { fw: { rate_limit: { requests_per_second: 2 } } }, when: { equals: high, input: threat_level } } }
  inputs:
    threat_level: { default: normal, type: string, constraints: [ { valid_values: [normal, high] } ] }
tosca_definitions_version: tosca_simple_yaml_1_3
"#;

const BROKEN: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - fw:
        type: sdsec.policies.Firewall
        targets: [api]
        properties:
          ingress: [ { from: 10.0.0.1/8, action: allow } ]
          rate_limt: { requests_per_second: 5 }
"#;

fn sdsec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdsec")).args(args).env("NO_COLOR", "1").output().expect("run sdsec")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdsec-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[test]
fn check_accepts_a_valid_document() {
    let dir = tempdir();
    let file = write(&dir, "ok.yaml", POLICY);
    let out = sdsec(&["check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ok, 1 unikernel plan(s), 0 warning(s)"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn check_reports_every_error_with_position_path_and_hint() {
    let dir = tempdir();
    let file = write(&dir, "broken.yaml", BROKEN);
    let out = sdsec(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("sectosca::E0401"), "{err}");
    assert!(err.contains("broken.yaml:8:30"), "{err}");
    assert!(err.contains("did you mean `10.0.0.0/8`?"), "{err}");
    assert!(err.contains("sectosca::E0303"), "{err}");
    assert!(err.contains("did you mean `rate_limit`?"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn check_json_lists_diagnostics_on_stdout() {
    let dir = tempdir();
    let file = write(&dir, "broken.yaml", BROKEN);
    let out = sdsec(&["check", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let first = &diags[0];
    assert_eq!(first["code"], "E0401");
    assert_eq!(first["location"]["line"], 8);
    assert_eq!(first["path"], "topology_template.policies[0].fw.properties.ingress[0].from");
}

#[test]
fn compile_prints_canonical_plans_whose_digest_ignores_formatting() {
    let dir = tempdir();
    let a = write(&dir, "a.yaml", POLICY);
    let b = write(&dir, "b.yaml", POLICY_REFORMATTED);
    let out_a = sdsec(&["compile", a.to_str().unwrap()]);
    let out_b = sdsec(&["compile", b.to_str().unwrap()]);
    assert!(out_a.status.success(), "{}", text(&out_a.stderr));
    assert_eq!(out_a.stdout, out_b.stdout, "reformatting changed the plan");
    let plans: serde_json::Value = serde_json::from_slice(&out_a.stdout).expect("JSON");
    assert_eq!(plans["api"]["runtime"]["firewall"]["rate_limits"][0]["requests_per_second"], 20);
    let summary = sdsec(&["compile", "--format", "summary", a.to_str().unwrap()]);
    let summary_b = sdsec(&["compile", "--format", "summary", b.to_str().unwrap()]);
    let digest_line =
        |o: &Output| text(&o.stdout).lines().find(|l| l.starts_with("digest: sha256:")).map(str::to_owned);
    assert!(digest_line(&summary).is_some(), "{}", text(&summary.stdout));
    assert_eq!(digest_line(&summary), digest_line(&summary_b));
    assert!(text(&summary.stdout).contains("authentication: bearer"));
}

#[test]
fn compile_applies_inputs_and_rejects_invalid_ones() {
    let dir = tempdir();
    let a = write(&dir, "a.yaml", POLICY);
    let out = sdsec(&["compile", "--node", "api", "--input", "threat_level=high", a.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["runtime"]["firewall"]["rate_limits"][0]["requests_per_second"], 2);
    assert_eq!(plan["provenance"]["adaptations"][0], "calm_down");

    let bad = sdsec(&["compile", "--input", "threat_level=apocalyptic", a.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("E0602"), "{}", text(&bad.stderr));
    assert!(bad.stdout.is_empty(), "no plan may be printed for an invalid document");
}

#[test]
fn missing_files_and_unknown_nodes_are_usage_errors() {
    let out = sdsec(&["check", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/policy.yaml"), "{}", text(&out.stderr));
    let dir = tempdir();
    let a = write(&dir, "a.yaml", POLICY);
    let out = sdsec(&["compile", "--node", "nope", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unikernels: api"), "{}", text(&out.stderr));
}

#[test]
fn schema_matches_the_committed_file_and_writes_atomically() {
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/sectosca.schema.json"))
            .unwrap();
    let out = sdsec(&["schema"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), committed);
    let dir = tempdir();
    let target = dir.join("schema.json");
    let out = sdsec(&["schema", "--plan", "-o", target.to_str().unwrap()]);
    assert!(out.status.success());
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(written["title"], "EnforcementPlan");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file may be left behind");
}

#[test]
fn every_example_policy_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("examples/policies"))
        .expect("examples/policies")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.push(root.join("examples/quickstart/policy.yaml"));
    assert!(files.len() >= 6, "the examples are missing");
    for file in files {
        let out = sdsec(&["check", file.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert!(
            out.status.success() && err.contains("0 warning(s)"),
            "{} does not check clean:\n{err}",
            file.display()
        );
    }
}

/// `check --format sarif` over every invalid golden document: one result per diagnostic the
/// golden file lists, with its rule id, line and column, and a rule for each of them.
#[test]
fn check_sarif_reports_each_golden_diagnostic_at_its_rule_and_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sectosca/tests/golden/invalid");
    let mut documents: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    documents.sort();
    assert!(documents.len() > 50, "{}", dir.display());
    for yaml in documents {
        let mut args = vec!["check".to_owned(), "--format".to_owned(), "sarif".to_owned()];
        if let Ok(inputs) = std::fs::read_to_string(yaml.with_extension("inputs")) {
            for line in inputs.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
                args.extend(["--input".to_owned(), line.to_owned()]);
            }
        }
        args.push(yaml.display().to_string());
        let out = sdsec(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a SARIF log on stdout");
        let run = &log["runs"][0];
        let rules: Vec<&str> =
            run["tool"]["driver"]["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        let found: Vec<String> = run["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(rules[r["ruleIndex"].as_u64().unwrap() as usize], r["ruleId"].as_str().unwrap());
                let physical = &r["locations"][0]["physicalLocation"];
                let region = &physical["region"];
                // Diagnostics in an imported document (under fragments/) name it.
                let uri = physical["artifactLocation"]["uri"].as_str().unwrap();
                let case = yaml.file_name().unwrap().to_str().unwrap();
                let file = match uri.rsplit('/').next() {
                    Some(name) if name != case => format!("../fragments/{name}:"),
                    _ => String::new(),
                };
                format!("{} {file}{}:{}", r["ruleId"].as_str().unwrap(), region["startLine"], region["startColumn"])
            })
            .collect();
        let golden = std::fs::read_to_string(yaml.with_extension("diagnostics")).unwrap();
        let expected: Vec<String> =
            golden.lines().map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(found, expected, "{}", yaml.display());
        let errors = expected.iter().any(|line| line.starts_with('E'));
        assert_eq!(out.status.code(), Some(if errors { 1 } else { 0 }), "{}", yaml.display());
    }
}

#[test]
fn check_github_annotates_each_diagnostic() {
    let dir = tempdir();
    let file = write(&dir, "broken.yaml", BROKEN);
    let out = sdsec(&["check", "--format", "github", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let annotations = text(&out.stdout);
    let lines: Vec<&str> = annotations.lines().collect();
    assert_eq!(lines.len(), 2, "{annotations}");
    assert!(lines[0].starts_with(&format!("::error file={},line=8,col=30", file.display())), "{annotations}");
    assert!(lines[0].contains("title=sdsec E0401::"), "{annotations}");
    assert!(lines[1].contains("title=sdsec E0303::") && lines[1].contains("%0Ahint: did you mean"), "{annotations}");
}

/// A document importing a fragment with a mistake: every output format points into the
/// fragment, at its own line and column.
#[test]
fn check_reports_a_mistake_in_an_imported_document_at_that_document() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::create_dir_all(dir.join("common")).unwrap();
    write(
        &dir,
        "policies/main.yaml",
        "tosca_definitions_version: tosca_simple_yaml_1_3
imports: [ ../common/fw.yaml ]
topology_template:
  node_templates:
    api: { type: sdsec.nodes.Unikernel }
",
    );
    write(
        &dir,
        "common/fw.yaml",
        "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - fw:
        type: sdsec.policies.Firewall
        properties: { ingress: [ { from: [ 10.0.0.1/33 ], action: allow } ] }
",
    );
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_sdsec"))
            .args(["check", "--format", format, "policies/main.yaml"])
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run sdsec")
    };
    let out = run("human");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("common/fw.yaml:6:44"), "{err}");
    assert!(err.contains("sectosca::E0401"), "{err}");

    let out = run("sarif");
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SARIF");
    let result = &log["runs"][0]["results"][0];
    let physical = &result["locations"][0]["physicalLocation"];
    assert_eq!(physical["artifactLocation"]["uri"], "common/fw.yaml");
    assert_eq!(physical["region"]["startLine"], 6);
    assert_eq!(physical["region"]["startColumn"], 44);
    let artifacts: Vec<&str> = log["runs"][0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["location"]["uri"].as_str().unwrap())
        .collect();
    assert_eq!(artifacts, ["policies/main.yaml", "common/fw.yaml"]);

    let out = run("github");
    let annotations = text(&out.stdout);
    assert!(annotations.starts_with("::error file=common/fw.yaml,line=6,col=44"), "{annotations}");

    // A missing import is reported at the import, in the importing document.
    std::fs::remove_file(dir.join("common/fw.yaml")).unwrap();
    let out = run("human");
    let err = text(&out.stderr);
    assert!(err.contains("sectosca::E1001") && err.contains("policies/main.yaml:2:12"), "{err}");
}
