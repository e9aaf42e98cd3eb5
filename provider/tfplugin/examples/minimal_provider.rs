//! A complete, tiny provider on this framework: one resource, one data
//! source, one function. Build it, put the binary in a directory named in
//! a `dev_overrides` block for `example/example`, and run Terraform.
//!
//!     cargo build -p sdsec-tfplugin --example minimal_provider
//!     cp target/debug/examples/minimal_provider <dir>/terraform-provider-example

use std::process::ExitCode;
use std::sync::Arc;

use tfplugin::validators::IntegerBetween;
use tfplugin::{
    ApplyRequest, Attribute, DataSource, Diagnostics, Function, FunctionError, FunctionSignature, Parameter,
    PlanRequest, PlanResult, Provider, Resource, Schema, StateResult, Type, Value,
};

struct Example;

#[tfplugin::async_trait]
impl Provider for Example {
    fn type_name(&self) -> &str {
        "example"
    }

    fn schema(&self) -> Schema {
        Schema::new(0).attribute(Attribute::string("greeting").optional().description("Unused."))
    }

    async fn configure(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(Widget)]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![Arc::new(Echo)]
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(Shout)]
    }
}

struct Widget;

#[tfplugin::async_trait]
impl Resource for Widget {
    fn type_name(&self) -> &str {
        "example_widget"
    }

    fn schema(&self) -> Schema {
        Schema::new(0)
            .description("A widget that exists only in state.")
            .attribute(Attribute::string("id").computed().use_state_for_unknown())
            .attribute(Attribute::string("name").required().requires_replace())
            .attribute(Attribute::number("size").default(3).validator(IntegerBetween { min: 1, max: 8 }))
            .attribute(Attribute::string("label").computed().description("Known at plan time."))
            .attribute(Attribute::string("note").optional())
    }

    async fn plan(&self, request: PlanRequest) -> PlanResult {
        let label = match request.planned_state.get("name") {
            Some(Value::String(name)) => Value::from(format!("widget {name}")),
            _ => Value::unknown(),
        };
        let mut result = request.into_result();
        result.planned_state.set("label", label);
        result
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        let mut state = request.planned_state;
        let name = state.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        state.set("id", Value::from(format!("w-{name}")));
        StateResult::new(state)
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        StateResult { private, ..StateResult::new(current_state) }
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        StateResult::new(request.planned_state)
    }

    async fn delete(&self, _request: ApplyRequest) -> Diagnostics {
        Diagnostics::new()
    }

    async fn import(&self, id: &str) -> StateResult {
        StateResult::new(Value::object([("id", Value::from(id))]))
    }
}

struct Echo;

#[tfplugin::async_trait]
impl DataSource for Echo {
    fn type_name(&self) -> &str {
        "example_echo"
    }

    fn schema(&self) -> Schema {
        Schema::new(0)
            .attribute(Attribute::string("input").required())
            .attribute(Attribute::string("output").computed())
    }

    async fn read(&self, mut config: Value) -> (Value, Diagnostics) {
        let input = config.get("input").cloned().unwrap_or(Value::Null);
        config.set("output", input);
        (config, Diagnostics::new())
    }
}

struct Shout;

#[tfplugin::async_trait]
impl Function for Shout {
    fn name(&self) -> &str {
        "shout"
    }

    fn signature(&self) -> FunctionSignature {
        FunctionSignature {
            parameters: vec![Parameter::new("text", Type::String, "Text to upper-case.")],
            variadic: None,
            return_type: Type::String,
            summary: "Upper-cases text".to_owned(),
            description: "Returns `text` in upper case.".to_owned(),
        }
    }

    async fn call(&self, arguments: Vec<Value>) -> Result<Value, FunctionError> {
        match arguments.first().and_then(Value::as_str) {
            Some("") | None => Err(FunctionError::in_argument("text must not be empty", 0)),
            Some(text) => Ok(Value::from(text.to_uppercase())),
        }
    }
}

fn main() -> ExitCode {
    tfplugin::serve::run(Arc::new(Example), tfplugin::ServeOptions::new("example/example"))
}
