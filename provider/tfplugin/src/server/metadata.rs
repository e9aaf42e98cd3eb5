//! Provider-level RPCs: metadata, schemas, functions' signatures, provider
//! configuration and stop.

use std::collections::HashMap;

use magma_protocol::tfplugin6 as proto;
use proto::get_metadata as metadata;
use tonic::Status;

use super::{ProviderServer, decode};
use crate::planning::validate_attributes;
use crate::provider::{FunctionSignature, Parameter};

/// What this framework supports. `plan_destroy` lets resources see destroy
/// plans. `get_provider_schema_optional`: the server holds its schemas from the start and
/// needs no `GetProviderSchema` call before the others, so Terraform may reuse the schemas it
/// fetched from an earlier start of the provider (it starts it several times per command).
/// The others stay false because their RPCs are not implemented.
pub(crate) fn server_capabilities() -> proto::ServerCapabilities {
    proto::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

fn parameter_to_proto(parameter: &Parameter) -> proto::function::Parameter {
    proto::function::Parameter {
        name: parameter.name.clone(),
        r#type: parameter.typ.to_json_bytes(),
        allow_null_value: parameter.allow_null,
        allow_unknown_values: parameter.allow_unknown,
        description: parameter.description.clone(),
        description_kind: proto::StringKind::Markdown.into(),
    }
}

pub(crate) fn signature_to_proto(signature: &FunctionSignature) -> proto::Function {
    proto::Function {
        parameters: signature.parameters.iter().map(parameter_to_proto).collect(),
        variadic_parameter: signature.variadic.as_ref().map(parameter_to_proto),
        r#return: Some(proto::function::Return { r#type: signature.return_type.to_json_bytes() }),
        summary: signature.summary.clone(),
        description: signature.description.clone(),
        description_kind: proto::StringKind::Markdown.into(),
        deprecation_message: String::new(),
    }
}

impl ProviderServer {
    fn function_schemas(&self) -> HashMap<String, proto::Function> {
        self.functions
            .iter()
            .map(|(name, function)| (name.clone(), signature_to_proto(&function.signature())))
            .collect()
    }

    pub async fn get_metadata(&self, _request: metadata::Request) -> Result<metadata::Response, Status> {
        let mut resources: Vec<_> = self.resources.keys().cloned().collect();
        let mut data_sources: Vec<_> = self.data_sources.keys().cloned().collect();
        let mut functions: Vec<_> = self.functions.keys().cloned().collect();
        // Stable order keeps Terraform's logs and our tests deterministic.
        resources.sort();
        data_sources.sort();
        functions.sort();
        Ok(metadata::Response {
            server_capabilities: Some(server_capabilities()),
            diagnostics: Vec::new(),
            data_sources: data_sources
                .into_iter()
                .map(|type_name| metadata::DataSourceMetadata { type_name })
                .collect(),
            resources: resources.into_iter().map(|type_name| metadata::ResourceMetadata { type_name }).collect(),
            functions: functions.into_iter().map(|name| metadata::FunctionMetadata { name }).collect(),
            ..Default::default()
        })
    }

    pub async fn get_provider_schema(
        &self,
        _request: proto::get_provider_schema::Request,
    ) -> Result<proto::get_provider_schema::Response, Status> {
        Ok(proto::get_provider_schema::Response {
            provider: Some(self.provider_schema.to_proto()),
            resource_schemas: self
                .resources
                .iter()
                .map(|(name, registered)| (name.clone(), registered.schema.to_proto()))
                .collect(),
            data_source_schemas: self
                .data_sources
                .iter()
                .map(|(name, registered)| (name.clone(), registered.schema.to_proto()))
                .collect(),
            functions: self.function_schemas(),
            server_capabilities: Some(server_capabilities()),
            ..Default::default()
        })
    }

    pub async fn get_functions(
        &self,
        _request: proto::get_functions::Request,
    ) -> Result<proto::get_functions::Response, Status> {
        Ok(proto::get_functions::Response { functions: self.function_schemas(), diagnostics: Vec::new() })
    }

    pub async fn validate_provider_config(
        &self,
        request: proto::validate_provider_config::Request,
    ) -> Result<proto::validate_provider_config::Response, Status> {
        let value_type = self.provider_schema.value_type();
        let config = decode(request.config.as_ref(), &value_type, "provider configuration")?;
        let mut diagnostics = validate_attributes(&self.provider_schema, &config);
        diagnostics.extend(self.provider.validate(&config).await);
        Ok(proto::validate_provider_config::Response { diagnostics: diagnostics.to_proto() })
    }

    pub async fn configure_provider(
        &self,
        request: proto::configure_provider::Request,
    ) -> Result<proto::configure_provider::Response, Status> {
        tracing::info!(terraform_version = %request.terraform_version, "configuring provider");
        let value_type = self.provider_schema.value_type();
        let config = decode(request.config.as_ref(), &value_type, "provider configuration")?;
        let diagnostics = self.provider.configure(&config).await;
        Ok(proto::configure_provider::Response { diagnostics: diagnostics.to_proto() })
    }

    /// Ctrl-C in Terraform: cancel what runs, but keep serving. Terraform
    /// still needs the plugin to finish (and record) in-flight operations,
    /// and closes it through the controller's Shutdown afterwards.
    pub async fn stop_provider(
        &self,
        _request: proto::stop_provider::Request,
    ) -> Result<proto::stop_provider::Response, Status> {
        tracing::info!("Terraform asked the provider to stop its operations");
        let error = self.provider.stop().await.err().unwrap_or_default();
        Ok(proto::stop_provider::Response { error })
    }
}
