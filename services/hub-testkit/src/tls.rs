//! A throwaway certificate authority made at test time: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, and a client certificate
//! (for mutual TLS), written as PEM files into a folder of the test's.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The PEM files of a throwaway CA.
pub struct TestCa {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCa {
    /// A new CA and its certificates, under `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "hub test CA (throwaway)");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])?;
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        // Client authentication too: a NATS cluster node is a client of
        // the others on its routes.
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "agency system (test)");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key)?;

        let write = |name: &str, pem: String| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, pem)?;
            Ok(path)
        };
        Ok(Self {
            ca: write("ca.pem", ca_cert.pem())?,
            server_cert: write("server.pem", server_cert.pem())?,
            server_key: write("server.key", server_key.serialize_pem())?,
            client_cert: write("client.pem", client_cert.pem())?,
            client_key: write("client.key", client_key.serialize_pem())?,
        })
    }

    /// What deploy/nats/hub-tls.conf and cluster/node.conf read from
    /// nats-server's environment.
    pub fn nats_server_env(&self) -> Vec<(String, String)> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            ("HUB_NATS_SERVER_CERT".to_string(), p(&self.server_cert)),
            ("HUB_NATS_SERVER_KEY".into(), p(&self.server_key)),
            ("HUB_NATS_CA".into(), p(&self.ca)),
        ]
    }

    /// The settings under which a hub process reaches NATS over TLS with
    /// the client certificate.
    pub fn nats_client_env(&self) -> Vec<(String, String)> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            ("HUB_NATS_TLS_CA".to_string(), p(&self.ca)),
            ("HUB_NATS_TLS_CERT".into(), p(&self.client_cert)),
            ("HUB_NATS_TLS_KEY".into(), p(&self.client_key)),
        ]
    }

    /// The settings under which a hub process serves TLS, requiring client
    /// certificates from this CA when `mutual`, and trusts this CA (with
    /// the client certificate) when it calls others.
    pub fn env(&self, mutual: bool) -> Vec<(String, String)> {
        let p = |p: &PathBuf| p.display().to_string();
        let mut env = vec![
            ("HUB_TLS_CERT_FILE".to_string(), p(&self.server_cert)),
            ("HUB_TLS_KEY_FILE".into(), p(&self.server_key)),
            ("HUB_TLS_CA_FILE".into(), p(&self.ca)),
            ("HUB_TLS_CLIENT_CERT_FILE".into(), p(&self.client_cert)),
            ("HUB_TLS_CLIENT_KEY_FILE".into(), p(&self.client_key)),
        ];
        if mutual {
            env.push(("HUB_TLS_CLIENT_CA_FILE".into(), p(&self.ca)));
        }
        env
    }
}
