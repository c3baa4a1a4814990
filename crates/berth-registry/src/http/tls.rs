//! TLS for the server: a PEM certificate chain and private key (PKCS#8, PKCS#1 RSA or SEC1 EC)
//! into a rustls configuration with the ring provider, offering HTTP/1.1 over ALPN.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be opened or read.
    #[error("reading TLS {what} {path}: {source}")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS or PEM error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("TLS certificate {path} contains no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key section.
    #[error("TLS private key {path} contains no PEM private key (PKCS#8, RSA or EC PRIVATE KEY)")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair (unsupported key type, key not matching the certificate, …).
    #[error("TLS certificate {cert} with key {key}: {source}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: tokio_rustls::rustls::Error,
    },
}

/// Loads the certificate chain and key named by `config` into a server configuration.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&config.cert)?;
    let key = load_key(&config.key)?;
    let wrap = |source| TlsError::Config {
        cert: config.cert.clone(),
        key: config.key.clone(),
        source,
    };
    let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(wrap)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(wrap)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn open(path: &Path, what: &'static str) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "certificate";
    let certs = rustls_pemfile::certs(&mut open(path, what)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "private key";
    rustls_pemfile::private_key(&mut open(path, what)?)
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Makes a self-signed certificate and its key with the openssl CLI; `key_args` choose the
    /// key type, `convert` optionally rewrites the key into another PEM form.
    fn make_pair(dir: &Path, name: &str, key_args: &[&str], convert: Option<&[&str]>) -> TlsConfig {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .args(key_args)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        if let Some(args) = convert {
            let out = Command::new("openssl")
                .args(args)
                .arg("-in")
                .arg(&key)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&key, out.stdout).unwrap();
        }
        TlsConfig { cert, key }
    }

    fn key_header(c: &TlsConfig) -> String {
        std::fs::read_to_string(&c.key)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    #[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs openssl")]
    #[test]
    fn pkcs8_rsa_and_sec1_keys_load_with_http11_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pkcs8 = make_pair(
            d,
            "p8",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            None,
        );
        assert_eq!(key_header(&pkcs8), "-----BEGIN PRIVATE KEY-----");
        let rsa = make_pair(
            d,
            "rsa",
            &["-newkey", "rsa:2048"],
            Some(&["rsa", "-traditional"]),
        );
        assert_eq!(key_header(&rsa), "-----BEGIN RSA PRIVATE KEY-----");
        let sec1 = make_pair(
            d,
            "sec1",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            Some(&["ec"]),
        );
        assert_eq!(key_header(&sec1), "-----BEGIN EC PRIVATE KEY-----");
        for c in [pkcs8, rsa, sec1] {
            let s = server_config(&c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
    }

    #[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs openssl")]
    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = make_pair(
            d,
            "a",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            None,
        );
        let other = make_pair(
            d,
            "b",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            None,
        );
        let missing = TlsConfig {
            cert: d.join("nope.crt"),
            key: good.key.clone(),
        };
        let e = server_config(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.crt") && e.contains("certificate"), "{e}");
        let swapped = TlsConfig {
            cert: good.key.clone(),
            key: good.cert.clone(),
        };
        let e = server_config(&swapped).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("a.key"), "{e}");
        let no_key = TlsConfig {
            cert: good.cert.clone(),
            key: good.cert.clone(),
        };
        let e = server_config(&no_key).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        let mismatched = TlsConfig {
            cert: good.cert.clone(),
            key: other.key.clone(),
        };
        let e = server_config(&mismatched).unwrap_err();
        assert!(matches!(e, TlsError::Config { .. }), "{e}");
        assert!(e.to_string().contains("b.key"), "{e}");
    }
}
