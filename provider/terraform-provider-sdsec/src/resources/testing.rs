//! Terraform's side of a run, for unit tests. The provider is served by the plugin
//! framework and driven through its RPCs with msgpack values; new states are proposed as
//! Terraform proposes them, and plans and applied states are held to Terraform's rules, so
//! a plan that Terraform would reject as a provider bug fails a test here. No CLI and no
//! hypervisor: small fake executables stand in for the runtime, the kernel and the
//! application (nothing boots them; `warm = "image"` pools build images only).

// A failed expectation in a test is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tfplugin::proto::attribute_path::step::Selector;
use tfplugin::value::{decode_msgpack, encode_msgpack};
use tfplugin::{
    AttributePath, Diagnostic, Diagnostics, Presence, Provider, ProviderServer, Schema, Severity, Type, Value, proto,
};

use crate::SdsecProvider;

/// The bytes of a static x86-64 executable as far as the image builder looks: an ELF
/// header and one loadable segment. `tag` makes files differ.
pub fn static_executable(tag: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; 64 + 56];
    bytes[..4].copy_from_slice(b"\x7fELF");
    (bytes[4], bytes[5], bytes[6]) = (2, 1, 1); // 64-bit, little-endian, version 1
    bytes[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    bytes[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    bytes[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes()); // entry
    bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // program headers right after
    bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
    bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
    bytes[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// A configured provider in a scratch directory, as `terraform` would start it.
pub struct Terraform {
    server: ProviderServer,
    schemas: BTreeMap<String, Schema>,
    pub dir: tempfile::TempDir,
}

/// What plan answered.
#[derive(Debug, Clone)]
pub struct Planned {
    pub state: Value,
    pub requires_replace: Vec<String>,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

/// What apply or refresh answered.
#[derive(Debug, Clone)]
pub struct Applied {
    pub state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

impl Terraform {
    /// A provider with a state directory, a kernel and a runtime of its own, on QEMU's
    /// user network unless `settings` (added to the provider block) say otherwise: unit
    /// tests leave the host's network alone.
    pub async fn new(settings: &[(&str, &str)]) -> Terraform {
        let dir = tempfile::tempdir().unwrap();
        for (name, tag) in [("kernel", "kernel"), ("runtime", "runtime"), ("app", "application")] {
            std::fs::write(dir.path().join(name), static_executable(tag)).unwrap();
        }
        let provider = SdsecProvider::with_runtime(dir.path().join("runtime"));
        let mut schemas: BTreeMap<String, Schema> =
            provider.resources().iter().map(|r| (r.type_name().to_owned(), r.schema())).collect();
        schemas.extend(provider.data_sources().iter().map(|d| (d.type_name().to_owned(), d.schema())));
        let provider_schema = provider.schema();
        let server = ProviderServer::new(Arc::new(provider)).unwrap();
        let state_dir = dir.path().join("state").display().to_string();
        let kernel = dir.path().join("kernel").display().to_string();
        let mut block = vec![("state_dir", Value::from(state_dir)), ("kernel", Value::from(kernel))];
        if !settings.iter().any(|(k, _)| *k == "network") {
            block.push(("network", Value::from("user")));
        }
        block.extend(settings.iter().map(|(k, v)| (*k, Value::from(*v))));
        let config = object_of(&provider_schema, &block);
        let request = proto::configure_provider::Request {
            config: Some(dynamic(&config, &provider_schema.value_type())),
            ..Default::default()
        };
        let response = server.configure_provider(request).await.unwrap();
        assert!(response.diagnostics.is_empty(), "{:?}", response.diagnostics);
        Terraform { server, schemas, dir }
    }

    /// The application's path, a static executable.
    pub fn app(&self) -> String {
        self.dir.path().join("app").display().to_string()
    }

    pub fn schema(&self, type_name: &str) -> &Schema {
        &self.schemas[type_name]
    }

    /// A configuration of `type_name`: `attributes` set, everything else null.
    pub fn config(&self, type_name: &str, attributes: &[(&str, Value)]) -> Value {
        object_of(self.schema(type_name), attributes)
    }

    /// `terraform plan` of one resource: validate, propose, plan, and check the plan as
    /// Terraform does. Panics when Terraform would reject the plan as a provider bug.
    pub async fn plan(&self, type_name: &str, prior: &Value, prior_private: &[u8], config: &Value) -> Planned {
        let schema = self.schema(type_name);
        let typ = schema.value_type();
        let validated = self
            .server
            .validate_resource_config(proto::validate_resource_config::Request {
                type_name: type_name.to_owned(),
                config: Some(dynamic(config, &typ)),
                ..Default::default()
            })
            .await
            .unwrap();
        let diagnostics = diagnostics(validated.diagnostics);
        if diagnostics.has_errors() {
            return Planned { state: Value::Null, requires_replace: Vec::new(), private: Vec::new(), diagnostics };
        }
        let response = self
            .server
            .plan_resource_change(proto::plan_resource_change::Request {
                type_name: type_name.to_owned(),
                prior_state: Some(dynamic(prior, &typ)),
                proposed_new_state: Some(dynamic(&propose(schema, prior, config), &typ)),
                config: Some(dynamic(config, &typ)),
                prior_private: prior_private.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut planned = Planned {
            state: response.planned_state.map_or(Value::Null, |v| decode_msgpack(&v.msgpack, &typ).unwrap()),
            requires_replace: response.requires_replace.iter().map(|p| path_of(p).to_string()).collect(),
            private: response.planned_private,
            diagnostics,
        };
        planned.diagnostics.extend(self::diagnostics(response.diagnostics));
        if !planned.diagnostics.has_errors() {
            let problems = plan_problems(schema, prior, config, &planned.state);
            assert!(problems.is_empty(), "Terraform would reject this plan of {type_name}: {problems:#?}");
        }
        planned
    }

    /// `terraform apply` of a plan. Panics when Terraform would reject the new state as
    /// inconsistent with the plan.
    pub async fn apply(&self, type_name: &str, prior: &Value, planned: &Planned, config: &Value) -> Applied {
        let typ = self.schema(type_name).value_type();
        let response = self
            .server
            .apply_resource_change(proto::apply_resource_change::Request {
                type_name: type_name.to_owned(),
                prior_state: Some(dynamic(prior, &typ)),
                planned_state: Some(dynamic(&planned.state, &typ)),
                config: Some(dynamic(config, &typ)),
                planned_private: planned.private.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let applied = Applied {
            state: response.new_state.map_or(Value::Null, |v| decode_msgpack(&v.msgpack, &typ).unwrap()),
            private: response.private,
            diagnostics: diagnostics(response.diagnostics),
        };
        if !applied.diagnostics.has_errors() && !planned.state.is_null() {
            let mut problems = Vec::new();
            inconsistencies(&planned.state, &applied.state, &AttributePath::root(), &mut problems);
            assert!(problems.is_empty(), "Terraform would reject the state {type_name} applied: {problems:#?}");
        }
        applied
    }

    /// `terraform import` of one resource, then the refresh Terraform does next.
    pub async fn import(&self, type_name: &str, id: &str) -> Applied {
        let typ = self.schema(type_name).value_type();
        let response = self
            .server
            .import_resource_state(proto::import_resource_state::Request {
                type_name: type_name.to_owned(),
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
        let imported = diagnostics(response.diagnostics);
        let Some(resource) = response.imported_resources.into_iter().next() else {
            return Applied { state: Value::Null, private: Vec::new(), diagnostics: imported };
        };
        let state = resource.state.map_or(Value::Null, |v| decode_msgpack(&v.msgpack, &typ).unwrap());
        let mut refreshed = self.read(type_name, &state, &resource.private).await;
        refreshed.diagnostics.extend(imported);
        refreshed
    }

    /// `terraform refresh` of one resource.
    pub async fn read(&self, type_name: &str, state: &Value, private: &[u8]) -> Applied {
        let typ = self.schema(type_name).value_type();
        let response = self
            .server
            .read_resource(proto::read_resource::Request {
                type_name: type_name.to_owned(),
                current_state: Some(dynamic(state, &typ)),
                private: private.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        Applied {
            state: response.new_state.map_or(Value::Null, |v| decode_msgpack(&v.msgpack, &typ).unwrap()),
            private: response.private,
            diagnostics: diagnostics(response.diagnostics),
        }
    }
}

fn dynamic(value: &Value, typ: &Type) -> proto::DynamicValue {
    proto::DynamicValue { msgpack: encode_msgpack(value, typ).unwrap(), json: Vec::new() }
}

/// An object of `schema` with `attributes` set and everything else null.
fn object_of(schema: &Schema, attributes: &[(&str, Value)]) -> Value {
    let names = schema.block.attributes.iter().map(|a| a.name.as_str());
    let blocks = schema.block.blocks.iter().map(|b| b.type_name.as_str());
    let mut object = Value::object(names.chain(blocks).map(|name| (name, Value::Null)));
    for (name, value) in attributes {
        assert!(object.set(name, value.clone()) && object.get(name).is_some(), "no attribute {name}");
    }
    object
}

fn diagnostics(wire: Vec<proto::Diagnostic>) -> Diagnostics {
    wire.into_iter()
        .map(|d| {
            let severity = proto::diagnostic::Severity::try_from(d.severity).ok();
            let diagnostic = match severity {
                Some(proto::diagnostic::Severity::Warning) => Diagnostic::warning(d.summary, d.detail),
                _ => Diagnostic::error(d.summary, d.detail),
            };
            match d.attribute {
                Some(path) => diagnostic.at(path_of(&path)),
                None => diagnostic,
            }
        })
        .collect()
}

fn path_of(path: &proto::AttributePath) -> AttributePath {
    path.steps.iter().filter_map(|step| step.selector.as_ref()).fold(AttributePath::root(), |path, step| match step {
        Selector::AttributeName(name) => path.attribute(name.clone()),
        Selector::ElementKeyString(key) => path.key(key.clone()),
        Selector::ElementKeyInt(index) => path.index(*index),
    })
}

/// Terraform's proposed new state: the configuration, with the prior value of each computed
/// attribute the configuration leaves out.
fn propose(schema: &Schema, prior: &Value, config: &Value) -> Value {
    let mut proposed = config.clone();
    for attribute in schema.block.attributes.iter().filter(|a| a.is_computed()) {
        if config.get(&attribute.name).is_none_or(Value::is_null) {
            proposed.set(&attribute.name, prior.get(&attribute.name).cloned().unwrap_or(Value::Null));
        }
    }
    proposed
}

/// Why Terraform would reject `planned` for `config`: an attribute set in the
/// configuration must be planned as configured (or as it was), and one the provider does
/// not compute must stay null when the configuration leaves it out.
fn plan_problems(schema: &Schema, prior: &Value, config: &Value, planned: &Value) -> Vec<String> {
    let get = |value: &Value, name: &str| unrefined(value.get(name).cloned().unwrap_or(Value::Null));
    let mut problems = Vec::new();
    for attribute in &schema.block.attributes {
        let name = attribute.name.as_str();
        let (config, prior, planned) = (get(config, name), get(prior, name), get(planned, name));
        let fine = planned == config
            || (planned == prior && !prior.is_null() && !config.is_null())
            || attribute.presence == Presence::Computed
            || (config.is_null() && attribute.is_computed());
        if !fine {
            problems.push(format!("{name}: planned {planned:?}, configured {config:?}, prior {prior:?}"));
        }
    }
    for block in &schema.block.blocks {
        let name = block.type_name.as_str();
        if get(planned, name) != get(config, name) {
            problems.push(format!(
                "block {name}: planned {:?}, configured {:?}",
                get(planned, name),
                get(config, name)
            ));
        }
    }
    problems
}

/// `value` with refinements dropped from its unknowns, as Terraform compares plans.
fn unrefined(value: Value) -> Value {
    match value {
        Value::Unknown(_) => Value::unknown(),
        Value::List(items) => Value::List(items.into_iter().map(unrefined).collect()),
        Value::Set(items) => Value::Set(items.into_iter().map(unrefined).collect()),
        Value::Tuple(items) => Value::Tuple(items.into_iter().map(unrefined).collect()),
        Value::Map(entries) => Value::Map(entries.into_iter().map(|(k, v)| (k, unrefined(v))).collect()),
        Value::Object(entries) => Value::Object(entries.into_iter().map(|(k, v)| (k, unrefined(v))).collect()),
        known => known,
    }
}

/// Where an applied state differs from what was planned as known.
fn inconsistencies(planned: &Value, applied: &Value, path: &AttributePath, problems: &mut Vec<String>) {
    match (planned, applied) {
        (Value::Unknown(_), _) => {}
        (Value::Object(p), Value::Object(a)) | (Value::Map(p), Value::Map(a)) if p.len() == a.len() => {
            for (name, planned) in p {
                let applied = a.get(name).unwrap_or(&Value::Null);
                inconsistencies(planned, applied, &path.clone().attribute(name), problems);
            }
        }
        (Value::List(p), Value::List(a)) if p.len() == a.len() => {
            for (index, (planned, applied)) in p.iter().zip(a).enumerate() {
                inconsistencies(planned, applied, &path.clone().index(index as i64), problems);
            }
        }
        (planned, applied) if planned == applied => {}
        (planned, applied) => problems.push(format!("{path}: planned {planned:?}, applied {applied:?}")),
    }
}

/// Asserts no error, showing the diagnostics otherwise.
pub fn assert_no_errors(diagnostics: &Diagnostics, what: &str) {
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "{what} failed: {errors:#?}");
}

/// The quickstart policy's plan for node `api`, as `sdsec_security_policy.enforcement["api"]`.
pub fn quickstart_plan() -> String {
    let source = sectosca::Source::new("policy.yaml", include_str!("../../../../examples/quickstart/policy.yaml"));
    let compiled = sectosca::compile(&source, &Default::default(), &sectosca::Options::default());
    compiled.plan_json("api").unwrap()
}

/// `application` for the fake executable at `path`.
pub fn application(path: &str) -> Value {
    Value::object([
        ("path", Value::from(path)),
        ("args", Value::List(vec![Value::from("--listen"), Value::from("0.0.0.0:8080")])),
        ("port", Value::from(8080)),
    ])
}
