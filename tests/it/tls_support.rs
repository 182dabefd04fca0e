//! A throwaway PKI for the TLS tests: a self-signed CA, a server certificate for
//! `localhost` / 127.0.0.1 and a client certificate, all signed by it and written as PEM
//! files to a directory of their own (removed when dropped).
#![allow(dead_code)]

use crate::support::{Broker, unique};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::PathBuf;

/// PEM files of a fresh CA and the certificates it signed.
pub struct Pki {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA's certificate (what clients and the broker trust).
    pub ca: PathBuf,
    /// The broker's certificate and key (`localhost`, 127.0.0.1).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate and key signed by the CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The CA certificate as PEM text (for clients that take it in memory).
    pub ca_pem: String,
}

impl Pki {
    /// Generate everything.
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(unique("rmq-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rmq test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "rmq test");
            params.extended_key_usages = vec![purpose];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key_pem) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key_pem) =
            leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);

        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key_pem),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key_pem),
            ca_pem: ca_cert.pem(),
            dir,
        }
    }

    /// An HTTP client that trusts this CA (and only it).
    pub fn https_client(&self) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap()
    }

    /// A broker serving amqps (on a free port) with this PKI's server certificate.
    pub fn broker(&self, verify_peer: bool) -> Broker {
        let (cert, key, ca) = (
            self.server_cert.clone(),
            self.server_key.clone(),
            self.ca.clone(),
        );
        Broker::start_with(move |c| {
            let mut tls = rmq::broker::TlsConfig::new(0, cert, key);
            if verify_peer {
                tls.ca_cert = Some(ca);
                tls.fail_if_no_peer_cert = true;
            }
            c.tls = Some(tls);
        })
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Broker {
    /// `amqps://guest:guest@127.0.0.1:PORT/%2F` (an IP address the server certificate names).
    pub fn amqps_url(&self) -> String {
        let addr = self.tls_addr.expect("the broker serves amqps");
        format!("amqps://guest:guest@{addr}/%2F")
    }

    /// `https://127.0.0.1:PORT`, the management API over TLS.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.mgmt_addr)
    }
}
