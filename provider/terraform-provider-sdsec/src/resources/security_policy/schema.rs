//! The schema of `sdsec_security_policy`.

use tfplugin::{Attribute, Schema, Type};

use crate::policy::fields::{BASE_DIR, DIGEST, DOCUMENT, ENFORCEMENT, INPUTS, SUMMARY};

pub const ID: &str = "id";

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "A SecTOSCA document under management: security requirements for unikernels, compiled into one \
             enforcement plan per node. The document is compiled when Terraform validates and plans, so a \
             mistake fails `terraform validate` with the line and column in the document, and `digest`, \
             `summary` and `enforcement` are known in the plan. A change that leaves the compiled plans \
             unchanged (comments, formatting, key order) plans no change.",
        )
        .attribute(Attribute::string(ID).computed().use_state_for_unknown().description(
            "Identifier of the provider's record of this policy (`pol-` and 16 hex digits); import takes it.",
        ))
        .attribute(Attribute::string(DOCUMENT).required().description(
            "The SecTOSCA document (YAML), usually `file(\"policies/api.yaml\")`. See the language reference for \
             types and properties.",
        ))
        .attribute(Attribute::new(INPUTS, Type::map(Type::String)).optional().sensitive().description(
            "Values for the document's `topology_template.inputs`, as strings; they are converted to each \
             input's declared type and checked against its constraints. Sensitive: inputs can carry secrets, \
             so Terraform does not show them in plans or output; what they change shows in `summary` and \
             `enforcement`.",
        ))
        .attribute(Attribute::string(BASE_DIR).optional().description(crate::policy::BASE_DIR_DESCRIPTION))
        .attribute(Attribute::string(DIGEST).computed().description(
            "`sha256:` digest of the canonical JSON of all enforcement plans. It changes exactly when what is \
             enforced changes.",
        ))
        .attribute(Attribute::string(SUMMARY).computed().description(
            "A short human summary of each node's enforcement plan, one line per node: its size and each \
                     mechanism in a few words (`api: port 8080, 128 MiB, 1 vCPU; authentication: bearer, 1 \
                     principal; ...`). `sdsec compile --format summary` prints a longer one.",
        ))
        .attribute(Attribute::new(ENFORCEMENT, Type::map(Type::String)).computed().description(
            "Map from node template name to that node's enforcement plan: its canonical JSON after one space, \
             which keeps Terraform from expanding it field by field in every plan (`summary` says in short what \
             each node enforces; `sdsec review` shows what a saved plan changes inside each guest). Pass \
             `enforcement[\"api\"]` to `sdsec_unikernel.enforcement`; `jsondecode` it to read a setting.",
        ))
}
