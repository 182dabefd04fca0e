//! TLS for amqps:// and https:// (the management API): one rustls client configuration
//! from `--tls-ca-cert-file`, `--tls-cert-file`/`--tls-key-file` and `--insecure`, used by
//! both lapin and reqwest so the two always trust the same servers.

use crate::exit::{self, coded};
use crate::tls::{provider, read_certs, read_key, read_roots};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::PathBuf;
use std::sync::Arc;

/// How to check the server and who we are to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM CA certificates to trust instead of the system's (`--tls-ca-cert-file`).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that verify peers (`--tls-cert-file`).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (`--tls-key-file`).
    pub key: Option<PathBuf>,
    /// Accept any server certificate (`--insecure`): encrypted, but open to impersonation.
    pub insecure: bool,
}

impl TlsOptions {
    /// The rustls configuration; unreadable files are a data error (exit 65) naming the flag.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let bad = |e: String| coded(exit::DATA_ERR, e);
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS set-up: {e}")))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "TLS client certificate file (--tls-cert-file)")
                    .map_err(bad)?;
                let key = read_key(key, "TLS client key file (--tls-key-file)").map_err(bad)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    bad(format!(
                        "--tls-key-file does not match --tls-cert-file: {e}"
                    ))
                })
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(coded(
                exit::USAGE,
                "a client certificate needs both --tls-cert-file and --tls-key-file",
            )),
        }
    }

    /// The given CA file, else the system's trust store (like curl and RabbitMQ's clients).
    fn roots(&self) -> anyhow::Result<RootCertStore> {
        if let Some(ca) = &self.ca_cert {
            return read_roots(ca, "TLS CA certificate file (--tls-ca-cert-file)")
                .map_err(|e| coded(exit::DATA_ERR, e));
        }
        let mut roots = RootCertStore::empty();
        // Unreadable entries of the system store are skipped: one bad file there must not
        // stop every connection; an empty store shows up as an unknown-issuer error.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        Ok(roots)
    }
}

/// For http:// clients: reqwest wants a TLS configuration even when it never uses one,
/// and reading the system's trust store for nothing would be wasted start-up time.
pub(super) fn unused_config() -> anyhow::Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

/// `--insecure`: every certificate is accepted, but the handshake signatures are still
/// checked, so the session is at least bound to the key the server presented.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls error inside an I/O error, if that is what failed: a handshake refused by
/// either side reads differently from a broker that is down.
pub(super) fn tls_failure(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}
