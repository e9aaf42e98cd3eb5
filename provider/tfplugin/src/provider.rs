//! The traits a provider implements. The framework owns the protocol, the
//! codecs and the planning order; implementations see decoded [`Value`]s
//! and answer with values and [`Diagnostics`].

use std::sync::Arc;

use crate::{AttributePath, Diagnostic, Diagnostics, Schema, Type, Value};

/// The provider: its configuration and what it offers. Terraform calls RPCs
/// concurrently, so implementations share state through `Sync` types.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The local name, e.g. `"sdsec"`; resource type names start with it.
    fn type_name(&self) -> &str;

    /// Schema of the `provider` block.
    fn schema(&self) -> Schema;

    /// Extra checks of the provider block, after attribute validators.
    async fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// Receives the provider block before any resource operation. Values
    /// may still be unknown here when they depend on other resources.
    async fn configure(&self, config: &Value) -> Diagnostics;

    /// Called when Terraform asks to stop (Ctrl-C): cancel long operations.
    /// The plugin keeps serving; Terraform closes it afterwards.
    async fn stop(&self) -> Result<(), String> {
        Ok(())
    }

    /// Called once at start-up; type names must be unique.
    fn resources(&self) -> Vec<Arc<dyn Resource>>;

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        Vec::new()
    }
}

/// Input of [`Resource::plan`]: the values Terraform sent, and the plan as
/// the framework computed it (defaults, unknowns, modifiers applied).
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Null when the resource is being created.
    pub prior_state: Value,
    /// The configuration, with unknowns where it depends on other resources.
    pub config: Value,
    pub prior_private: Vec<u8>,
    /// The framework's plan so far; the default hook returns it unchanged.
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
}

impl PlanRequest {
    pub fn is_create(&self) -> bool {
        self.prior_state.is_null()
    }

    /// The plan as the framework made it, for hooks that only adjust it.
    pub fn into_result(self) -> PlanResult {
        PlanResult {
            planned_state: self.planned_state,
            requires_replace: self.requires_replace,
            planned_private: self.prior_private,
            diagnostics: Diagnostics::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlanResult {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub planned_private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

/// Input of create, update and delete.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// Null for create.
    pub prior_state: Value,
    /// Null for delete.
    pub planned_state: Value,
    pub config: Value,
    pub planned_private: Vec<u8>,
}

/// State after an operation, with opaque private data Terraform stores
/// beside it and hands back on the next call.
#[derive(Debug, Clone)]
pub struct StateResult {
    /// Null from `read` means the object is gone (Terraform plans a create).
    pub state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

impl StateResult {
    pub fn new(state: Value) -> Self {
        StateResult { state, private: Vec::new(), diagnostics: Diagnostics::new() }
    }

    /// An error; `state` is what exists now (null if nothing was created).
    pub fn failed(state: Value, diagnostics: impl Into<Diagnostics>) -> Self {
        StateResult { state, private: Vec::new(), diagnostics: diagnostics.into() }
    }
}

/// A managed resource type such as `sdsec_unikernel`.
#[async_trait::async_trait]
pub trait Resource: Send + Sync + 'static {
    /// Full type name, e.g. `"sdsec_unikernel"`.
    fn type_name(&self) -> &str;

    fn schema(&self) -> Schema;

    /// Extra checks of a configuration, after attribute validators. Values
    /// may be unknown.
    async fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// Last step of planning: may fill computed values known at plan time
    /// and add replacement paths. Not called when destroying.
    async fn plan(&self, request: PlanRequest) -> PlanResult {
        request.into_result()
    }

    async fn create(&self, request: ApplyRequest) -> StateResult;

    /// Refreshes `current_state` from the real world.
    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult;

    async fn update(&self, request: ApplyRequest) -> StateResult;

    async fn delete(&self, request: ApplyRequest) -> Diagnostics;

    /// `terraform import` / `import` blocks: the state to start from (at
    /// least the id attribute); Terraform calls `read` next.
    async fn import(&self, id: &str) -> StateResult {
        let _ = id;
        StateResult::failed(
            Value::Null,
            Diagnostic::error(
                format!("{} cannot be imported", self.type_name()),
                "This resource type does not support import.",
            ),
        )
    }

    /// Converts state stored by schema `version` (older than the current
    /// one) into a value of the current schema's type.
    async fn upgrade_state(&self, version: i64, _raw_state: &serde_json::Value) -> Result<Value, Diagnostics> {
        Err(Diagnostic::error(
            "Unable to upgrade resource state",
            format!(
                "{} has no upgrade from schema version {version}. Remove the \
                 resource from state and import it again.",
                self.type_name()
            ),
        )
        .into())
    }
}

/// A data source such as `sdsec_policy_document`.
#[async_trait::async_trait]
pub trait DataSource: Send + Sync + 'static {
    fn type_name(&self) -> &str;

    fn schema(&self) -> Schema;

    async fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// Returns the state: the configuration with computed attributes set.
    async fn read(&self, config: Value) -> (Value, Diagnostics);
}

/// One parameter of a provider function.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub typ: Type,
    /// Markdown.
    pub description: String,
    pub allow_null: bool,
    /// When false, Terraform answers unknown itself without calling.
    pub allow_unknown: bool,
}

impl Parameter {
    pub fn new(name: impl Into<String>, typ: Type, description: impl Into<String>) -> Self {
        Parameter { name: name.into(), typ, description: description.into(), allow_null: false, allow_unknown: false }
    }
}

#[derive(Debug, Clone)]
pub struct FunctionSignature {
    pub parameters: Vec<Parameter>,
    /// Takes any number of further arguments of this parameter's type.
    pub variadic: Option<Parameter>,
    pub return_type: Type,
    pub summary: String,
    /// Markdown.
    pub description: String,
}

/// A function error, shown by Terraform against the argument at `argument`
/// (0-based) when set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct FunctionError {
    pub text: String,
    pub argument: Option<usize>,
}

impl FunctionError {
    pub fn new(text: impl Into<String>) -> Self {
        FunctionError { text: text.into(), argument: None }
    }

    pub fn in_argument(text: impl Into<String>, argument: usize) -> Self {
        FunctionError { text: text.into(), argument: Some(argument) }
    }
}

/// A provider function, `provider::sdsec::<name>(…)`.
#[async_trait::async_trait]
pub trait Function: Send + Sync + 'static {
    fn name(&self) -> &str;

    fn signature(&self) -> FunctionSignature;

    /// Arguments are decoded with the parameter types, in order.
    async fn call(&self, arguments: Vec<Value>) -> Result<Value, FunctionError>;
}
