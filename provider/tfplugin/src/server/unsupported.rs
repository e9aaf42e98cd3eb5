//! RPCs of protocol 6.10 this framework does not offer: resource identity,
//! state moves, config generation, ephemeral and list resources, state
//! stores and actions. Terraform only calls most of them for types the
//! provider declared (it declares none), but when it does, the answer is a
//! well-formed response with an error diagnostic: a gRPC `Unimplemented`
//! would surface as a plugin crash.

use magma_protocol::tfplugin6 as proto;

use super::ProviderServer;
use crate::Diagnostic;

pub(crate) fn unsupported(feature: &str, type_name: &str) -> Vec<proto::Diagnostic> {
    vec![
        Diagnostic::error(
            format!("{feature} is not supported"),
            format!("This provider does not implement {feature} (requested for {type_name:?})."),
        )
        .to_proto(),
    ]
}

/// Streams of one message, for the streaming RPCs.
pub(crate) type OneShot<T> = tokio_stream::Iter<std::vec::IntoIter<Result<T, tonic::Status>>>;

pub(crate) fn one_shot<T>(message: T) -> OneShot<T> {
    tokio_stream::iter(vec![Ok(message)])
}

impl ProviderServer {
    /// Terraform 1.12+ asks every provider for identity schemas; "none" is
    /// the correct, error-free answer.
    pub fn get_resource_identity_schemas(&self) -> proto::get_resource_identity_schemas::Response {
        proto::get_resource_identity_schemas::Response::default()
    }

    pub fn upgrade_resource_identity(
        &self,
        request: &proto::upgrade_resource_identity::Request,
    ) -> proto::upgrade_resource_identity::Response {
        proto::upgrade_resource_identity::Response {
            upgraded_identity: None,
            diagnostics: unsupported("Resource identity", &request.type_name),
        }
    }

    pub fn move_resource_state(
        &self,
        request: &proto::move_resource_state::Request,
    ) -> proto::move_resource_state::Response {
        proto::move_resource_state::Response {
            diagnostics: unsupported("Moving resource state", &request.target_type_name),
            ..Default::default()
        }
    }

    pub fn generate_resource_config(
        &self,
        request: &proto::generate_resource_config::Request,
    ) -> proto::generate_resource_config::Response {
        proto::generate_resource_config::Response {
            config: None,
            diagnostics: unsupported("Configuration generation", &request.type_name),
        }
    }

    pub fn list_resource(&self, request: &proto::list_resource::Request) -> OneShot<proto::list_resource::Event> {
        one_shot(proto::list_resource::Event {
            diagnostic: unsupported("Listing resources", &request.type_name),
            ..Default::default()
        })
    }

    pub fn invoke_action(&self, request: &proto::invoke_action::Request) -> OneShot<proto::invoke_action::Event> {
        use proto::invoke_action::event::{Completed, Type};
        one_shot(proto::invoke_action::Event {
            r#type: Some(Type::Completed(Completed { diagnostics: unsupported("Actions", &request.action_type) })),
        })
    }

    pub fn read_state_bytes(
        &self,
        request: &proto::read_state_bytes::Request,
    ) -> OneShot<proto::read_state_bytes::Response> {
        one_shot(proto::read_state_bytes::Response {
            diagnostics: unsupported("State storage", &request.type_name),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_answers_carry_an_error_diagnostic() {
        let diagnostics = unsupported("Actions", "sdsec_reboot");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].severity, proto::diagnostic::Severity::Error as i32);
        assert!(diagnostics[0].detail.contains("sdsec_reboot"));
    }
}
