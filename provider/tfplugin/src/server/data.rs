//! Data source and function RPCs.

use magma_protocol::tfplugin6 as proto;
use tonic::Status;

use super::{ProviderServer, decode, encode};
use crate::planning::validate_attributes;
use crate::provider::FunctionError;

fn function_error_to_proto(error: FunctionError) -> proto::FunctionError {
    proto::FunctionError {
        text: error.text,
        function_argument: error.argument.map(|index| i64::try_from(index).unwrap_or(i64::MAX)),
    }
}

fn function_failed(error: FunctionError) -> proto::call_function::Response {
    proto::call_function::Response { result: None, error: Some(function_error_to_proto(error)) }
}

impl ProviderServer {
    pub async fn validate_data_resource_config(
        &self,
        request: proto::validate_data_resource_config::Request,
    ) -> Result<proto::validate_data_resource_config::Response, Status> {
        let registered = match self.data_source(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => {
                return Ok(proto::validate_data_resource_config::Response { diagnostics: vec![diagnostic.to_proto()] });
            }
        };
        let config = decode(request.config.as_ref(), &registered.value_type, "configuration")?;
        let mut diagnostics = validate_attributes(&registered.schema, &config);
        diagnostics.extend(registered.implementation.validate(&config).await);
        Ok(proto::validate_data_resource_config::Response { diagnostics: diagnostics.to_proto() })
    }

    pub async fn read_data_source(
        &self,
        request: proto::read_data_source::Request,
    ) -> Result<proto::read_data_source::Response, Status> {
        let registered = match self.data_source(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => {
                return Ok(proto::read_data_source::Response {
                    diagnostics: vec![diagnostic.to_proto()],
                    ..Default::default()
                });
            }
        };
        let config = decode(request.config.as_ref(), &registered.value_type, "configuration")?;
        let (state, mut diagnostics) = registered.implementation.read(config).await;
        let state = if diagnostics.has_errors() {
            None
        } else {
            match encode(&state, &registered.value_type, "data source state") {
                Ok(encoded) => Some(encoded),
                Err(diagnostic) => {
                    diagnostics.push(diagnostic);
                    None
                }
            }
        };
        Ok(proto::read_data_source::Response { state, diagnostics: diagnostics.to_proto(), deferred: None })
    }

    pub async fn call_function(
        &self,
        request: proto::call_function::Request,
    ) -> Result<proto::call_function::Response, Status> {
        let Some(function) = self.functions.get(&request.name) else {
            return Ok(function_failed(FunctionError::new(format!(
                "This provider has no function {:?}.",
                request.name
            ))));
        };
        let signature = function.signature();
        let mut arguments = Vec::with_capacity(request.arguments.len());
        for (index, argument) in request.arguments.iter().enumerate() {
            let parameter = signature.parameters.get(index).or(signature.variadic.as_ref());
            let Some(parameter) = parameter else {
                return Ok(function_failed(FunctionError::new(format!(
                    "{} takes {} arguments, {} given.",
                    request.name,
                    signature.parameters.len(),
                    request.arguments.len()
                ))));
            };
            let what = format!("argument {index} ({})", parameter.name);
            arguments.push(decode(Some(argument), &parameter.typ, &what)?);
        }
        if arguments.len() < signature.parameters.len() {
            return Ok(function_failed(FunctionError::new(format!(
                "{} takes {} arguments, {} given.",
                request.name,
                signature.parameters.len(),
                arguments.len()
            ))));
        }
        match function.call(arguments).await {
            Ok(result) => match encode(&result, &signature.return_type, "function result") {
                Ok(encoded) => Ok(proto::call_function::Response { result: Some(encoded), error: None }),
                Err(diagnostic) => {
                    Ok(function_failed(FunctionError::new(format!("{}: {}", diagnostic.summary, diagnostic.detail))))
                }
            },
            Err(error) => Ok(function_failed(error)),
        }
    }
}
