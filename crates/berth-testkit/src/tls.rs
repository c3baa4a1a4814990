//! A throwaway certificate authority for TLS tests, made in memory (no `openssl` tool needed): a CA
//! certificate, and server certificates it signs for the names and addresses a test serves on.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, PEM.
pub struct ServerCert {
    /// The leaf certificate followed by the CA's (the chain a server presents).
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

impl Default for Ca {
    fn default() -> Self {
        Self::new()
    }
}

impl Ca {
    /// A new CA named "berth test CA".
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "berth test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn server(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "registry");
        params.is_ca = IsCa::ExplicitNoCa;
        let key = KeyPair::generate().expect("server key");
        let leaf = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server cert");
        ServerCert {
            chain_pem: format!("{}{}", leaf.pem(), self.cert_pem()),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `ca.crt`, and `server.crt` (chain) and `server.key` for `names`, into `dir`; returns
    /// their paths in that order.
    pub fn write(&self, dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
        let s = self.server(names);
        let paths = (
            dir.join("ca.crt"),
            dir.join("server.crt"),
            dir.join("server.key"),
        );
        std::fs::write(&paths.0, self.cert_pem()).expect("write ca.crt");
        std::fs::write(&paths.1, s.chain_pem).expect("write server.crt");
        std::fs::write(&paths.2, s.key_pem).expect("write server.key");
        paths
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_chain_holds_two_certificates_and_a_key() {
        let ca = super::Ca::new();
        let s = ca.server(&["127.0.0.1", "localhost"]);
        assert_eq!(s.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(s.key_pem.contains("PRIVATE KEY"));
        assert!(s.chain_pem.ends_with(&ca.cert_pem()));
    }
}
