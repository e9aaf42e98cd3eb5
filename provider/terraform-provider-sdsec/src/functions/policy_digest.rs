//! `provider::sdsec::policy_digest(document)`: the digest a document compiles to, with the
//! inputs' defaults.

use std::collections::BTreeMap;

use tfplugin::{Function, FunctionError, FunctionSignature, Parameter, Type, Value};

use crate::policy;

pub const NAME: &str = "policy_digest";

#[derive(Debug)]
pub struct PolicyDigest;

pub fn signature() -> FunctionSignature {
    FunctionSignature {
        parameters: vec![Parameter::new("document", Type::String, "A SecTOSCA document (YAML).")],
        variadic: None,
        return_type: Type::String,
        summary: "Digest of a SecTOSCA document's enforcement plans".into(),
        description: "Compiles `document` with its inputs' defaults and returns the `sha256:` digest of its \
                      enforcement plans: the same value as `sdsec_security_policy.digest` for the same document \
                      and no inputs. Fails with the compiler's first error when the document is invalid."
            .into(),
    }
}

#[tfplugin::async_trait]
impl Function for PolicyDigest {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> FunctionSignature {
        signature()
    }

    async fn call(&self, arguments: Vec<Value>) -> Result<Value, FunctionError> {
        let document = arguments
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| FunctionError::in_argument("document must be a string", 0))?;
        let (_, compilation) = policy::compile(document, &BTreeMap::new());
        match compilation.errors().next() {
            None => Ok(Value::from(compilation.digest())),
            Some(first) => {
                let count = compilation.errors().count();
                Err(FunctionError::in_argument(format!("the document has {count} error(s); first: {first}"), 0))
            }
        }
    }
}
