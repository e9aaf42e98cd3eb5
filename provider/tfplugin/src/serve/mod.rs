//! go-plugin server bootstrap: check that Terraform launched us, agree on
//! the protocol, listen, print the handshake line, serve until Terraform
//! closes the plugin.
//!
//! stdout carries the handshake line and nothing else; logs go to stderr,
//! which Terraform copies into its own log.

pub mod go_plugin;
mod listener;
mod shutdown;
pub mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::task::JoinHandle;

pub use listener::ListenAddress;
use listener::Listener;
pub use shutdown::Shutdown;
use tls::{ServerIdentity, TlsError};

use crate::server::{ProviderService, RegistryError};
use crate::{Provider, ProviderServer};

/// The value Terraform puts in `TF_PLUGIN_MAGIC_COOKIE`: a shared secret
/// only in the sense that it proves we were launched as a plugin.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own handshake version, first field of the handshake line.
const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol this framework speaks.
pub const PROTOCOL_VERSION: u32 = 6;
/// How long in-flight calls may take to drain after Shutdown. Terraform
/// kills the process two seconds after asking anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "This binary is a Terraform/OpenTofu provider plugin. Terraform starts it; \
         it is not meant to be run by hand.\n\n\
         To use a local build, point Terraform at its directory with dev_overrides in a \
         CLI configuration file, and set TF_CLI_CONFIG_FILE to that file:\n\n\
         provider_installation {{\n  dev_overrides {{\n    \"{source_address}\" = \"/directory/containing/this/binary\"\n  }}\n  direct {{}}\n}}\n\n\
         Then run terraform plan/apply (skip terraform init for that provider)."
    )]
    NotLaunchedByTerraform { source_address: String },
    #[error(
        "Terraform offers plugin protocol versions {offered:?}, but this provider speaks only \
         version 6. Use Terraform 1.0 or later, or OpenTofu."
    )]
    ProtocolNotOffered { offered: String },
    #[error("invalid provider definition: {0}")]
    Registry(#[from] RegistryError),
    #[error("AutoMTLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen for Terraform: {0}")]
    Listen(std::io::Error),
    #[error("cannot write the handshake line to stdout: {0}")]
    Handshake(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What go-plugin tells a plugin through its environment. Tests build one
/// by hand instead of changing the process environment.
#[derive(Debug, Clone, Default)]
pub struct PluginEnvironment {
    pub magic_cookie: Option<String>,
    /// `PLUGIN_PROTOCOL_VERSIONS`, e.g. `"5,6"`.
    pub protocol_versions: Option<String>,
    /// `PLUGIN_CLIENT_CERT`: Terraform's certificate (PEM), enables mTLS.
    pub client_certificate_pem: Option<String>,
    /// `PLUGIN_UNIX_SOCKET_DIR`: where to create the socket directory.
    pub unix_socket_dir: Option<PathBuf>,
}

impl PluginEnvironment {
    pub fn from_process() -> Self {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        PluginEnvironment {
            magic_cookie: variable(MAGIC_COOKIE_KEY),
            protocol_versions: variable("PLUGIN_PROTOCOL_VERSIONS"),
            client_certificate_pem: variable("PLUGIN_CLIENT_CERT"),
            unix_socket_dir: variable("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from),
        }
    }

    fn check(&self, source_address: &str) -> Result<(), ServeError> {
        if self.magic_cookie.as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(ServeError::NotLaunchedByTerraform { source_address: source_address.to_owned() });
        }
        if let Some(offered) = &self.protocol_versions {
            let speaks_ours = offered.split(',').any(|version| version.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
            if !speaks_ours {
                return Err(ServeError::ProtocolNotOffered { offered: offered.clone() });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub environment: PluginEnvironment,
    /// Shown in the "run by hand" help, e.g. `"sdsec/sdsec"`.
    pub source_address: String,
    /// Install a stderr `tracing` subscriber (level from `TF_LOG_PROVIDER`
    /// or `TF_LOG`) unless the binary installed one already.
    pub init_logging: bool,
}

impl ServeOptions {
    /// Reads the process environment.
    pub fn new(source_address: impl Into<String>) -> Self {
        ServeOptions {
            environment: PluginEnvironment::from_process(),
            source_address: source_address.into(),
            init_logging: true,
        }
    }
}

/// A plugin that is listening. Dropping it does not stop the server; call
/// [`RunningPlugin::shutdown`] or wait for Terraform's Shutdown.
#[derive(Debug)]
pub struct RunningPlugin {
    handshake_line: String,
    address: ListenAddress,
    server_certificate: Option<Vec<u8>>,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), ServeError>>,
    // Removed (with the socket) when the plugin ends.
    _socket_directory: Option<tempfile::TempDir>,
}

impl RunningPlugin {
    /// `1|6|unix|/tmp/…/plugin.sock|grpc|<base64 DER, no padding>`.
    pub fn handshake_line(&self) -> &str {
        &self.handshake_line
    }

    pub fn address(&self) -> &ListenAddress {
        &self.address
    }

    /// The server certificate (DER), when AutoMTLS is on.
    pub fn server_certificate_der(&self) -> Option<&[u8]> {
        self.server_certificate.as_deref()
    }

    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Waits until the server has stopped (after Shutdown and draining).
    pub async fn wait(self) -> Result<(), ServeError> {
        let RunningPlugin { task, _socket_directory, .. } = self;
        let result = match task.await {
            Ok(result) => result,
            Err(error) => Err(ServeError::Listen(std::io::Error::other(error))),
        };
        drop(_socket_directory);
        result
    }
}

/// Checks the environment, binds, and starts serving in the background.
pub async fn start(provider: Arc<dyn Provider>, options: &ServeOptions) -> Result<RunningPlugin, ServeError> {
    let environment = &options.environment;
    environment.check(&options.source_address)?;
    let server = Arc::new(ProviderServer::new(provider)?);

    let tls = match &environment.client_certificate_pem {
        Some(pem) => {
            let client_certificate = tls::parse_client_certificate(pem)?;
            let identity = ServerIdentity::generate()?;
            let config = tls::server_config(&identity, client_certificate)?;
            Some((identity.certificate, Arc::new(config)))
        }
        None => None,
    };

    let socket_directory = make_socket_directory(environment.unix_socket_dir.as_deref());
    let (listener, address) =
        Listener::bind(socket_directory.as_ref().map(tempfile::TempDir::path)).await.map_err(ServeError::Listen)?;

    let server_certificate = tls.as_ref().map(|(certificate, _)| certificate.to_vec());
    let handshake_line = handshake_line(&address, server_certificate.as_deref());
    let shutdown = Shutdown::new();
    let incoming = listener.incoming(tls.map(|(_, config)| config), shutdown.clone());
    let task = tokio::spawn(run_grpc(server, incoming, shutdown.clone()));
    Ok(RunningPlugin {
        handshake_line,
        address,
        server_certificate,
        shutdown,
        task,
        _socket_directory: socket_directory,
    })
}

/// Serves until Terraform shuts the plugin down: the whole life of a
/// provider process.
pub async fn serve(provider: Arc<dyn Provider>, options: ServeOptions) -> Result<(), ServeError> {
    if options.init_logging {
        init_logging();
    }
    let running = start(provider, &options).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", running.handshake_line()).and_then(|()| stdout.flush()).map_err(ServeError::Handshake)?;
    drop(stdout);
    tracing::info!(address = ?running.address(), "plugin serving");
    handle_signals(running.shutdown.clone());
    running.wait().await
}

/// Entry point for a provider binary's `main`: runs [`serve`] on a new
/// runtime, prints any error to stderr, and returns the exit code (1 on
/// error, including being run by hand).
pub fn run(provider: Arc<dyn Provider>, options: ServeOptions) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServeError::Runtime);
    let result = runtime.and_then(|runtime| runtime.block_on(serve(provider, options)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn make_socket_directory(parent: Option<&std::path::Path>) -> Option<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("plugin");
    let created = match parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    };
    created.inspect_err(|error| tracing::warn!(%error, "cannot create a socket directory")).ok()
}

/// go-plugin's handshake: core version, app protocol version, network,
/// address, protocol, and the server certificate as unpadded base64 DER.
fn handshake_line(address: &ListenAddress, certificate_der: Option<&[u8]>) -> String {
    let (network, address) = address.handshake_fields();
    let certificate =
        certificate_der.map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der)).unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|{network}|{address}|grpc|{certificate}")
}

async fn run_grpc(
    server: Arc<ProviderServer>,
    incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<listener::Connection>>,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("plugin", tonic_health::ServingStatus::Serving).await;
    let controller = go_plugin::Controller { shutdown: shutdown.clone() };
    let stdio = go_plugin::Stdio { shutdown: shutdown.clone() };
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(go_plugin::GrpcControllerServer::new(controller))
        .add_service(go_plugin::GrpcStdioServer::new(stdio))
        .add_service(ProviderService(server).into_server());
    let graceful = router.serve_with_incoming_shutdown(incoming, shutdown.clone().wait_owned());
    // Graceful stop waits for clients to hang up; do not wait forever.
    let drain_deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = graceful => result.map_err(ServeError::from),
        () = drain_deadline => {
            tracing::warn!("clients still connected after shutdown; stopping anyway");
            Ok(())
        }
    }
}

/// SIGTERM stops the plugin. SIGINT is ignored: a Ctrl-C in the terminal
/// reaches the whole process group, and Terraform itself decides how to
/// stop (StopProvider, then Shutdown) so that state is saved first.
fn handle_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    shutdown.trigger();
                    return;
                }
                _ = interrupt.recv() => tracing::info!("SIGINT ignored; Terraform drives the stop"),
            }
        }
    });
}

/// Level from `TF_LOG_PROVIDER`, else `TF_LOG`, else warnings only.
fn init_logging() {
    let level = ["TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .map(|level| match level.to_ascii_lowercase().as_str() {
            "trace" | "json" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "info" => tracing::Level::INFO,
            "error" => tracing::Level::ERROR,
            _ => tracing::Level::WARN,
        })
        .unwrap_or(tracing::Level::WARN);
    // Fails only when the binary installed its own subscriber: keep that one.
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_max_level(level).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(cookie: Option<&str>, versions: Option<&str>) -> PluginEnvironment {
        PluginEnvironment {
            magic_cookie: cookie.map(str::to_owned),
            protocol_versions: versions.map(str::to_owned),
            ..PluginEnvironment::default()
        }
    }

    #[test]
    fn missing_or_wrong_cookie_explains_dev_overrides() {
        for cookie in [None, Some("wrong")] {
            let error = environment(cookie, None).check("sdsec/sdsec");
            let message = error.err().map(|error| error.to_string()).unwrap_or_default();
            assert!(message.contains("not meant to be run by hand"), "{message}");
            assert!(message.contains("dev_overrides"));
            assert!(message.contains("\"sdsec/sdsec\" = "));
        }
    }

    #[test]
    fn protocol_six_must_be_offered() {
        let cookie = Some(MAGIC_COOKIE_VALUE);
        assert!(environment(cookie, None).check("x").is_ok());
        assert!(environment(cookie, Some("5, 6")).check("x").is_ok());
        let refused = environment(cookie, Some("4,5")).check("x");
        assert!(matches!(refused, Err(ServeError::ProtocolNotOffered { .. })));
    }

    #[test]
    fn handshake_line_has_six_fields_and_unpadded_certificate() {
        let address = ListenAddress::Unix(PathBuf::from("/tmp/plugin1/plugin.sock"));
        assert_eq!(handshake_line(&address, None), "1|6|unix|/tmp/plugin1/plugin.sock|grpc|");
        // One byte encodes to "AQ==" padded, "AQ" unpadded.
        assert_eq!(handshake_line(&address, Some(&[1])), "1|6|unix|/tmp/plugin1/plugin.sock|grpc|AQ");
        let tcp = ListenAddress::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 4000)));
        assert_eq!(handshake_line(&tcp, None), "1|6|tcp|127.0.0.1:4000|grpc|");
    }
}
