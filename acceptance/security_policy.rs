//! `sdsec_security_policy`, `data.sdsec_policy_document` and `provider::sdsec::policy_digest`
//! through their whole life: validate, plan, apply, no-op plan, update, import, drift, destroy.

use crate::harness::{Workspace, clis, policy_tf, provider_tf};

const TYPE: &str = "sdsec_security_policy";

/// A policy with an input and an adaptation, shared with the CLI tests.
const POLICY: &str = include_str!("fixtures/policy.yaml");

const BROKEN: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - api_fw:
        type: sdsec.policies.Firewall
        targets: [api]
        properties:
          ingress: [ { from: 10.0.0.1/8, action: allow } ]
"#;

fn main_tf(threat_level: &str) -> String {
    let policy = policy_tf(&format!("  inputs   = {{ threat_level = \"{threat_level}\" }}\n"));
    provider_tf("")
        + &policy
        + r#"
data "sdsec_policy_document" "doc" {
  document = file("${path.module}/policy.yaml")
}

output "digest" {
  value = sdsec_security_policy.api.digest
}

output "data_digest" {
  value = data.sdsec_policy_document.doc.digest
}

output "function_digest" {
  value = provider::sdsec::policy_digest(file("${path.module}/policy.yaml"))
}

output "api_plan" {
  value = jsondecode(sdsec_security_policy.api.enforcement["api"])
}

output "summary" {
  value = sdsec_security_policy.api.summary
}
"#
}

#[test]
fn security_policy_lifecycle() {
    for cli in clis() {
        let ws = Workspace::new(&cli, "policy");
        ws.write("main.tf", &main_tf("normal"));

        // validate: a bad document fails with the compiler's diagnostic, position and path.
        ws.write("policy.yaml", BROKEN);
        ws.run(&["validate", "-no-color"])
            .failure()
            .contains("E0401")
            .contains("document:8:30")
            .contains("topology_template.policies[0].api_fw.properties.ingress[0].from")
            .contains("did you mean `10.0.0.0/8`?");
        ws.write("policy.yaml", POLICY);
        ws.run(&["validate", "-no-color"]).success();

        // plan: every computed value is known at plan time.
        let plan = ws.run(&["plan", "-no-color"]).success();
        let plan = plan.contains("sdsec_security_policy.api will be created").contains("digest = \"sha256:");
        assert_eq!(plan.unknown_attributes(), ["id"], "only the record id may be unknown in the plan");

        ws.run(&["apply", "-auto-approve", "-no-color"]).success();
        let attrs = ws.attributes("sdsec_security_policy.api");
        let digest = attrs["digest"].as_str().expect("digest").to_owned();
        let outputs = ws.run(&["output", "-json"]).success();
        let outputs: serde_json::Value = serde_json::from_str(&outputs.stdout()).expect("outputs JSON");
        assert_eq!(outputs["digest"]["value"], digest.as_str());
        assert_eq!(outputs["data_digest"]["value"], digest.as_str(), "data source and resource disagree");
        assert_eq!(outputs["function_digest"]["value"], digest.as_str(), "function and resource disagree");
        assert_eq!(outputs["api_plan"]["value"]["runtime"]["firewall"]["rate_limits"][0]["requests_per_second"], 20);
        assert!(outputs["summary"]["value"].as_str().unwrap_or_default().contains("authentication: bearer"));

        // No change: a second plan is empty, and so is one after a formatting-only edit.
        ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);
        ws.write("policy.yaml", &format!("# reviewed by security\n{POLICY}\n\n"));
        ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

        // Update in place: the input raises the threat level; the same id is kept.
        let id = attrs["id"].as_str().expect("id").to_owned();
        ws.write("main.tf", &main_tf("high"));
        ws.run(&["plan", "-no-color"])
            .success()
            .contains("updated in-place")
            .contains("requests_per_second")
            .lacks("must be replaced");
        ws.run(&["apply", "-auto-approve", "-no-color"]).success();
        let attrs = ws.attributes("sdsec_security_policy.api");
        assert_eq!(attrs["id"], id.as_str());
        assert_ne!(attrs["digest"], digest.as_str());
        let api: serde_json::Value =
            serde_json::from_str(attrs["enforcement"]["api"].as_str().expect("plan JSON")).expect("JSON");
        assert_eq!(api["runtime"]["firewall"]["rate_limits"][0]["requests_per_second"], 2);

        // An invalid input value is a plan-time error on the inputs attribute.
        ws.write("main.tf", &main_tf("apocalyptic"));
        ws.run(&["plan", "-no-color"]).failure().contains("E0602").contains("apocalyptic");
        ws.write("main.tf", &main_tf("high"));

        // Drift: state edited by hand is repaired from the provider's own record at refresh.
        ws.tamper(TYPE, "digest", "sha256:tampered".into());
        ws.run(&["plan", "-refresh-only", "-detailed-exitcode", "-no-color"])
            .exit_code(2)
            .contains("changed outside of Terraform");
        ws.run(&["apply", "-refresh-only", "-auto-approve", "-no-color"]).success();
        assert_ne!(ws.attributes("sdsec_security_policy.api")["digest"], "sha256:tampered");
        ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

        // Import: forget the resource, import it by id, and the plan is empty again.
        ws.run(&["state", "rm", "sdsec_security_policy.api"]).success();
        ws.run(&["import", "-no-color", "sdsec_security_policy.api", "pol-0000000000000000"])
            .failure()
            .contains("no policy with id pol-0000000000000000");
        ws.run(&["import", "-no-color", "sdsec_security_policy.api", &id]).success();
        ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

        // Destroy removes the provider's record too; importing it afterwards fails clearly.
        ws.run(&["destroy", "-auto-approve", "-no-color"]).success();
        let record_dir = ws.dir.join("sdsec-state/policies");
        let left = std::fs::read_dir(&record_dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "destroy left policy records in {}", record_dir.display());
    }
}

/// The document of [`imports_are_read_under_base_dir_and_a_saved_plan_is_refused_once_they_change`]:
/// one unikernel, its policies imported from a shared fragment.
const IMPORTING: &str = "tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - common/baseline.yaml
topology_template:
  node_templates:
    api: { type: sdsec.nodes.Unikernel, properties: { port: 8080 } }
";

/// The shared fragment: audit, hardening and a firewall whose rate is an input of its own.
const BASELINE: &str = "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    rate: { type: integer, default: 100 }
  policies:
    - baseline_audit: { type: sdsec.policies.Audit, properties: { events: [authn_failure, authz_deny] } }
    - baseline_hardening: { type: sdsec.policies.Hardening, properties: { level: strict } }
    - baseline_firewall:
        type: sdsec.policies.Firewall
        properties: { rate_limit: { requests_per_second: { get_input: rate } } }
";

/// The rate limit `sdsec_security_policy.api` enforces on node `api`, from the state.
fn applied_rate(ws: &Workspace) -> serde_json::Value {
    let attrs = ws.attributes("sdsec_security_policy.api");
    let api: serde_json::Value =
        serde_json::from_str(attrs["enforcement"]["api"].as_str().expect("plan JSON")).expect("JSON");
    api["runtime"]["firewall"]["rate_limits"][0]["requests_per_second"].clone()
}

/// A document importing a shared fragment, read under `base_dir = path.module`: applied, no
/// change on the next plan, a change of the fragment alone planned and applied, a fragment
/// changed between `plan -out` and `apply PLAN` refused by the provider (naming the file,
/// nothing applied) rather than by Terraform's "inconsistent final plan", and a mistake in
/// the fragment reported by `plan` at the fragment's line.
#[test]
fn imports_are_read_under_base_dir_and_a_saved_plan_is_refused_once_they_change() {
    for cli in clis() {
        let ws = Workspace::new(&cli, "policy-imports");
        ws.write("main.tf", &(provider_tf("") + &policy_tf("  base_dir = path.module\n")));
        ws.write("policy.yaml", IMPORTING);
        ws.write("common/baseline.yaml", BASELINE);

        ws.run(&["apply", "-auto-approve", "-no-color"]).success();
        assert_eq!(applied_rate(&ws), 100, "[{}] the fragment's firewall is not in the plan", cli.name);
        let digest = ws.attributes("sdsec_security_policy.api")["digest"].clone();
        ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

        // Only the fragment changes: the plan shows the policy's change, apply takes it.
        ws.write("common/baseline.yaml", &BASELINE.replace("default: 100", "default: 50"));
        ws.run(&["plan", "-detailed-exitcode", "-no-color"])
            .exit_code(2)
            .contains("updated in-place")
            .contains("digest")
            .contains("requests_per_second");
        ws.run(&["apply", "-auto-approve", "-no-color"]).success();
        assert_eq!(applied_rate(&ws), 50);
        let digest_50 = ws.attributes("sdsec_security_policy.api")["digest"].clone();
        assert_ne!(digest_50, digest);
        ws.run(&["plan", "-detailed-exitcode", "-no-color"]).exit_code(0);

        // Changed between the plan and its apply: the provider refuses, nothing is applied.
        ws.write("common/baseline.yaml", &BASELINE.replace("default: 100", "default: 20"));
        ws.run(&["plan", "-no-color", "-out", "saved.tfplan"]).success().contains("1 to change");
        ws.write("common/baseline.yaml", &BASELINE.replace("default: 100", "default: 10"));
        ws.run(&["apply", "-no-color", "saved.tfplan"])
            .failure()
            .contains("Imported document changed since the plan")
            .contains("`common/baseline.yaml`")
            .contains("terraform plan` again")
            .lacks("inconsistent");
        assert_eq!(ws.attributes("sdsec_security_policy.api")["digest"], digest_50, "a stale plan was applied");
        ws.run(&["plan", "-no-color", "-out", "saved.tfplan"]).success().contains("1 to change");
        ws.run(&["apply", "-no-color", "saved.tfplan"]).success();
        assert_eq!(applied_rate(&ws), 10);

        // A mistake in the fragment: plan names the fragment, its line and column.
        ws.write("common/baseline.yaml", &BASELINE.replace("level: strict", "level: strictest"));
        ws.run(&["plan", "-no-color"])
            .failure()
            .contains("E0204")
            .contains("common/baseline.yaml:7:82")
            .contains("level: strictest");
    }
}

/// A topology of two nodes, one named as no Terraform identifier is; its audit imported.
const TOPOLOGY: &str = "tosca_definitions_version: tosca_simple_yaml_1_3
imports: [ common/audit.yaml ]
topology_template:
  node_templates:
    web-front:
      type: sdsec.nodes.Unikernel
      properties: { port: 8080 }
      requirements: [ { connects_to: db } ]
    db:
      type: sdsec.nodes.Unikernel
      properties: { port: 5432 }
";

/// What [`TOPOLOGY`] imports.
const AUDIT_FRAGMENT: &str = "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  policies:
    - audit: { type: sdsec.policies.Audit, properties: { events: [authz_deny] } }
";

/// `sdsec module` of a topology: the generated module is formatted as `terraform fmt` keeps
/// it, holds the documents the topology imports (read under `base_dir = path.module`),
/// validates, and plans one unikernel per node with its port and the imported audit (nothing
/// is applied). An import above the topology's directory is refused.
#[test]
fn a_module_generated_from_a_topology_validates_and_plans_a_unikernel_per_node() {
    let cli = clis().into_iter().next().expect("a Terraform CLI");
    let ws = Workspace::new(&cli, "module");
    ws.write("src/topology.yaml", TOPOLOGY);
    ws.write("src/common/audit.yaml", AUDIT_FRAGMENT);
    let sdsec = crate::harness::provider_dir().join("sdsec");
    let module = |topology: &str| {
        std::process::Command::new(&sdsec)
            .arg("module")
            .arg(ws.dir.join(topology))
            .arg("-o")
            .arg(ws.dir.join("stack"))
            .output()
            .expect("run sdsec module")
    };
    ws.write("src/climbing.yaml", &TOPOLOGY.replace("[ common/audit.yaml ]", "[ ../shared/audit.yaml ]"));
    ws.write("shared/audit.yaml", AUDIT_FRAGMENT);
    let out = module("src/climbing.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("imports ../shared/audit.yaml"), "{stderr}");
    assert!(!ws.dir.join("stack").exists(), "a module was written");

    let out = module("src/topology.yaml");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(ws.dir.join("stack/common/audit.yaml")).expect("copied"), AUDIT_FRAGMENT);
    // Moved away: the module reads its own copy.
    std::fs::remove_dir_all(ws.dir.join("src")).expect("remove the sources");
    let app = crate::unikernel::static_app();
    let root = format!(
        "{}\nmodule \"stack\" {{\n  source           = \"./stack\"\n  web_front_app_path = \"{app}\"\n  db_app_path        = \"{app}\"\n}}\n\n\
         output \"endpoints\" {{\n  value = [module.stack.web_front_endpoint, module.stack.db_endpoint]\n}}\n",
        provider_tf(""),
        app = app.display()
    );
    ws.write("main.tf", &root);
    ws.run(&["fmt", "-check", "-recursive", "-diff", "stack"]).success();
    ws.run(&["get", "-no-color"]).success();
    ws.run(&["validate", "-no-color"]).success().contains("The configuration is valid");
    ws.run(&["plan", "-no-color"])
        .success()
        .contains("module.stack.sdsec_unikernel.web_front will be created")
        .contains("name        = \"web-front\"")
        .contains("port = 8080")
        .contains("module.stack.sdsec_unikernel.db will be created")
        .contains("port = 5432")
        .contains("authz_deny")
        .contains("3 to add");
}
