//! Binds [`ProviderServer`]'s handlers to the generated tonic trait. Only
//! plumbing lives here: requests are unwrapped, handlers called, and each
//! call logged by name and type (never by value: values may be secrets).

use std::sync::Arc;

use magma_protocol::tfplugin6 as proto;
use proto::provider_server::Provider as ProviderRpc;
use tonic::{Request, Response, Status, Streaming};

use super::ProviderServer;
use super::unsupported::{OneShot, unsupported};

/// The tonic service wrapping a shared [`ProviderServer`].
#[derive(Debug, Clone)]
pub struct ProviderService(pub Arc<ProviderServer>);

impl ProviderService {
    pub fn into_server(self) -> proto::provider_server::ProviderServer<Self> {
        // Schemas and states can be large; Terraform itself allows 256 MiB.
        const MAX_MESSAGE_BYTES: usize = 256 << 20;
        proto::provider_server::ProviderServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl ProviderRpc for ProviderService {
    type ListResourceStream = OneShot<proto::list_resource::Event>;
    type ReadStateBytesStream = OneShot<proto::read_state_bytes::Response>;
    type InvokeActionStream = OneShot<proto::invoke_action::Event>;

    async fn get_metadata(
        &self,
        request: Request<proto::get_metadata::Request>,
    ) -> Result<Response<proto::get_metadata::Response>, Status> {
        tracing::debug!(rpc = "get_metadata", "call");
        self.0.get_metadata(request.into_inner()).await.map(Response::new)
    }

    async fn get_provider_schema(
        &self,
        request: Request<proto::get_provider_schema::Request>,
    ) -> Result<Response<proto::get_provider_schema::Response>, Status> {
        tracing::debug!(rpc = "get_provider_schema", "call");
        self.0.get_provider_schema(request.into_inner()).await.map(Response::new)
    }

    async fn validate_provider_config(
        &self,
        request: Request<proto::validate_provider_config::Request>,
    ) -> Result<Response<proto::validate_provider_config::Response>, Status> {
        tracing::debug!(rpc = "validate_provider_config", "call");
        self.0.validate_provider_config(request.into_inner()).await.map(Response::new)
    }

    async fn validate_resource_config(
        &self,
        request: Request<proto::validate_resource_config::Request>,
    ) -> Result<Response<proto::validate_resource_config::Response>, Status> {
        tracing::debug!(rpc = "validate_resource_config", "call");
        self.0.validate_resource_config(request.into_inner()).await.map(Response::new)
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<proto::validate_data_resource_config::Request>,
    ) -> Result<Response<proto::validate_data_resource_config::Response>, Status> {
        tracing::debug!(rpc = "validate_data_resource_config", "call");
        self.0.validate_data_resource_config(request.into_inner()).await.map(Response::new)
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<proto::upgrade_resource_state::Request>,
    ) -> Result<Response<proto::upgrade_resource_state::Response>, Status> {
        tracing::debug!(rpc = "upgrade_resource_state", "call");
        self.0.upgrade_resource_state(request.into_inner()).await.map(Response::new)
    }

    async fn configure_provider(
        &self,
        request: Request<proto::configure_provider::Request>,
    ) -> Result<Response<proto::configure_provider::Response>, Status> {
        tracing::debug!(rpc = "configure_provider", "call");
        self.0.configure_provider(request.into_inner()).await.map(Response::new)
    }

    async fn read_resource(
        &self,
        request: Request<proto::read_resource::Request>,
    ) -> Result<Response<proto::read_resource::Response>, Status> {
        tracing::debug!(rpc = "read_resource", "call");
        self.0.read_resource(request.into_inner()).await.map(Response::new)
    }

    async fn plan_resource_change(
        &self,
        request: Request<proto::plan_resource_change::Request>,
    ) -> Result<Response<proto::plan_resource_change::Response>, Status> {
        tracing::debug!(rpc = "plan_resource_change", "call");
        self.0.plan_resource_change(request.into_inner()).await.map(Response::new)
    }

    async fn apply_resource_change(
        &self,
        request: Request<proto::apply_resource_change::Request>,
    ) -> Result<Response<proto::apply_resource_change::Response>, Status> {
        tracing::debug!(rpc = "apply_resource_change", "call");
        self.0.apply_resource_change(request.into_inner()).await.map(Response::new)
    }

    async fn import_resource_state(
        &self,
        request: Request<proto::import_resource_state::Request>,
    ) -> Result<Response<proto::import_resource_state::Response>, Status> {
        tracing::debug!(rpc = "import_resource_state", "call");
        self.0.import_resource_state(request.into_inner()).await.map(Response::new)
    }

    async fn read_data_source(
        &self,
        request: Request<proto::read_data_source::Request>,
    ) -> Result<Response<proto::read_data_source::Response>, Status> {
        tracing::debug!(rpc = "read_data_source", "call");
        self.0.read_data_source(request.into_inner()).await.map(Response::new)
    }

    async fn get_functions(
        &self,
        request: Request<proto::get_functions::Request>,
    ) -> Result<Response<proto::get_functions::Response>, Status> {
        tracing::debug!(rpc = "get_functions", "call");
        self.0.get_functions(request.into_inner()).await.map(Response::new)
    }

    async fn call_function(
        &self,
        request: Request<proto::call_function::Request>,
    ) -> Result<Response<proto::call_function::Response>, Status> {
        tracing::debug!(rpc = "call_function", "call");
        self.0.call_function(request.into_inner()).await.map(Response::new)
    }

    async fn stop_provider(
        &self,
        request: Request<proto::stop_provider::Request>,
    ) -> Result<Response<proto::stop_provider::Response>, Status> {
        tracing::debug!(rpc = "stop_provider", "call");
        self.0.stop_provider(request.into_inner()).await.map(Response::new)
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<proto::get_resource_identity_schemas::Request>,
    ) -> Result<Response<proto::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(self.0.get_resource_identity_schemas()))
    }

    async fn upgrade_resource_identity(
        &self,
        request: Request<proto::upgrade_resource_identity::Request>,
    ) -> Result<Response<proto::upgrade_resource_identity::Response>, Status> {
        Ok(Response::new(self.0.upgrade_resource_identity(request.get_ref())))
    }

    async fn move_resource_state(
        &self,
        request: Request<proto::move_resource_state::Request>,
    ) -> Result<Response<proto::move_resource_state::Response>, Status> {
        Ok(Response::new(self.0.move_resource_state(request.get_ref())))
    }

    async fn generate_resource_config(
        &self,
        request: Request<proto::generate_resource_config::Request>,
    ) -> Result<Response<proto::generate_resource_config::Response>, Status> {
        Ok(Response::new(self.0.generate_resource_config(request.get_ref())))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<proto::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<proto::validate_ephemeral_resource_config::Response>, Status> {
        Ok(Response::new(proto::validate_ephemeral_resource_config::Response {
            diagnostics: unsupported("Ephemeral resources", &request.get_ref().type_name),
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        request: Request<proto::close_ephemeral_resource::Request>,
    ) -> Result<Response<proto::close_ephemeral_resource::Response>, Status> {
        Ok(Response::new(proto::close_ephemeral_resource::Response {
            diagnostics: unsupported("Ephemeral resources", &request.get_ref().type_name),
        }))
    }

    async fn validate_list_resource_config(
        &self,
        request: Request<proto::validate_list_resource_config::Request>,
    ) -> Result<Response<proto::validate_list_resource_config::Response>, Status> {
        Ok(Response::new(proto::validate_list_resource_config::Response {
            diagnostics: unsupported("Listing resources", &request.get_ref().type_name),
        }))
    }

    async fn validate_state_store_config(
        &self,
        request: Request<proto::validate_state_store::Request>,
    ) -> Result<Response<proto::validate_state_store::Response>, Status> {
        Ok(Response::new(proto::validate_state_store::Response {
            diagnostics: unsupported("State storage", &request.get_ref().type_name),
        }))
    }

    async fn configure_state_store(
        &self,
        request: Request<proto::configure_state_store::Request>,
    ) -> Result<Response<proto::configure_state_store::Response>, Status> {
        Ok(Response::new(proto::configure_state_store::Response {
            diagnostics: unsupported("State storage", &request.get_ref().type_name),
            ..Default::default()
        }))
    }

    async fn lock_state(
        &self,
        request: Request<proto::lock_state::Request>,
    ) -> Result<Response<proto::lock_state::Response>, Status> {
        Ok(Response::new(proto::lock_state::Response {
            diagnostics: unsupported("State storage", &request.get_ref().type_name),
            ..Default::default()
        }))
    }

    async fn unlock_state(
        &self,
        request: Request<proto::unlock_state::Request>,
    ) -> Result<Response<proto::unlock_state::Response>, Status> {
        Ok(Response::new(proto::unlock_state::Response {
            diagnostics: unsupported("State storage", &request.get_ref().type_name),
        }))
    }

    async fn get_states(
        &self,
        request: Request<proto::get_states::Request>,
    ) -> Result<Response<proto::get_states::Response>, Status> {
        Ok(Response::new(proto::get_states::Response {
            diagnostics: unsupported("State storage", &request.get_ref().type_name),
            ..Default::default()
        }))
    }

    async fn delete_state(
        &self,
        request: Request<proto::delete_state::Request>,
    ) -> Result<Response<proto::delete_state::Response>, Status> {
        Ok(Response::new(proto::delete_state::Response {
            diagnostics: unsupported("State storage", &request.get_ref().type_name),
        }))
    }

    async fn plan_action(
        &self,
        request: Request<proto::plan_action::Request>,
    ) -> Result<Response<proto::plan_action::Response>, Status> {
        Ok(Response::new(proto::plan_action::Response {
            diagnostics: unsupported("Actions", &request.get_ref().action_type),
            ..Default::default()
        }))
    }

    async fn validate_action_config(
        &self,
        request: Request<proto::validate_action_config::Request>,
    ) -> Result<Response<proto::validate_action_config::Response>, Status> {
        Ok(Response::new(proto::validate_action_config::Response {
            diagnostics: unsupported("Actions", &request.get_ref().type_name),
        }))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<proto::open_ephemeral_resource::Request>,
    ) -> Result<Response<proto::open_ephemeral_resource::Response>, Status> {
        Ok(Response::new(proto::open_ephemeral_resource::Response {
            diagnostics: unsupported("Ephemeral resources", &request.get_ref().type_name),
            ..Default::default()
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        _request: Request<proto::renew_ephemeral_resource::Request>,
    ) -> Result<Response<proto::renew_ephemeral_resource::Response>, Status> {
        Ok(Response::new(proto::renew_ephemeral_resource::Response {
            diagnostics: unsupported("Ephemeral resources", ""),
            ..Default::default()
        }))
    }

    async fn list_resource(
        &self,
        request: Request<proto::list_resource::Request>,
    ) -> Result<Response<Self::ListResourceStream>, Status> {
        Ok(Response::new(self.0.list_resource(request.get_ref())))
    }

    async fn read_state_bytes(
        &self,
        request: Request<proto::read_state_bytes::Request>,
    ) -> Result<Response<Self::ReadStateBytesStream>, Status> {
        Ok(Response::new(self.0.read_state_bytes(request.get_ref())))
    }

    async fn write_state_bytes(
        &self,
        _request: Request<Streaming<proto::write_state_bytes::RequestChunk>>,
    ) -> Result<Response<proto::write_state_bytes::Response>, Status> {
        Ok(Response::new(proto::write_state_bytes::Response { diagnostics: unsupported("State storage", "") }))
    }

    async fn invoke_action(
        &self,
        request: Request<proto::invoke_action::Request>,
    ) -> Result<Response<Self::InvokeActionStream>, Status> {
        Ok(Response::new(self.0.invoke_action(request.get_ref())))
    }
}
