//! The TLS step of the tunnel checks: a real rustls handshake whose verifier records the chain the
//! server presented, so a refused chain can be explained ("issued by CN=Corp Inspection CA, which
//! is not a trusted root: probable TLS interception").
//!
//! The verifier delegates every decision to rustls' own `WebPkiServerVerifier` over the system
//! roots (or `--ca-file`); it only remembers what it was shown.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use x509_cert::der::Decode;

/// Reads PEM trust anchors; the error names the path.
pub(crate) fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA file {shown}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("malformed PEM in CA file {shown}: {e}"))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("no usable certificate in CA file {shown}"));
    }
    Ok(Arc::new(store))
}

/// The system roots (rustls-native-certs), loaded once per process.
pub(crate) fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(format!("no usable system root certificates ({:?})", loaded.errors));
            }
            Ok(Arc::new(store))
        })
        .clone()
}

/// Delegates to webpki, remembers the presented chain (leaf first).
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    pub(crate) fn new(roots: Arc<RootCertStore>) -> Result<Arc<RecordingVerifier>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        Ok(Arc::new(RecordingVerifier { inner, chain: Mutex::new(Vec::new()) }))
    }

    /// The chain the server presented (empty before the handshake got that far).
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// A client config for one probe (ring, TLS 1.2 + 1.3, ALPN http/1.1 for the upgrade).
    pub(crate) fn client_config(self: &Arc<Self>) -> Result<Arc<rustls::ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `(subject, issuer)` of a DER certificate in RFC 4514 form.
pub(crate) fn names(der: &CertificateDer<'_>) -> Option<(String, String)> {
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    Some((cert.tbs_certificate.subject.to_string(), cert.tbs_certificate.issuer.to_string()))
}

/// Why a handshake failed, for the `.tls` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The chain does not lead to a trusted root: interception when the chain is well-formed.
    UntrustedIssuer { issuer: String, self_signed: bool },
    /// The certificate is for other names.
    WrongName { subject: String },
    /// Expired or not yet valid (or this machine's clock is wrong).
    Time { what: String },
    /// Any other certificate problem.
    Certificate(String),
    /// The server (or a middlebox) ended or refused the handshake.
    Handshake(String),
}

/// Classifies the error of `TlsConnector::connect` using the recorded chain.
pub(crate) fn classify(err: &std::io::Error, chain: &[CertificateDer<'static>]) -> TlsFailure {
    let top = chain.last().and_then(names);
    let leaf = chain.first().and_then(names);
    match err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(ce)) => match ce {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                let (subject, issuer) =
                    top.unwrap_or_else(|| ("?".into(), "an unknown issuer".into()));
                TlsFailure::UntrustedIssuer { self_signed: subject == issuer, issuer }
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongName { subject: leaf.map(|l| l.0).unwrap_or_else(|| "?".into()) }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::Time { what: format!("{ce:?}") }
            }
            other => TlsFailure::Certificate(format!("{other:?}")),
        },
        Some(other) => TlsFailure::Handshake(other.to_string()),
        None => TlsFailure::Handshake(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_names_come_from_the_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["cable.ua5v.com".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Corp Inspection CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (subject, issuer) = names(cert.der()).unwrap();
        assert_eq!(subject, issuer);
        assert!(issuer.contains("CN=Corp Inspection CA"), "{issuer}");

        let err = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let f = classify(&err, &[cert.der().clone()]);
        assert!(
            matches!(&f, TlsFailure::UntrustedIssuer { issuer, self_signed: true } if issuer.contains("Corp Inspection CA")),
            "{f:?}"
        );
    }

    #[test]
    fn unreadable_ca_file_is_named() {
        let e = load_roots(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
