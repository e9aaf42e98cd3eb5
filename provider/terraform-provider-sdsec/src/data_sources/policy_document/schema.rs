//! The schema of `data.sdsec_policy_document`.

use tfplugin::{Attribute, Schema, Type};

use crate::policy::fields::{BASE_DIR, DIGEST, DOCUMENT, ENFORCEMENT, INPUTS, SUMMARY};

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "Compiles a SecTOSCA document and exposes its digest, summary and per-node enforcement plans, \
             without creating anything. Useful to check a policy in a module, or to feed `enforcement` to \
             unikernels without keeping a policy record.",
        )
        .attribute(Attribute::string(DOCUMENT).required().description("The SecTOSCA document (YAML)."))
        .attribute(Attribute::new(INPUTS, Type::map(Type::String)).optional().sensitive().description(
            "Values for the document's inputs, as strings. Sensitive: inputs can carry secrets, so \
                     Terraform does not show them; what they change shows in `summary` and `enforcement`.",
        ))
        .attribute(Attribute::string(BASE_DIR).optional().description(crate::policy::BASE_DIR_DESCRIPTION))
        .attribute(Attribute::string(DIGEST).computed().description("`sha256:` digest of all enforcement plans."))
        .attribute(Attribute::string(SUMMARY).computed().description("A short human summary of each node's plan."))
        .attribute(Attribute::new(ENFORCEMENT, Type::map(Type::String)).computed().description(
            "Map from node template name to that node's enforcement plan: its canonical JSON after one \
                     space, as `sdsec_security_policy` gives it.",
        ))
}
