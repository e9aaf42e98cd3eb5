//! Generates tonic service stubs for go-plugin's own small services
//! (controller and stdio). Their messages are hand-written prost structs in
//! `src/serve/go_plugin.rs`; the manual builder needs no `.proto` file and
//! no protoc.

use tonic_build::manual::{Builder, Method, Service};

fn main() {
    let controller = Service::builder()
        .name("GRPCController")
        .package("plugin")
        .method(
            Method::builder()
                .name("shutdown")
                .route_name("Shutdown")
                .input_type("crate::serve::go_plugin::Empty")
                .output_type("crate::serve::go_plugin::Empty")
                .codec_path("tonic::codec::ProstCodec")
                .build(),
        )
        .build();
    let stdio = Service::builder()
        .name("GRPCStdio")
        .package("plugin")
        .method(
            Method::builder()
                .name("stream_stdio")
                .route_name("StreamStdio")
                .input_type("crate::serve::go_plugin::Empty")
                .output_type("crate::serve::go_plugin::StdioData")
                .codec_path("tonic::codec::ProstCodec")
                .server_streaming()
                .build(),
        )
        .build();
    // Clients are generated too: the integration test drives the controller.
    Builder::new().build_server(true).build_client(true).compile(&[controller, stdio]);
}
