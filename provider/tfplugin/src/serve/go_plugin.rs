//! go-plugin's own services, which Terraform's plugin client expects beside
//! the provider: the controller (Shutdown), stdio forwarding and health.
//! Messages are written here as prost structs (field numbers are the
//! protocol's); service stubs come from `build.rs`.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::shutdown::Shutdown;

#[allow(clippy::all, missing_debug_implementations)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/plugin.GRPCController.rs"));
    include!(concat!(env!("OUT_DIR"), "/plugin.GRPCStdio.rs"));
}

pub use generated::g_r_p_c_controller_client::GRPCControllerClient as GrpcControllerClient;
pub(crate) use generated::g_r_p_c_controller_server::{
    GRPCController as GrpcController, GRPCControllerServer as GrpcControllerServer,
};
pub(crate) use generated::g_r_p_c_stdio_server::{GRPCStdio as GrpcStdio, GRPCStdioServer as GrpcStdioServer};

/// go-plugin's empty message (wire-identical to `google.protobuf.Empty`).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Empty {}

/// A chunk of the plugin's stdout or stderr, forwarded over gRPC.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StdioData {
    #[prost(enumeration = "StdioChannel", tag = "1")]
    pub channel: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StdioChannel {
    Invalid = 0,
    Stdout = 1,
    Stderr = 2,
}

/// `plugin.GRPCController`: Terraform's way of closing the plugin.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::info!("Terraform asked the plugin to shut down");
        // Graceful: this response is still delivered before the server stops.
        self.shutdown.trigger();
        Ok(Response::new(Empty {}))
    }
}

/// `plugin.GRPCStdio`: this framework never writes to stdout after the
/// handshake and logs to stderr directly (which Terraform captures), so
/// the stream stays idle and ends when the plugin shuts down; ending it is
/// what lets graceful shutdown complete.
#[derive(Debug, Clone)]
pub(crate) struct Stdio {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = ReceiverStream<Result<StdioData, Status>>;

    async fn stream_stdio(&self, _request: Request<Empty>) -> Result<Response<Self::StreamStdioStream>, Status> {
        let (sender, receiver) = mpsc::channel(1);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            // Keep the sender alive (stream open) until shutdown.
            shutdown.wait().await;
            drop(sender);
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
