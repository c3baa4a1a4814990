//! Registry settings: which registries speak plain HTTP, where Docker Hub names are fetched from,
//! extra CA certificates, credential files, transfer concurrency. Read from a TOML file
//! (`/etc/berth/registries.toml`, or `BERTH_REGISTRIES_CONF`); every field has Docker's default.

use crate::error::{Error, Result};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The configuration file read when none is named and `BERTH_REGISTRIES_CONF` is unset.
pub const DEFAULT_PATH: &str = "/etc/berth/registries.toml";

/// Registry client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where `docker.io` names are fetched from instead of Docker Hub (a mirror; local names stay
    /// `docker.io/…`). `None`: Docker Hub itself (`registry-1.docker.io`).
    pub default_registry: Option<String>,
    /// Registries spoken to over plain HTTP (`host[:port]`, or a CIDR like `10.0.0.0/8`).
    /// localhost, 127.0.0.0/8 and ::1 are always insecure, as in Docker.
    pub insecure: Vec<String>,
    /// Per-registry CA certificates: `<certs_dir>/<host[:port]>/*.crt`, as `/etc/docker/certs.d`.
    pub certs_dir: PathBuf,
    /// Where `berth login` writes credentials (Docker's config.json format, mode 0600).
    pub auth_file: PathBuf,
    /// Docker's config directory, read for credentials too (`$DOCKER_CONFIG` or `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
    /// Where `docker-credential-*` helpers are looked for; `None`: on `PATH`.
    pub helper_dir: Option<PathBuf>,
    /// Layers downloaded at once (Docker: 3).
    pub max_concurrent_downloads: usize,
    /// Blobs uploaded at once (Docker: 5).
    pub max_concurrent_uploads: usize,
    /// Blobs larger than this are uploaded in chunks of this size.
    pub chunk_size: u64,
}

impl Default for Config {
    fn default() -> Config {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Config {
            default_registry: None,
            insecure: Vec::new(),
            certs_dir: PathBuf::from("/etc/berth/certs.d"),
            auth_file: home
                .as_ref()
                .map(|h| h.join(".config/berth/auth.json"))
                .unwrap_or_else(|| PathBuf::from("/root/.config/berth/auth.json")),
            docker_config_dir: std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".docker"))),
            helper_dir: None,
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            chunk_size: 64 << 20,
        }
    }
}

impl Config {
    /// Reads the settings from `path`, or from `BERTH_REGISTRIES_CONF`, or from
    /// [`DEFAULT_PATH`]. A missing default file gives the defaults; a missing file that was named
    /// explicitly (argument or variable), unknown keys and bad values are errors.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match std::env::var_os("BERTH_REGISTRIES_CONF") {
                Some(p) if !p.is_empty() => (PathBuf::from(p), true),
                _ => (PathBuf::from(DEFAULT_PATH), false),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(Error::Config {
                    what: "reading registry config",
                    path,
                    message: e.to_string(),
                });
            }
        };
        Config::parse(&text, &path)
    }

    /// Parses the TOML text of a configuration file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let bad = |message: String| Error::Config {
            what: "reading registry config",
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let mut c = Config::default();
        for (key, value) in &table {
            let want = |kind: &str| bad(format!("key `{key}`: expected {kind}, found {value}"));
            let string = || {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| want("a string"))
            };
            let count = || {
                value
                    .as_integer()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| want("a positive integer"))
            };
            match key.as_str() {
                "default_registry" => {
                    let s = string()?;
                    if s.is_empty() || s.contains(['/', ' ']) {
                        return Err(bad(format!(
                            "key `default_registry`: `{s}` is not a host[:port]"
                        )));
                    }
                    c.default_registry = Some(s);
                }
                "insecure" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| want("an array of strings"))?;
                    c.insecure = list
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| want("an array of strings"))
                        })
                        .collect::<Result<_>>()?;
                    for entry in &c.insecure {
                        if entry.contains('/') && parse_cidr(entry).is_none() {
                            return Err(bad(format!(
                                "key `insecure`: `{entry}` is neither host[:port] nor a CIDR"
                            )));
                        }
                    }
                }
                "certs_dir" => c.certs_dir = PathBuf::from(string()?),
                "auth_file" => c.auth_file = PathBuf::from(string()?),
                "docker_config_dir" => c.docker_config_dir = Some(PathBuf::from(string()?)),
                "helper_dir" => c.helper_dir = Some(PathBuf::from(string()?)),
                "max_concurrent_downloads" => c.max_concurrent_downloads = count()? as usize,
                "max_concurrent_uploads" => c.max_concurrent_uploads = count()? as usize,
                "chunk_size" => {
                    let n = count()? as u64;
                    if n < 4096 {
                        return Err(bad(format!(
                            "key `chunk_size`: {n} bytes is too small (at least 4096)"
                        )));
                    }
                    c.chunk_size = n;
                }
                other => return Err(bad(format!("unknown key `{other}`"))),
            }
        }
        Ok(c)
    }
}

/// Splits `host[:port]` (IPv6 in brackets, or bare) into the name and the port, if any.
pub(crate) fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[')
        && let Some((name, after)) = rest.split_once(']')
    {
        return (name, after.strip_prefix(':'));
    }
    if host.parse::<IpAddr>().is_ok() {
        return (host, None);
    }
    match host.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') => (n, Some(p)),
        _ => (host, None),
    }
}

/// `addr/prefix` as a network address and prefix length.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let addr: IpAddr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

/// Whether `ip` is inside `net/prefix`.
fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(i), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(i) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(i), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(i) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Whether `host` (`name[:port]`) is spoken to over plain HTTP (or TLS without verification).
pub fn is_insecure(config: &Config, host: &str) -> bool {
    let (name, _) = split_host(host);
    let ip = name.parse::<IpAddr>().ok();
    if name.eq_ignore_ascii_case("localhost") || ip.is_some_and(|i| i.is_loopback()) {
        return true;
    }
    config.insecure.iter().any(|entry| {
        if let Some((net, prefix)) = parse_cidr(entry) {
            return ip.is_some_and(|i| in_cidr(i, net, prefix));
        }
        let (ename, eport) = split_host(entry);
        match eport {
            Some(_) => {
                entry.eq_ignore_ascii_case(host) || {
                    // `[::1]:5000` and `::1` spellings of the same address.
                    let (n, p) = split_host(host);
                    p == eport && n.eq_ignore_ascii_case(ename)
                }
            }
            None => name.eq_ignore_ascii_case(ename),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(insecure: &[&str]) -> Config {
        Config {
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn loopback_is_always_insecure() {
        let c = Config::default();
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_insecure(&c, h), "{h}");
        }
        for h in [
            "docker.io",
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "[fd00::2]:5000",
        ] {
            assert!(!is_insecure(&c, h), "{h}");
        }
    }

    #[test]
    fn hosts_ports_and_cidrs() {
        let c = with(&[
            "reg.lan:5000",
            "plain.lan",
            "10.0.0.0/8",
            "fd00::/64",
            "[fe80::1]:80",
        ]);
        assert!(is_insecure(&c, "reg.lan:5000"));
        assert!(!is_insecure(&c, "reg.lan:5001"));
        assert!(!is_insecure(&c, "reg.lan"));
        assert!(is_insecure(&c, "plain.lan"));
        assert!(is_insecure(&c, "PLAIN.lan:443"));
        assert!(is_insecure(&c, "10.1.2.3:5000"));
        assert!(is_insecure(&c, "10.255.255.255"));
        assert!(!is_insecure(&c, "11.0.0.1"));
        assert!(is_insecure(&c, "[fd00::2]:5000"));
        assert!(is_insecure(&c, "fd00::abcd"));
        assert!(!is_insecure(&c, "[fd00:0:0:1::2]:5000"));
        assert!(is_insecure(&c, "[fe80::1]:80"));
        assert!(!is_insecure(&c, "[fe80::1]:81"));
        assert!(is_insecure(&with(&["0.0.0.0/0"]), "192.0.2.2:1"));
        assert!(is_insecure(&with(&["192.0.2.2/32"]), "192.0.2.2:1"));
        assert!(!is_insecure(&with(&["192.0.2.3/32"]), "192.0.2.2:1"));
    }

    #[test]
    fn parses_every_key() {
        let c = Config::parse(
            r#"
default_registry = "mirror.lan:5000"
insecure = ["reg.lan:5000", "10.0.0.0/8"]
certs_dir = "/c"
auth_file = "/a.json"
docker_config_dir = "/d"
helper_dir = "/h"
max_concurrent_downloads = 6
max_concurrent_uploads = 2
chunk_size = 1048576
"#,
            Path::new("/x.toml"),
        )
        .unwrap();
        assert_eq!(c.default_registry.as_deref(), Some("mirror.lan:5000"));
        assert_eq!(c.insecure, ["reg.lan:5000", "10.0.0.0/8"]);
        assert_eq!(c.certs_dir, Path::new("/c"));
        assert_eq!(c.auth_file, Path::new("/a.json"));
        assert_eq!(c.docker_config_dir.as_deref(), Some(Path::new("/d")));
        assert_eq!(c.helper_dir.as_deref(), Some(Path::new("/h")));
        assert_eq!(c.max_concurrent_downloads, 6);
        assert_eq!(c.max_concurrent_uploads, 2);
        assert_eq!(c.chunk_size, 1 << 20);
        assert_eq!(
            Config::parse("", Path::new("/x")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        for (text, key) in [
            ("max_concurrent_downloads = 0", "max_concurrent_downloads"),
            ("max_concurrent_uploads = \"3\"", "max_concurrent_uploads"),
            ("chunk_size = 10", "chunk_size"),
            ("insecure = \"reg.lan\"", "insecure"),
            ("insecure = [\"10.0.0.0/33\"]", "insecure"),
            ("default_registry = \"a/b\"", "default_registry"),
            ("colour = 1", "colour"),
        ] {
            let e = Config::parse(text, Path::new("/etc/r.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("/etc/r.toml") && e.contains(key), "{text}: {e}");
        }
        let e = Config::parse("insecure = [", Path::new("/etc/r.toml")).unwrap_err();
        assert!(e.to_string().contains("/etc/r.toml"), "{e}");
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        let e = Config::load(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("none.toml"), "{e}");
        let file = dir.path().join("r.toml");
        std::fs::write(&file, "max_concurrent_downloads = 9\n").unwrap();
        assert_eq!(
            Config::load(Some(&file)).unwrap().max_concurrent_downloads,
            9
        );
    }
}
