//! The tfplugin6 `Provider` gRPC service, on top of the traits in
//! `provider`. One file per group of RPCs; every handler is an inherent
//! method taking and returning protocol messages, so tests call them
//! without a network.
//!
//! Error policy: what the user can fix is a diagnostic in the response;
//! only faults in what Terraform itself sent (undecodable values) are gRPC
//! errors, because Terraform reports those as plugin failures.

mod data;
mod metadata;
mod resource;
mod service;
mod unsupported;

#[cfg(test)]
mod tests;

pub use service::ProviderService;

use std::collections::HashMap;
use std::sync::Arc;

use magma_protocol::tfplugin6 as proto;
use tonic::Status;

use crate::provider::{DataSource, Function, Provider, Resource};
use crate::schema::SchemaError;
use crate::value::{Type, decode_json, decode_msgpack, encode_msgpack};
use crate::{Diagnostic, Schema, Value};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{kind} {name:?} is registered twice")]
    Duplicate { kind: &'static str, name: String },
    #[error("schema of {name}: {source}")]
    Schema { name: String, source: SchemaError },
}

/// A registered implementation with its schema, computed once at start-up
/// (schemas are immutable for the life of the plugin).
struct Registered<T: ?Sized> {
    implementation: Arc<T>,
    schema: Schema,
    value_type: Type,
}

/// Serves one provider over tfplugin6. Cheap to share: wrap in `Arc`.
pub struct ProviderServer {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    resources: HashMap<String, Registered<dyn Resource>>,
    data_sources: HashMap<String, Registered<dyn DataSource>>,
    functions: HashMap<String, Arc<dyn Function>>,
}

impl std::fmt::Debug for ProviderServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProviderServer")
            .field("provider", &self.provider.type_name())
            .field("resources", &self.resources.keys().collect::<Vec<_>>())
            .field("data_sources", &self.data_sources.keys().collect::<Vec<_>>())
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn register<T: ?Sized>(
    kind: &'static str,
    items: Vec<(String, Arc<T>, Schema)>,
) -> Result<HashMap<String, Registered<T>>, RegistryError> {
    let mut registry = HashMap::new();
    for (name, implementation, schema) in items {
        schema.check().map_err(|source| RegistryError::Schema { name: name.clone(), source })?;
        let value_type = schema.value_type();
        let entry = Registered { implementation, schema, value_type };
        if registry.insert(name.clone(), entry).is_some() {
            return Err(RegistryError::Duplicate { kind, name });
        }
    }
    Ok(registry)
}

impl ProviderServer {
    /// Collects the provider's resources, data sources and functions and
    /// checks their schemas, so mistakes surface before the handshake.
    pub fn new(provider: Arc<dyn Provider>) -> Result<Self, RegistryError> {
        let provider_schema = provider.schema();
        provider_schema.check().map_err(|source| RegistryError::Schema { name: "provider".to_owned(), source })?;
        let resources = register(
            "resource",
            provider
                .resources()
                .into_iter()
                .map(|resource| (resource.type_name().to_owned(), resource.clone(), resource.schema()))
                .collect(),
        )?;
        let data_sources = register(
            "data source",
            provider
                .data_sources()
                .into_iter()
                .map(|source| (source.type_name().to_owned(), source.clone(), source.schema()))
                .collect(),
        )?;
        let mut functions = HashMap::new();
        for function in provider.functions() {
            let name = function.name().to_owned();
            if functions.insert(name.clone(), function).is_some() {
                return Err(RegistryError::Duplicate { kind: "function", name });
            }
        }
        Ok(ProviderServer { provider, provider_schema, resources, data_sources, functions })
    }

    fn resource(&self, type_name: &str) -> Result<&Registered<dyn Resource>, Diagnostic> {
        self.resources.get(type_name).ok_or_else(|| unknown_type("resource", type_name))
    }

    fn data_source(&self, type_name: &str) -> Result<&Registered<dyn DataSource>, Diagnostic> {
        self.data_sources.get(type_name).ok_or_else(|| unknown_type("data source", type_name))
    }
}

fn unknown_type(kind: &str, type_name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type {type_name:?}"),
        "This provider does not implement it. Check the provider version and the type name.",
    )
}

/// Decodes a value Terraform sent; absent means null. Failure is
/// Terraform's fault (or a schema mismatch between the two sides).
// `Status` is large, but it is what every tonic handler returns anyway.
#[allow(clippy::result_large_err)]
fn decode(dynamic: Option<&proto::DynamicValue>, typ: &Type, what: &str) -> Result<Value, Status> {
    let Some(dynamic) = dynamic else {
        return Ok(Value::Null);
    };
    let decoded = if !dynamic.msgpack.is_empty() {
        decode_msgpack(&dynamic.msgpack, typ).map_err(|error| error.to_string())
    } else if !dynamic.json.is_empty() {
        decode_json(&dynamic.json, typ).map_err(|error| error.to_string())
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|reason| Status::invalid_argument(format!("cannot decode {what}: {reason}")))
}

/// Encodes a value the provider produced. Failure is a provider bug; it is
/// reported as a diagnostic so the user sees which attribute is wrong.
fn encode(value: &Value, typ: &Type, what: &str) -> Result<proto::DynamicValue, Diagnostic> {
    encode_msgpack(value, typ).map(|msgpack| proto::DynamicValue { msgpack, json: Vec::new() }).map_err(|error| {
        Diagnostic::error(
            format!("Provider bug: invalid {what}"),
            format!("The provider produced a value that does not match its schema ({error}). Please report this."),
        )
    })
}
