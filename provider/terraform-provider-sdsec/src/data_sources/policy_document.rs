//! `data.sdsec_policy_document`: compiles a SecTOSCA document without managing anything.

use tfplugin::{Attribute, AttributePath, DataSource, Diagnostics, Schema, Type, Value};

use crate::policy;
use crate::values::{string, string_map};

pub const TYPE_NAME: &str = "sdsec_policy_document";

#[derive(Debug)]
pub struct PolicyDocument;

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "Compiles a SecTOSCA document and exposes its digest, summary and per-node enforcement plans, \
             without creating anything. Useful to check a policy in a module, or to feed `enforcement` to \
             unikernels without keeping a policy record.",
        )
        .attribute(Attribute::string("document").required().description("The SecTOSCA document (YAML)."))
        .attribute(
            Attribute::new("inputs", Type::map(Type::String))
                .optional()
                .description("Values for the document's inputs, as strings."),
        )
        .attribute(Attribute::string("digest").computed().description("`sha256:` digest of all enforcement plans."))
        .attribute(Attribute::string("summary").computed().description("A short human summary of each node's plan."))
        .attribute(
            Attribute::new("enforcement", Type::map(Type::String))
                .computed()
                .description("Map from node template name to that node's enforcement plan as canonical JSON."),
        )
}

#[tfplugin::async_trait]
impl DataSource for PolicyDocument {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, mut config: Value) -> (Value, Diagnostics) {
        let (Some(document), Some(inputs)) = (string(&config, "document"), string_map(&config, "inputs")) else {
            return (config, Diagnostics::new());
        };
        match policy::compile_policy(&document, &inputs, &AttributePath::root()) {
            Ok(compiled) => {
                compiled.apply_to(&mut config);
                (config, Diagnostics::new())
            }
            Err(diags) => (config, diags),
        }
    }
}
