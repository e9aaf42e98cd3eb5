//! `data.sdsec_policy_document`: compiles a SecTOSCA document without managing anything.

mod model;
pub mod schema;

use tfplugin::{AttributePath, DataSource, Diagnostic, Diagnostics, Schema, Value};

use self::model::Model;
use crate::policy;

pub use schema::schema;

pub const TYPE_NAME: &str = "sdsec_policy_document";

#[derive(Debug)]
pub struct PolicyDocument;

#[tfplugin::async_trait]
impl DataSource for PolicyDocument {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, config: Value) -> (Value, Diagnostics) {
        let mut model = match Model::decode(&config) {
            Ok(model) => model,
            Err(e) => return (config, Diagnostic::from(e).into()),
        };
        // Known only after apply: Terraform reads the data source again then.
        let (Some((document, inputs)), Some(base_dir)) = (model.policy.source(), model.policy.base_dir()) else {
            return (config, Diagnostics::new());
        };
        match policy::compile_policy(&document, &inputs, &base_dir, &AttributePath::root()) {
            Ok(compiled) => {
                model.policy.compiled(&compiled);
                (model.encode(), Diagnostics::new())
            }
            Err(diags) => (config, diags),
        }
    }
}
