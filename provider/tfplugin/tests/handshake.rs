//! The plugin end to end, in process: AutoMTLS with a Terraform-shaped
//! client certificate (self-signed ECDSA P-521 CA), the handshake line, the
//! provider and health services over a unix socket, rejection of any other
//! client certificate, and shutdown through the controller.

// Helpers below are test code too: a failed expectation is the report.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tfplugin::serve::go_plugin::{Empty, GrpcControllerClient};
use tfplugin::serve::{ListenAddress, MAGIC_COOKIE_VALUE, PluginEnvironment, ServeOptions};
use tfplugin::{ApplyRequest, Attribute, Diagnostics, Provider, Resource, Schema, StateResult, Value, proto};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

struct Example;

#[tfplugin::async_trait]
impl Provider for Example {
    fn type_name(&self) -> &str {
        "example"
    }
    fn schema(&self) -> Schema {
        Schema::new(0)
    }
    async fn configure(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(Widget)]
    }
}

struct Widget;

#[tfplugin::async_trait]
impl Resource for Widget {
    fn type_name(&self) -> &str {
        "example_widget"
    }
    fn schema(&self) -> Schema {
        Schema::new(0).attribute(Attribute::string("id").computed())
    }
    async fn create(&self, request: ApplyRequest) -> StateResult {
        StateResult::new(request.planned_state)
    }
    async fn read(&self, current_state: Value, _private: Vec<u8>) -> StateResult {
        StateResult::new(current_state)
    }
    async fn update(&self, request: ApplyRequest) -> StateResult {
        StateResult::new(request.planned_state)
    }
    async fn delete(&self, _request: ApplyRequest) -> Diagnostics {
        Diagnostics::new()
    }
}

struct ClientIdentity {
    pem: String,
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

/// Shaped like go-plugin's client certificate: self-signed, CA, both
/// client and server auth, "localhost".
fn client_identity(algorithm: &'static rcgen::SignatureAlgorithm) -> ClientIdentity {
    let key_pair = rcgen::KeyPair::generate_for(algorithm).expect("key pair");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "HashiCorp");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth, rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = params.self_signed(&key_pair).expect("self-signed");
    ClientIdentity {
        pem: certificate.pem(),
        certificate: certificate.der().clone(),
        key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
    }
}

/// A gRPC channel over the unix socket, TLS with `identity`, trusting only
/// the server certificate from the handshake line.
async fn connect(
    socket: std::path::PathBuf,
    server_certificate: CertificateDer<'static>,
    identity: &ClientIdentity,
) -> Result<Channel, Box<dyn std::error::Error + Send + Sync>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_certificate)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![identity.certificate.clone()], PrivateKeyDer::Pkcs8(identity.key.clone_key()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            let connector = connector.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                let server_name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                let tls = connector.connect(server_name, stream).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(channel)
}

#[tokio::test]
async fn mtls_handshake_serves_provider_and_health_and_rejects_strangers() {
    let terraform = client_identity(&rcgen::PKCS_ECDSA_P521_SHA512);
    let options = ServeOptions {
        environment: PluginEnvironment {
            magic_cookie: Some(MAGIC_COOKIE_VALUE.to_owned()),
            protocol_versions: Some("5,6".to_owned()),
            client_certificate_pem: Some(terraform.pem.clone()),
            unix_socket_dir: None,
        },
        source_address: "example/example".to_owned(),
        init_logging: false,
    };
    let running = tfplugin::serve::start(Arc::new(Example), &options).await.expect("plugin starts");

    // 1|6|unix|<path>|grpc|<base64 DER without padding>
    let fields: Vec<&str> = running.handshake_line().split('|').collect();
    assert_eq!(fields.len(), 6, "{}", running.handshake_line());
    assert_eq!(&fields[..3], ["1", "6", "unix"]);
    assert_eq!(fields[4], "grpc");
    assert!(!fields[5].ends_with('='));
    let certificate =
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(fields[5]).expect("unpadded standard base64");
    assert_eq!(Some(certificate.as_slice()), running.server_certificate_der());
    let ListenAddress::Unix(socket) = running.address().clone() else {
        panic!("expected a unix socket");
    };
    assert_eq!(socket.to_str(), Some(fields[3]));
    let server_certificate = CertificateDer::from(certificate);

    let channel = connect(socket.clone(), server_certificate.clone(), &terraform)
        .await
        .expect("Terraform's certificate is accepted");
    let schema = proto::provider_client::ProviderClient::new(channel.clone())
        .get_provider_schema(proto::get_provider_schema::Request {})
        .await
        .expect("GetProviderSchema")
        .into_inner();
    assert!(schema.resource_schemas.contains_key("example_widget"));
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest { service: "plugin".to_owned() })
        .await
        .expect("health Check")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Any other certificate, even for the same name, is refused. With TLS
    // 1.3 the refusal may only show on the first call, so make one.
    let stranger = client_identity(&rcgen::PKCS_ECDSA_P384_SHA384);
    let attempt = async {
        let channel = connect(socket.clone(), server_certificate.clone(), &stranger).await?;
        let response = proto::provider_client::ProviderClient::new(channel)
            .get_provider_schema(proto::get_provider_schema::Request {})
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), attempt).await;
    assert!(matches!(refused, Ok(Err(_))), "a stranger must not get an answer");

    // Terraform closes the plugin through the controller.
    GrpcControllerClient::new(channel).shutdown(Empty {}).await.expect("Shutdown");
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("stops after Shutdown")
        .expect("clean exit");
    assert!(!socket.exists(), "the socket directory is removed");
}

#[tokio::test]
async fn without_client_certificate_serves_plaintext_with_empty_certificate_field() {
    let options = ServeOptions {
        environment: PluginEnvironment {
            magic_cookie: Some(MAGIC_COOKIE_VALUE.to_owned()),
            ..PluginEnvironment::default()
        },
        source_address: "example/example".to_owned(),
        init_logging: false,
    };
    let running = tfplugin::serve::start(Arc::new(Example), &options).await.expect("plugin starts");
    assert!(running.handshake_line().ends_with("|grpc|"));
    let ListenAddress::Unix(socket) = running.address().clone() else {
        panic!("expected a unix socket");
    };
    let channel = Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .expect("connects");
    let metadata = proto::provider_client::ProviderClient::new(channel)
        .get_metadata(proto::get_metadata::Request {})
        .await
        .expect("GetMetadata")
        .into_inner();
    assert_eq!(metadata.resources.len(), 1);
    running.shutdown();
    tokio::time::timeout(Duration::from_secs(10), running.wait()).await.expect("stops").expect("clean exit");
}

#[tokio::test]
async fn run_by_hand_is_refused_before_listening() {
    let options = ServeOptions {
        environment: PluginEnvironment::default(),
        source_address: "example/example".to_owned(),
        init_logging: false,
    };
    let error = tfplugin::serve::start(Arc::new(Example), &options).await.err();
    assert!(matches!(error, Some(tfplugin::ServeError::NotLaunchedByTerraform { .. })));
}
