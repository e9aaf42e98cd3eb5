//! Managed-resource RPCs: validate, upgrade, read, plan, apply, import.

use magma_protocol::tfplugin6 as proto;
use tonic::Status;

use super::{ProviderServer, decode, encode};
use crate::planning::{plan_attributes, push_unique, validate_attributes};
use crate::provider::{ApplyRequest, PlanRequest, StateResult};
use crate::value::decode_json_value;
use crate::{Diagnostic, Diagnostics, Value};

/// An after-apply state must be wholly known; Terraform rejects it
/// otherwise with a message that does not name the attribute, so name it.
fn check_wholly_known(state: &Value, diagnostics: &mut Diagnostics) {
    if let Some(path) = state.first_unknown_path() {
        diagnostics.push(
            Diagnostic::error(
                "Provider bug: unknown value after apply",
                format!("The provider left {path} unknown after applying. Please report this."),
            )
            .at(path),
        );
    }
}

impl ProviderServer {
    pub async fn validate_resource_config(
        &self,
        request: proto::validate_resource_config::Request,
    ) -> Result<proto::validate_resource_config::Response, Status> {
        let registered = match self.resource(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => {
                return Ok(proto::validate_resource_config::Response { diagnostics: vec![diagnostic.to_proto()] });
            }
        };
        let config = decode(request.config.as_ref(), &registered.value_type, "configuration")?;
        let mut diagnostics = validate_attributes(&registered.schema, &config);
        diagnostics.extend(registered.implementation.validate(&config).await);
        Ok(proto::validate_resource_config::Response { diagnostics: diagnostics.to_proto() })
    }

    pub async fn upgrade_resource_state(
        &self,
        request: proto::upgrade_resource_state::Request,
    ) -> Result<proto::upgrade_resource_state::Response, Status> {
        let failed = |diagnostics: Diagnostics| proto::upgrade_resource_state::Response {
            upgraded_state: None,
            diagnostics: diagnostics.to_proto(),
        };
        let registered = match self.resource(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => return Ok(failed(diagnostic.into())),
        };
        let raw_json = request.raw_state.as_ref().map(|raw| raw.json.as_slice()).unwrap_or_default();
        if raw_json.is_empty() {
            return Ok(failed(
                Diagnostic::error(
                    "Unsupported legacy state",
                    "This state is in the pre-0.12 flatmap format, which this provider cannot read.",
                )
                .into(),
            ));
        }
        let raw: serde_json::Value = serde_json::from_slice(raw_json)
            .map_err(|error| Status::invalid_argument(format!("stored state is not JSON: {error}")))?;
        let current_version = registered.schema.version;
        let upgraded = if request.version == current_version {
            decode_json_value(&raw, &registered.value_type)
                .map_err(|error| Status::invalid_argument(format!("cannot decode stored state: {error}")))?
        } else if request.version < current_version {
            match registered.implementation.upgrade_state(request.version, &raw).await {
                Ok(value) => value,
                Err(diagnostics) => return Ok(failed(diagnostics)),
            }
        } else {
            return Ok(failed(
                Diagnostic::error(
                    "State written by a newer provider",
                    format!(
                        "The stored state has schema version {}, but this provider knows up to {current_version}. \
                         Upgrade the provider.",
                        request.version
                    ),
                )
                .into(),
            ));
        };
        match encode(&upgraded, &registered.value_type, "upgraded state") {
            Ok(state) => {
                Ok(proto::upgrade_resource_state::Response { upgraded_state: Some(state), diagnostics: Vec::new() })
            }
            Err(diagnostic) => Ok(failed(diagnostic.into())),
        }
    }

    pub async fn read_resource(
        &self,
        request: proto::read_resource::Request,
    ) -> Result<proto::read_resource::Response, Status> {
        let registered = match self.resource(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => {
                return Ok(proto::read_resource::Response {
                    new_state: request.current_state,
                    diagnostics: vec![diagnostic.to_proto()],
                    private: request.private,
                    ..Default::default()
                });
            }
        };
        let current = decode(request.current_state.as_ref(), &registered.value_type, "current state")?;
        let StateResult { state, private, mut diagnostics } =
            registered.implementation.read(current, request.private).await;
        let new_state = match encode(&state, &registered.value_type, "refreshed state") {
            Ok(encoded) => Some(encoded),
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                request.current_state
            }
        };
        Ok(proto::read_resource::Response {
            new_state,
            diagnostics: diagnostics.to_proto(),
            private,
            ..Default::default()
        })
    }

    pub async fn plan_resource_change(
        &self,
        request: proto::plan_resource_change::Request,
    ) -> Result<proto::plan_resource_change::Response, Status> {
        let failed = |diagnostics: Diagnostics| proto::plan_resource_change::Response {
            diagnostics: diagnostics.to_proto(),
            ..Default::default()
        };
        let registered = match self.resource(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => return Ok(failed(diagnostic.into())),
        };
        let value_type = &registered.value_type;
        let prior = decode(request.prior_state.as_ref(), value_type, "prior state")?;
        let proposed = decode(request.proposed_new_state.as_ref(), value_type, "proposed state")?;
        let config = decode(request.config.as_ref(), value_type, "configuration")?;

        // (1) Destroy: nothing to plan but the null.
        if proposed.is_null() {
            return Ok(proto::plan_resource_change::Response {
                planned_state: request.proposed_new_state,
                planned_private: request.prior_private,
                ..Default::default()
            });
        }
        // (2)–(4)
        let framework = plan_attributes(&registered.schema, &prior, &proposed, &config);
        // (5)
        let hook_request = PlanRequest {
            prior_state: prior,
            config,
            prior_private: request.prior_private,
            planned_state: framework.planned_state,
            requires_replace: framework.requires_replace,
        };
        let mut result = registered.implementation.plan(hook_request).await;
        let mut requires_replace = Vec::new();
        for path in result.requires_replace {
            push_unique(&mut requires_replace, path);
        }
        let planned_state = match encode(&result.planned_state, value_type, "planned state") {
            Ok(encoded) => encoded,
            Err(diagnostic) => {
                result.diagnostics.push(diagnostic);
                return Ok(failed(result.diagnostics));
            }
        };
        Ok(proto::plan_resource_change::Response {
            planned_state: Some(planned_state),
            requires_replace: requires_replace.iter().map(|path| path.to_proto()).collect(),
            planned_private: result.planned_private,
            diagnostics: result.diagnostics.to_proto(),
            ..Default::default()
        })
    }

    pub async fn apply_resource_change(
        &self,
        request: proto::apply_resource_change::Request,
    ) -> Result<proto::apply_resource_change::Response, Status> {
        let registered = match self.resource(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => {
                return Ok(proto::apply_resource_change::Response {
                    new_state: request.prior_state,
                    diagnostics: vec![diagnostic.to_proto()],
                    ..Default::default()
                });
            }
        };
        let value_type = &registered.value_type;
        let apply = ApplyRequest {
            prior_state: decode(request.prior_state.as_ref(), value_type, "prior state")?,
            planned_state: decode(request.planned_state.as_ref(), value_type, "planned state")?,
            config: decode(request.config.as_ref(), value_type, "configuration")?,
            planned_private: request.planned_private,
        };
        let resource = &registered.implementation;
        let StateResult { state, private, mut diagnostics } = if apply.planned_state.is_null() {
            tracing::info!(type_name = %request.type_name, "deleting");
            let prior = apply.prior_state.clone();
            let diagnostics = resource.delete(apply).await;
            // A failed delete leaves the object in place, and in state.
            let state = if diagnostics.has_errors() { prior } else { Value::Null };
            StateResult { state, private: Vec::new(), diagnostics }
        } else if apply.prior_state.is_null() {
            tracing::info!(type_name = %request.type_name, "creating");
            resource.create(apply).await
        } else {
            tracing::info!(type_name = %request.type_name, "updating");
            resource.update(apply).await
        };
        if !diagnostics.has_errors() {
            check_wholly_known(&state, &mut diagnostics);
        }
        let new_state = match encode(&state, value_type, "new state") {
            Ok(encoded) => Some(encoded),
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                request.prior_state
            }
        };
        Ok(proto::apply_resource_change::Response {
            new_state,
            private,
            diagnostics: diagnostics.to_proto(),
            ..Default::default()
        })
    }

    pub async fn import_resource_state(
        &self,
        request: proto::import_resource_state::Request,
    ) -> Result<proto::import_resource_state::Response, Status> {
        let failed = |diagnostics: Diagnostics| proto::import_resource_state::Response {
            diagnostics: diagnostics.to_proto(),
            ..Default::default()
        };
        let registered = match self.resource(&request.type_name) {
            Ok(registered) => registered,
            Err(diagnostic) => return Ok(failed(diagnostic.into())),
        };
        let StateResult { state, private, mut diagnostics } = registered.implementation.import(&request.id).await;
        if diagnostics.has_errors() {
            return Ok(failed(diagnostics));
        }
        if state.is_null() {
            diagnostics.error(
                "Cannot import a null object",
                format!("Importing {:?} produced no state. Please report this.", request.id),
            );
            return Ok(failed(diagnostics));
        }
        let state = match encode(&state, &registered.value_type, "imported state") {
            Ok(encoded) => encoded,
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                return Ok(failed(diagnostics));
            }
        };
        Ok(proto::import_resource_state::Response {
            imported_resources: vec![proto::import_resource_state::ImportedResource {
                type_name: request.type_name,
                state: Some(state),
                private,
                identity: None,
            }],
            diagnostics: diagnostics.to_proto(),
            deferred: None,
        })
    }
}
