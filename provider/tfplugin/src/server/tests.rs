//! An example provider exercising the framework through the RPC handlers,
//! with msgpack on the wire as Terraform sends it (no network).

use std::sync::Arc;

use magma_protocol::tfplugin6 as proto;

use super::ProviderServer;
use crate::validators::{IntegerBetween, NonEmpty};
use crate::value::{decode_msgpack, encode_msgpack};
use crate::{
    ApplyRequest, Attribute, AttributePath, DataSource, Diagnostic, Diagnostics, Function, FunctionError,
    FunctionSignature, Parameter, PlanRequest, PlanResult, Provider, Resource, Schema, StateResult, Type, Value,
};

struct TestProvider;

#[async_trait::async_trait]
impl Provider for TestProvider {
    fn type_name(&self) -> &str {
        "test"
    }

    fn schema(&self) -> Schema {
        Schema::new(0).attribute(Attribute::string("region").optional())
    }

    async fn configure(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(Thing)]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(Shout)]
    }
}

/// `test_thing`: a resource with one of each kind of attribute.
struct Thing;

fn thing_schema() -> Schema {
    Schema::new(1)
        .description("A thing.")
        .attribute(Attribute::string("id").computed().use_state_for_unknown())
        .attribute(Attribute::string("name").required().requires_replace().validator(NonEmpty))
        .attribute(Attribute::number("size").default(3).validator(IntegerBetween { min: 1, max: 8 }))
        .attribute(Attribute::string("digest").computed())
        .attribute(Attribute::string("endpoint").computed())
        .attribute(Attribute::string("note").optional())
        .attribute(Attribute::string("secret").optional().sensitive())
}

#[async_trait::async_trait]
impl Resource for Thing {
    fn type_name(&self) -> &str {
        "test_thing"
    }

    fn schema(&self) -> Schema {
        thing_schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        if config.get("note").and_then(Value::as_str) == Some("forbidden") {
            diagnostics.attribute_error(AttributePath::attr("note"), "Forbidden note", "Choose another note.");
        }
        diagnostics
    }

    /// The digest is known at plan time: it depends on the name only.
    async fn plan(&self, request: PlanRequest) -> PlanResult {
        let digest = match request.planned_state.get("name") {
            Some(Value::String(name)) => Value::from(format!("sha-{name}")),
            _ => Value::unknown(),
        };
        let mut result = request.into_result();
        result.planned_state.set("digest", digest);
        result
    }

    async fn create(&self, request: ApplyRequest) -> StateResult {
        let mut state = request.planned_state;
        let name = state.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        state.set("id", Value::from(format!("id-{name}")));
        state.set("endpoint", Value::from("127.0.0.1:1"));
        StateResult { state, private: b"created".to_vec(), diagnostics: Diagnostics::new() }
    }

    async fn read(&self, current_state: Value, private: Vec<u8>) -> StateResult {
        if current_state.get("id").and_then(Value::as_str) == Some("gone") {
            return StateResult::new(Value::Null);
        }
        StateResult { private, ..StateResult::new(current_state) }
    }

    async fn update(&self, request: ApplyRequest) -> StateResult {
        let mut state = request.planned_state;
        state.set("endpoint", Value::from("127.0.0.1:2"));
        StateResult::new(state)
    }

    async fn delete(&self, request: ApplyRequest) -> Diagnostics {
        if request.prior_state.get("name").and_then(Value::as_str) == Some("stuck") {
            return Diagnostic::error("Cannot delete", "It is stuck.").into();
        }
        Diagnostics::new()
    }

    async fn import(&self, id: &str) -> StateResult {
        StateResult::new(Value::object([("id", Value::from(id))]))
    }

    async fn upgrade_state(&self, version: i64, raw_state: &serde_json::Value) -> Result<Value, Diagnostics> {
        // Version 0 called the name "label".
        let label = raw_state.get("label").and_then(|label| label.as_str());
        match (version, label) {
            (0, Some(label)) => Ok(Value::object([
                ("id", Value::from(format!("id-{label}"))),
                ("name", Value::from(label)),
                ("size", Value::from(3)),
            ])),
            _ => Err(Diagnostic::error("Cannot upgrade", "No label.").into()),
        }
    }
}

struct Shout;

#[async_trait::async_trait]
impl Function for Shout {
    fn name(&self) -> &str {
        "shout"
    }

    fn signature(&self) -> FunctionSignature {
        FunctionSignature {
            parameters: vec![Parameter::new("text", Type::String, "What to shout.")],
            variadic: None,
            return_type: Type::String,
            summary: "Upper-cases text".into(),
            description: "Returns `text` in upper case.".into(),
        }
    }

    async fn call(&self, arguments: Vec<Value>) -> Result<Value, FunctionError> {
        match arguments.first().and_then(Value::as_str) {
            Some("") => Err(FunctionError::in_argument("text must not be empty", 0)),
            Some(text) => Ok(Value::from(text.to_uppercase())),
            None => Err(FunctionError::in_argument("text must be a string", 0)),
        }
    }
}

fn server() -> ProviderServer {
    ProviderServer::new(Arc::new(TestProvider)).expect("valid provider")
}

fn wire(value: &Value) -> Option<proto::DynamicValue> {
    let msgpack = encode_msgpack(value, &thing_schema().value_type()).expect("encodable");
    Some(proto::DynamicValue { msgpack, json: Vec::new() })
}

fn unwire(dynamic: Option<proto::DynamicValue>) -> Value {
    let bytes = dynamic.map(|dynamic| dynamic.msgpack).unwrap_or_default();
    decode_msgpack(&bytes, &thing_schema().value_type()).expect("decodable")
}

/// A configuration as Terraform sends it: computed attributes null.
fn config(name: &str, size: Value, note: Value) -> Value {
    Value::object([
        ("id", Value::Null),
        ("name", Value::from(name)),
        ("size", size),
        ("digest", Value::Null),
        ("endpoint", Value::Null),
        ("note", note),
        ("secret", Value::Null),
    ])
}

fn existing(name: &str) -> Value {
    Value::object([
        ("id", Value::from(format!("id-{name}"))),
        ("name", Value::from(name)),
        ("size", Value::from(3)),
        ("digest", Value::from(format!("sha-{name}"))),
        ("endpoint", Value::from("127.0.0.1:1")),
        ("note", Value::Null),
        ("secret", Value::Null),
    ])
}

async fn plan(prior: &Value, proposed: &Value, config: &Value) -> proto::plan_resource_change::Response {
    let request = proto::plan_resource_change::Request {
        type_name: "test_thing".into(),
        prior_state: wire(prior),
        proposed_new_state: wire(proposed),
        config: wire(config),
        prior_private: b"private".to_vec(),
        ..Default::default()
    };
    server().plan_resource_change(request).await.expect("plan answers")
}

fn paths(response_paths: &[proto::AttributePath]) -> Vec<proto::AttributePath> {
    response_paths.to_vec()
}

#[tokio::test]
async fn create_plan_applies_default_unknowns_and_hook() {
    let config = config("api", Value::Null, Value::Null);
    let response = plan(&Value::Null, &config, &config).await;
    assert!(response.diagnostics.is_empty());
    let planned = unwire(response.planned_state);
    assert_eq!(planned.get("size"), Some(&Value::from(3)));
    assert_eq!(planned.get("id"), Some(&Value::unknown()));
    assert_eq!(planned.get("endpoint"), Some(&Value::unknown()));
    assert_eq!(planned.get("digest"), Some(&Value::from("sha-api")));
    assert!(response.requires_replace.is_empty());
    assert_eq!(response.planned_private, b"private");
}

#[tokio::test]
async fn unchanged_configuration_plans_no_diff() {
    let prior = existing("api");
    let response = plan(&prior, &prior, &config("api", Value::Null, Value::Null)).await;
    assert_eq!(unwire(response.planned_state), prior);
    assert!(response.requires_replace.is_empty());
}

#[tokio::test]
async fn in_place_update_keeps_id_and_marks_endpoint_unknown() {
    let prior = existing("api");
    let mut proposed = prior.clone();
    proposed.set("note", Value::from("hi"));
    let response = plan(&prior, &proposed, &config("api", Value::Null, Value::from("hi"))).await;
    let planned = unwire(response.planned_state);
    assert_eq!(planned.get("id"), Some(&Value::from("id-api")));
    assert_eq!(planned.get("endpoint"), Some(&Value::unknown()));
    assert_eq!(planned.get("note"), Some(&Value::from("hi")));
    assert!(response.requires_replace.is_empty());
}

#[tokio::test]
async fn renaming_requires_replace_and_hook_recomputes_digest() {
    let prior = existing("api");
    let mut proposed = prior.clone();
    proposed.set("name", Value::from("web"));
    let response = plan(&prior, &proposed, &config("web", Value::Null, Value::Null)).await;
    assert_eq!(paths(&response.requires_replace), vec![AttributePath::attr("name").to_proto()]);
    let planned = unwire(response.planned_state);
    assert_eq!(planned.get("digest"), Some(&Value::from("sha-web")));
}

#[tokio::test]
async fn destroy_plans_null() {
    let response = plan(&existing("api"), &Value::Null, &Value::Null).await;
    assert_eq!(unwire(response.planned_state), Value::Null);
    assert_eq!(response.planned_private, b"private");
}

#[tokio::test]
async fn user_errors_are_diagnostics_with_attribute_paths() {
    let request = proto::validate_resource_config::Request {
        type_name: "test_thing".into(),
        config: wire(&config("", Value::from(9), Value::from("forbidden"))),
        client_capabilities: None,
    };
    let response = server().validate_resource_config(request).await.expect("answers");
    let mut attributes: Vec<proto::AttributePath> =
        response.diagnostics.iter().filter_map(|d| d.attribute.clone()).collect();
    attributes.sort_by_key(|path| format!("{path:?}"));
    let mut expected: Vec<proto::AttributePath> =
        ["name", "note", "size"].into_iter().map(|name| AttributePath::attr(name).to_proto()).collect();
    expected.sort_by_key(|path| format!("{path:?}"));
    assert_eq!(attributes, expected);
    assert!(response.diagnostics.iter().all(|d| d.severity == proto::diagnostic::Severity::Error as i32));
}

#[tokio::test]
async fn unknown_values_are_not_validated() {
    let request = proto::validate_resource_config::Request {
        type_name: "test_thing".into(),
        config: wire(&config("api", Value::unknown(), Value::Null)),
        client_capabilities: None,
    };
    let response = server().validate_resource_config(request).await.expect("answers");
    assert!(response.diagnostics.is_empty());
}

#[tokio::test]
async fn undecodable_value_is_a_grpc_error() {
    let request = proto::plan_resource_change::Request {
        type_name: "test_thing".into(),
        proposed_new_state: Some(proto::DynamicValue { msgpack: vec![0x81, 0xa1, b'z', 0xc0], json: Vec::new() }),
        ..Default::default()
    };
    let status = server().plan_resource_change(request).await.expect_err("a gRPC error");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn unknown_resource_type_is_a_diagnostic() {
    let request = proto::plan_resource_change::Request { type_name: "test_nope".into(), ..Default::default() };
    let response = server().plan_resource_change(request).await.expect("answers");
    assert_eq!(response.diagnostics.len(), 1);
}

async fn apply(prior: &Value, planned: &Value) -> proto::apply_resource_change::Response {
    let request = proto::apply_resource_change::Request {
        type_name: "test_thing".into(),
        prior_state: wire(prior),
        planned_state: wire(planned),
        config: wire(&config("api", Value::Null, Value::Null)),
        ..Default::default()
    };
    server().apply_resource_change(request).await.expect("apply answers")
}

#[tokio::test]
async fn create_fills_computed_values_and_private() {
    let planned =
        plan(&Value::Null, &config("api", Value::Null, Value::Null), &config("api", Value::Null, Value::Null))
            .await
            .planned_state;
    let response = apply(&Value::Null, &unwire(planned)).await;
    assert!(response.diagnostics.is_empty());
    assert_eq!(unwire(response.new_state), existing("api"));
    assert_eq!(response.private, b"created");
}

#[tokio::test]
async fn update_that_leaves_unknowns_is_reported_with_the_path() {
    let mut planned = existing("api");
    planned.set("digest", Value::unknown());
    let response = apply(&existing("api"), &planned).await;
    let diagnostic = response.diagnostics.first().expect("a diagnostic");
    assert_eq!(diagnostic.attribute, Some(AttributePath::attr("digest").to_proto()));
}

#[tokio::test]
async fn failed_delete_keeps_the_object_in_state() {
    let stuck = existing("stuck");
    let response = apply(&stuck, &Value::Null).await;
    assert_eq!(response.diagnostics.len(), 1);
    assert_eq!(unwire(response.new_state), stuck);
    let deleted = apply(&existing("api"), &Value::Null).await;
    assert!(deleted.diagnostics.is_empty());
    assert_eq!(unwire(deleted.new_state), Value::Null);
}

#[tokio::test]
async fn read_of_a_vanished_object_returns_null() {
    let mut gone = existing("api");
    gone.set("id", Value::from("gone"));
    let request = proto::read_resource::Request {
        type_name: "test_thing".into(),
        current_state: wire(&gone),
        private: b"keep".to_vec(),
        ..Default::default()
    };
    let response = server().read_resource(request).await.expect("answers");
    assert_eq!(unwire(response.new_state), Value::Null);
}

#[tokio::test]
async fn import_returns_state_with_the_id() {
    let request = proto::import_resource_state::Request {
        type_name: "test_thing".into(),
        id: "id-api".into(),
        ..Default::default()
    };
    let response = server().import_resource_state(request).await.expect("answers");
    let imported = response.imported_resources.into_iter().next().expect("one resource");
    assert_eq!(imported.type_name, "test_thing");
    assert_eq!(unwire(imported.state).get("id"), Some(&Value::from("id-api")));
}

async fn upgrade(version: i64, json: &str) -> proto::upgrade_resource_state::Response {
    let request = proto::upgrade_resource_state::Request {
        type_name: "test_thing".into(),
        version,
        raw_state: Some(proto::RawState { json: json.as_bytes().to_vec(), flatmap: Default::default() }),
    };
    server().upgrade_resource_state(request).await.expect("answers")
}

#[tokio::test]
async fn state_of_the_current_version_is_decoded_from_json() {
    let response = upgrade(1, r#"{"id":"id-api","name":"api","size":3,"gone_attribute":1}"#).await;
    assert!(response.diagnostics.is_empty());
    let state = unwire(response.upgraded_state);
    assert_eq!(state.get("name"), Some(&Value::from("api")));
    assert_eq!(state.get("note"), Some(&Value::Null));
}

#[tokio::test]
async fn older_state_goes_through_the_upgrade_hook_newer_is_refused() {
    let response = upgrade(0, r#"{"label":"api"}"#).await;
    assert_eq!(unwire(response.upgraded_state).get("name"), Some(&Value::from("api")));
    let newer = upgrade(7, "{}").await;
    assert!(newer.upgraded_state.is_none());
    assert_eq!(newer.diagnostics.len(), 1);
}

#[tokio::test]
async fn provider_schema_has_functions_and_capabilities() {
    let response = server().get_provider_schema(proto::get_provider_schema::Request {}).await.expect("answers");
    let capabilities = response.server_capabilities.expect("capabilities");
    assert!(capabilities.plan_destroy);
    assert!(capabilities.get_provider_schema_optional);
    let shout = response.functions.get("shout").expect("function listed");
    assert_eq!(shout.parameters[0].r#type, br#""string""#);
    assert!(response.resource_schemas.contains_key("test_thing"));
    let thing = response.resource_schemas["test_thing"].block.clone().expect("block");
    let secret = thing.attributes.iter().find(|a| a.name == "secret").expect("secret");
    assert!(secret.sensitive);
}

#[tokio::test]
async fn metadata_lists_everything() {
    let response = server().get_metadata(proto::get_metadata::Request {}).await.expect("answers");
    assert_eq!(response.resources[0].type_name, "test_thing");
    assert_eq!(response.functions[0].name, "shout");
}

async fn call(arguments: Vec<Value>) -> proto::call_function::Response {
    let arguments = arguments
        .iter()
        .map(|argument| proto::DynamicValue {
            msgpack: encode_msgpack(argument, &Type::String).expect("encodable"),
            json: Vec::new(),
        })
        .collect();
    let request = proto::call_function::Request { name: "shout".into(), arguments };
    server().call_function(request).await.expect("answers")
}

#[tokio::test]
async fn functions_return_results_or_errors_naming_the_argument() {
    let response = call(vec![Value::from("hey")]).await;
    let result = response.result.expect("a result").msgpack;
    assert_eq!(decode_msgpack(&result, &Type::String), Ok(Value::from("HEY")));
    let failed = call(vec![Value::from("")]).await.error.expect("an error");
    assert_eq!(failed.function_argument, Some(0));
    let too_many = call(vec![Value::from("a"), Value::from("b")]).await;
    assert!(too_many.error.is_some());
}

#[tokio::test]
async fn duplicate_resource_names_are_refused_at_start() {
    struct Twice;
    #[async_trait::async_trait]
    impl Provider for Twice {
        fn type_name(&self) -> &str {
            "test"
        }
        fn schema(&self) -> Schema {
            Schema::new(0)
        }
        async fn configure(&self, _config: &Value) -> Diagnostics {
            Diagnostics::new()
        }
        fn resources(&self) -> Vec<Arc<dyn Resource>> {
            vec![Arc::new(Thing), Arc::new(Thing)]
        }
    }
    assert!(ProviderServer::new(Arc::new(Twice)).is_err());
}
