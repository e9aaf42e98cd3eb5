//! go-plugin AutoMTLS. Terraform generates a throw-away client certificate
//! (ECDSA P-521, self-signed, marked as a CA) and passes it in
//! `PLUGIN_CLIENT_CERT`; the plugin generates its own and sends it in the
//! handshake line. Each side then trusts exactly the other's certificate.
//!
//! The client check is a pin: the presented certificate must be byte-for-
//! byte the one Terraform passed, and the handshake signature must verify
//! with its key. A pin rather than webpki path building, because webpki
//! refuses a CA certificate as an end-entity, which is exactly what
//! Terraform presents. aws-lc-rs is the crypto provider because it
//! verifies P-521 signatures.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("PLUGIN_CLIENT_CERT holds no PEM certificate")]
    NoClientCertificate,
    #[error("PLUGIN_CLIENT_CERT is not valid PEM: {0}")]
    ClientCertificatePem(String),
    #[error("cannot generate the server certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The plugin's own certificate and key, generated per run.
#[derive(Debug)]
pub struct ServerIdentity {
    pub certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ServerIdentity {
    /// A self-signed P-256 leaf for "localhost", valid from a minute ago
    /// (clock skew between the processes is nil, but be lenient) for a year.
    pub fn generate() -> Result<Self, TlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(365);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let certificate = params.self_signed(&key_pair)?;
        Ok(ServerIdentity {
            certificate: certificate.der().clone(),
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        })
    }
}

/// Reads the first certificate of a PEM bundle.
pub fn parse_client_certificate(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    let mut certificates = CertificateDer::pem_slice_iter(pem.as_bytes());
    match certificates.next() {
        Some(Ok(certificate)) => Ok(certificate),
        Some(Err(error)) => Err(TlsError::ClientCertificatePem(error.to_string())),
        None => Err(TlsError::NoClientCertificate),
    }
}

pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Server TLS configuration: our identity, the pinned client, ALPN `h2`
/// (grpc-go refuses TLS connections that do not negotiate it).
pub fn server_config(
    identity: &ServerIdentity,
    client_certificate: CertificateDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = crypto_provider();
    let verifier =
        PinnedClientVerifier { pinned: client_certificate, algorithms: provider.signature_verification_algorithms };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![identity.certificate.clone()], PrivateKeyDer::Pkcs8(identity.key.clone_key()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts exactly one client certificate.
#[derive(Debug)]
struct PinnedClientVerifier {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hint: Terraform's client has a single certificate to offer.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() != self.pinned.as_ref() || !intermediates.is_empty() {
            tracing::warn!("rejected a TLS client that did not present Terraform's certificate");
            return Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_verifier_accepts_only_the_pinned_certificate() {
        let pinned = ServerIdentity::generate().map(|identity| identity.certificate);
        let other = ServerIdentity::generate().map(|identity| identity.certificate);
        let (Ok(pinned), Ok(other)) = (pinned, other) else {
            panic!("certificate generation failed");
        };
        let verifier = PinnedClientVerifier {
            pinned: pinned.clone(),
            algorithms: crypto_provider().signature_verification_algorithms,
        };
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(&pinned, &[], now).is_ok());
        assert!(verifier.verify_client_cert(&other, &[], now).is_err());
        assert!(verifier.verify_client_cert(&pinned, &[other], now).is_err());
        assert!(verifier.supported_verify_schemes().contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }

    #[test]
    fn client_certificate_pem_is_parsed_or_rejected() {
        let Ok(params) = rcgen::CertificateParams::new(vec!["localhost".to_owned()]) else {
            panic!("params");
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384);
        let Ok(certificate) = key.and_then(|key| params.self_signed(&key)) else {
            panic!("self-signed");
        };
        let parsed = parse_client_certificate(&certificate.pem());
        assert_eq!(parsed.ok().as_ref(), Some(certificate.der()));
        assert!(matches!(parse_client_certificate("nope"), Err(TlsError::NoClientCertificate)));
    }
}
