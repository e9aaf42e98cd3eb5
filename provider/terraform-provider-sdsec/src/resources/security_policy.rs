//! `sdsec_security_policy`: a SecTOSCA document under management. Compiled at validate and
//! plan time, so every computed value is known in the plan and dependents see a policy
//! change in the same plan. The provider keeps a record of it in its state directory,
//! which import reads and refresh checks the Terraform state against.

use std::collections::BTreeMap;
use std::sync::Arc;

use tfplugin::{
    ApplyRequest, Attribute, AttributePath, Diagnostic, Diagnostics, PlanRequest, PlanResult, Resource, Schema,
    StateResult, Type, Value,
};

use crate::policy::{self, CompiledPolicy};
use crate::policy_store::{PolicyRecord, PolicyStore, is_policy_id};
use crate::provider::Shared;
use crate::values::{is_known, map_value, string, string_map};

pub const TYPE_NAME: &str = "sdsec_security_policy";

#[derive(Debug)]
pub struct SecurityPolicy {
    shared: Arc<Shared>,
}

impl SecurityPolicy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn store(&self) -> Result<PolicyStore, Diagnostics> {
        let config = self.shared.config()?;
        PolicyStore::open(&config.state_dir)
            .map_err(|e| Diagnostic::error("Policy store unavailable", e.to_string()).into())
    }
}

pub fn schema() -> Schema {
    Schema::new(0)
        .description(
            "A SecTOSCA document under management: security requirements for unikernels, compiled into one \
             enforcement plan per node. The document is compiled when Terraform validates and plans, so a \
             mistake fails `terraform validate` with the line and column in the document, and `digest`, \
             `summary` and `enforcement` are known in the plan. A change that leaves the compiled plans \
             unchanged (comments, formatting, key order) plans no change.",
        )
        .attribute(Attribute::string("id").computed().use_state_for_unknown().description(
            "Identifier of the provider's record of this policy (`pol-` and 16 hex digits); import takes it.",
        ))
        .attribute(Attribute::string("document").required().description(
            "The SecTOSCA document (YAML), usually `file(\"policies/api.yaml\")`. See the language reference for \
             types and properties.",
        ))
        .attribute(Attribute::new("inputs", Type::map(Type::String)).optional().description(
            "Values for the document's `topology_template.inputs`, as strings; they are converted to each \
             input's declared type and checked against its constraints.",
        ))
        .attribute(Attribute::string("digest").computed().description(
            "`sha256:` digest of the canonical JSON of all enforcement plans. It changes exactly when what is \
             enforced changes.",
        ))
        .attribute(
            Attribute::string("summary")
                .computed()
                .description("A short human summary of each node's enforcement plan, for review."),
        )
        .attribute(Attribute::new("enforcement", Type::map(Type::String)).computed().description(
            "Map from node template name to that node's enforcement plan as canonical JSON. Pass \
             `enforcement[\"api\"]` to `sdsec_unikernel.enforcement`; `jsondecode` it to read a setting.",
        ))
}

/// The document and inputs of a configuration or state, when both are known.
fn document_and_inputs(value: &Value) -> Option<(String, BTreeMap<String, String>)> {
    if !is_known(value, "document") || !is_known(value, "inputs") {
        return None;
    }
    Some((string(value, "document")?, string_map(value, "inputs")?))
}

fn warnings(compiled: &CompiledPolicy, document: &str, inputs: &BTreeMap<String, String>) -> Diagnostics {
    let source = sectosca::Source::new(policy::SOURCE_NAME, document);
    policy::to_diagnostics(&source, &compiled.warnings, inputs, &AttributePath::root())
}

/// State for a record: the record's document and inputs, with what they compile to now.
fn state_from_record(record: &PolicyRecord) -> Result<Value, Diagnostics> {
    let compiled =
        policy::compile_policy(&record.document, &record.inputs, &AttributePath::root()).map_err(|mut diags| {
            diags.push(Diagnostic::error(
                "Stored policy no longer compiles",
                format!(
                    "The provider's record {} does not compile with this provider version; fix the document and apply.",
                    record.id
                ),
            ));
            diags
        })?;
    let inputs = if record.inputs.is_empty() { Value::Null } else { map_value(&record.inputs) };
    let mut state = Value::object([
        ("id", Value::from(record.id.as_str())),
        ("document", Value::from(record.document.as_str())),
        ("inputs", inputs),
        ("digest", Value::Null),
        ("summary", Value::Null),
        ("enforcement", Value::Null),
    ]);
    compiled.apply_to(&mut state);
    Ok(state)
}

#[tfplugin::async_trait]
impl Resource for SecurityPolicy {
    fn type_name(&self) -> &str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        // Inputs that come from variables or other resources may be unknown here; plan
        // checks the document with them once they are known.
        let Some((document, inputs)) = document_and_inputs(config) else { return Diagnostics::new() };
        match policy::compile_policy(&document, &inputs, &AttributePath::root()) {
            Ok(compiled) => warnings(&compiled, &document, &inputs),
            Err(diags) => diags,
        }
    }

    async fn plan(&self, request: PlanRequest) -> PlanResult {
        let prior = request.prior_state.clone();
        let mut result = request.into_result();
        let Some((document, inputs)) = document_and_inputs(&result.planned_state) else {
            for attribute in ["digest", "summary", "enforcement"] {
                result.planned_state.set(attribute, Value::unknown());
            }
            return result;
        };
        let compiled = match policy::compile_policy(&document, &inputs, &AttributePath::root()) {
            Ok(compiled) => compiled,
            Err(diags) => {
                result.diagnostics = diags;
                return result;
            }
        };
        // Same plans as before: keep the prior state whole, so that an edit to comments,
        // formatting or an unused input is not a change.
        if !prior.is_null() && string(&prior, "digest").as_deref() == Some(compiled.digest.as_str()) {
            result.planned_state = prior;
            return result;
        }
        compiled.apply_to(&mut result.planned_state);
        result.diagnostics = warnings(&compiled, &document, &inputs);
        result
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        let store = match self.store() {
            Ok(store) => store,
            Err(diags) => return StateResult::failed(Value::Null, diags),
        };
        let mut state = request.planned_state;
        let id = match PolicyStore::new_id() {
            Ok(id) => id,
            Err(e) => {
                return StateResult::failed(Value::Null, Diagnostic::error("Cannot create policy", e.to_string()));
            }
        };
        state.set("id", Value::from(id.as_str()));
        self.write_record(&state, store)
            .map_or_else(|diags| StateResult::failed(Value::Null, diags), |()| StateResult::new(state))
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        let store = match self.store() {
            Ok(store) => store,
            Err(diags) => return StateResult::failed(current_state, diags),
        };
        let Some(id) = string(&current_state, "id") else { return StateResult::new(Value::Null) };
        match store.get(&id) {
            // Removed outside Terraform: drop it from state so the next plan creates it.
            Ok(None) => StateResult::new(Value::Null),
            Ok(Some(record)) => match state_from_record(&record) {
                Ok(state) => StateResult { private, ..StateResult::new(state) },
                Err(diags) => StateResult::failed(current_state, diags),
            },
            Err(e) => {
                StateResult::failed(current_state, Diagnostic::error("Cannot read the policy record", e.to_string()))
            }
        }
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let prior = request.prior_state.clone();
        let store = match self.store() {
            Ok(store) => store,
            Err(diags) => return StateResult::failed(prior, diags),
        };
        let state = request.planned_state;
        self.write_record(&state, store)
            .map_or_else(|diags| StateResult::failed(prior, diags), |()| StateResult::new(state))
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        let Some(id) = string(&request.prior_state, "id") else { return Diagnostics::new() };
        match self.store().and_then(|store| {
            store.remove(&id).map_err(|e| Diagnostic::error("Cannot delete the policy record", e.to_string()).into())
        }) {
            Ok(()) => Diagnostics::new(),
            Err(diags) => diags,
        }
    }

    async fn import(&self, id: &str) -> StateResult {
        if !is_policy_id(id) {
            return StateResult::failed(
                Value::Null,
                Diagnostic::error(
                    "Invalid policy id",
                    format!("`{id}` is not a policy id: expected `pol-` and 16 hex digits, as in the `id` attribute."),
                ),
            );
        }
        let store = match self.store() {
            Ok(store) => store,
            Err(diags) => return StateResult::failed(Value::Null, diags),
        };
        match store.get(id) {
            Ok(Some(record)) => match state_from_record(&record) {
                Ok(state) => StateResult::new(state),
                Err(diags) => StateResult::failed(Value::Null, diags),
            },
            Ok(None) => StateResult::failed(
                Value::Null,
                Diagnostic::error(
                    "Policy not found",
                    format!(
                        "There is no policy with id {id} in this provider's state directory; check `state_dir` and the id."
                    ),
                ),
            ),
            Err(e) => {
                StateResult::failed(Value::Null, Diagnostic::error("Cannot read the policy record", e.to_string()))
            }
        }
    }
}

impl SecurityPolicy {
    fn write_record(&self, state: &Value, store: PolicyStore) -> Result<(), Diagnostics> {
        let (document, inputs) = document_and_inputs(state).ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Policy not known",
                "The document or inputs are still unknown at apply.",
            ))
        })?;
        let record = PolicyRecord {
            id: string(state, "id").unwrap_or_default(),
            document,
            inputs,
            digest: string(state, "digest").unwrap_or_default(),
        };
        store.put(&record).map_err(|e| Diagnostic::error("Cannot write the policy record", e.to_string()).into())
    }
}
