//! `berth run`/`create` options as the user gives them, and the parsers that turn their strings into
//! values (sizes, CPUs, ulimits, volumes, tmpfs mounts, security options, signals).

use crate::record::{DeviceMapping, Ulimit};
use std::path::PathBuf;

/// Errors in user-given options.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// A malformed option value.
    #[error("invalid argument {value:?} for {flag}: {why}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An option berth does not support (yet).
    #[error("{flag} {value:?} is not supported by berth")]
    Unsupported {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
    },
    /// Reading an `--env-file` failed.
    #[error("reading env file {path}: {source}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Network mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A new network namespace with only `lo` (Docker's `none`).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace on bridge networks, by name (the default network is `bridge`).
    Bridge(Vec<String>),
    /// The network namespace of another container (name or id).
    Container(String),
}

impl NetworkMode {
    /// Whether the container gets a network namespace of its own.
    pub fn own_namespace(&self) -> bool {
        matches!(self, NetworkMode::None | NetworkMode::Bridge(_))
    }

    /// Docker's `HostConfig.NetworkMode`: `none`, `host`, `container:ID`, or the first network.
    pub fn as_record(&self) -> String {
        match self {
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Bridge(n) => n.first().cloned().unwrap_or_else(|| "bridge".into()),
            NetworkMode::Container(c) => format!("container:{c}"),
        }
    }
}

/// Everything `berth create`/`run` accepts, as strings from the command line.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Image reference or id.
    pub image: String,
    /// Command after the image (overrides the image's Cmd).
    pub cmd: Vec<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-e K=V` or `-e K` (taken from the caller's environment).
    pub env: Vec<String>,
    /// `--env-file`.
    pub env_files: Vec<PathBuf>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// `-v HOST:CTR[:ro]`.
    pub volumes: Vec<String>,
    /// `--tmpfs DIR[:opts]`.
    pub tmpfs: Vec<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--entrypoint` (empty string clears the image's).
    pub entrypoint: Option<String>,
    /// `--memory` ("64m").
    pub memory: Option<String>,
    /// `--cpus` ("0.5").
    pub cpus: Option<String>,
    /// `--pids-limit` (None = the default, [`DEFAULT_PIDS_LIMIT`]).
    pub pids_limit: Option<i64>,
    /// `--device HOST[:CONTAINER][:PERMISSIONS]`.
    pub devices: Vec<String>,
    /// `--device-cgroup-rule "TYPE MAJOR:MINOR ACCESS"`.
    pub device_cgroup_rules: Vec<String>,
    /// `--ulimit name=soft[:hard]`.
    pub ulimits: Vec<String>,
    /// `--network none|host|bridge|NAME|container:NAME`, possibly several network names; none
    /// given means the default network, `bridge`.
    pub networks: Vec<String>,
    /// `--network-alias`.
    pub network_aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--ip6`.
    pub ip6: Option<String>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// `--add-host NAME:IP` (IP may be `host-gateway`).
    pub add_hosts: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `-p`.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--expose`.
    pub expose: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    pub links: Vec<String>,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--init`.
    pub init: bool,
    /// `--userns host|auto`.
    pub userns: Option<String>,
    /// `--label K=V`.
    pub labels: Vec<String>,
    /// `--log-driver` (None: the configured default).
    pub log_driver: Option<String>,
    /// `--log-opt K=V`.
    pub log_opts: Vec<String>,
}

/// Parses Docker's byte sizes: "64m", "1g", "512k", "1024b", "100" (bytes).
pub fn parse_size(flag: &'static str, s: &str) -> Result<i64, OptionError> {
    let bad = |why| OptionError::Invalid {
        flag,
        value: s.to_owned(),
        why,
    };
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && !r.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(&t);
    let (num, mult): (&str, i64) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| bad("expected a size such as 64m"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(bad("size must be a non-negative number"));
    }
    Ok((v * mult as f64) as i64)
}

/// Parses `--cpus` into nano-CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, OptionError> {
    let v: f64 = s.parse().map_err(|_| OptionError::Invalid {
        flag: "--cpus",
        value: s.to_owned(),
        why: "expected a number",
    })?;
    if !(v.is_finite() && v > 0.0) {
        return Err(OptionError::Invalid {
            flag: "--cpus",
            value: s.to_owned(),
            why: "must be positive",
        });
    }
    Ok((v * 1e9) as i64)
}

/// The rlimit names `--ulimit` accepts.
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// Parses `--ulimit name=soft[:hard]` (-1 means unlimited).
pub fn parse_ulimit(s: &str) -> Result<Ulimit, OptionError> {
    let bad = |why| OptionError::Invalid {
        flag: "--ulimit",
        value: s.to_owned(),
        why,
    };
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| bad("expected name=soft[:hard]"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(bad("unknown resource name"));
    }
    let num = |v: &str| -> Result<u64, OptionError> {
        if v == "-1" || v == "unlimited" {
            Ok(u64::MAX)
        } else {
            v.parse().map_err(|_| bad("limits must be numbers"))
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let v = num(vals)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(bad("soft limit is above the hard limit"));
    }
    Ok(Ulimit {
        name: name.to_owned(),
        soft,
        hard,
    })
}

/// A parsed `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Absolute host path.
    pub source: String,
    /// Absolute container path.
    pub target: String,
    /// `:ro`.
    pub read_only: bool,
    /// `:idmap`: with `--userns auto`, the host tree is seen through the container's id mapping
    /// (host root's files belong to the container's root).
    pub idmap: bool,
}

/// Parses `-v HOST:CTR[:ro|rw][,idmap]` (host paths must be absolute: berth has no named volumes yet).
pub fn parse_bind(s: &str) -> Result<Bind, OptionError> {
    let bad = |why| OptionError::Invalid {
        flag: "--volume",
        value: s.to_owned(),
        why,
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, ""),
        [h, c, m] => (*h, *c, *m),
        _ => return Err(bad("expected HOST:CONTAINER[:ro]")),
    };
    if !source.starts_with('/') {
        return Err(OptionError::Unsupported {
            flag: "--volume",
            value: s.to_owned(),
        });
    }
    if !target.starts_with('/') || target == "/" {
        return Err(bad("the container path must be absolute and not /"));
    }
    let mut read_only = false;
    let mut idmap = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "idmap" => idmap = true,
            "z" | "Z" | "rprivate" | "private" => {}
            _ => return Err(bad("unknown mode (ro, rw, idmap)")),
        }
    }
    Ok(Bind {
        source: source.to_owned(),
        target: target.to_owned(),
        read_only,
        idmap,
    })
}

/// Parses `--tmpfs DIR[:opts]` into (target, options).
pub fn parse_tmpfs(s: &str) -> Result<(String, String), OptionError> {
    let (t, o) = s.split_once(':').unwrap_or((s, ""));
    if !t.starts_with('/') || t == "/" {
        return Err(OptionError::Invalid {
            flag: "--tmpfs",
            value: s.to_owned(),
            why: "the path must be absolute and not /",
        });
    }
    Ok((t.to_owned(), o.to_owned()))
}

/// Podman's default pids limit, for containers created without `--pids-limit`: a fork bomb stops
/// there instead of at the host's pid_max.
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;

/// The pids limit to record for `--pids-limit`: the default when absent, none (unlimited) for 0
/// or -1 as Docker treats them, the value when positive.
pub fn pids_limit(flag: Option<i64>) -> Result<Option<i64>, OptionError> {
    match flag {
        None => Ok(Some(DEFAULT_PIDS_LIMIT)),
        Some(0 | -1) => Ok(None),
        Some(n) if n > 0 => Ok(Some(n)),
        Some(n) => Err(OptionError::Invalid {
            flag: "--pids-limit",
            value: n.to_string(),
            why: "expected a positive number, or 0 or -1 for unlimited",
        }),
    }
}

/// A parsed `--device-cgroup-rule`: "c 1:3 rwm", "b *:* m", "a".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// 'a', 'b' or 'c'.
    pub kind: char,
    /// Major number (None = any).
    pub major: Option<i64>,
    /// Minor number (None = any).
    pub minor: Option<i64>,
    /// Some of "rwm", in that order.
    pub access: String,
}

/// Checks a device access string ("rwm", "r", "mw"...): each of r, w, m at most once, normalised to
/// the order r, w, m.
fn device_access(a: &str) -> Option<String> {
    if a.is_empty() || a.len() > 3 || !a.chars().all(|c| "rwm".contains(c)) {
        return None;
    }
    let out: String = "rwm".chars().filter(|c| a.contains(*c)).collect();
    (out.len() == a.len()).then_some(out)
}

/// Parses `--device-cgroup-rule "TYPE MAJOR:MINOR ACCESS"` (Docker's format; `*` is any number,
/// and the type `a` alone means every device with every access).
pub fn parse_device_cgroup_rule(s: &str) -> Result<DeviceRule, OptionError> {
    let bad = |why| OptionError::Invalid {
        flag: "--device-cgroup-rule",
        value: s.to_owned(),
        why,
    };
    let words: Vec<&str> = s.split_whitespace().collect();
    let kind = match words.first().copied() {
        Some("a") => 'a',
        Some("b") => 'b',
        Some("c") => 'c',
        _ => return Err(bad("the type must be a, b or c")),
    };
    if kind == 'a' && words.len() == 1 {
        return Ok(DeviceRule {
            kind,
            major: None,
            minor: None,
            access: "rwm".into(),
        });
    }
    let [_, numbers, access] = words.as_slice() else {
        return Err(bad(
            "expected TYPE MAJOR:MINOR ACCESS, such as \"c 1:3 rwm\"",
        ));
    };
    let num = |n: &str| -> Result<Option<i64>, OptionError> {
        match n {
            "*" => Ok(None),
            n => n
                .parse::<u32>()
                .map(|v| Some(i64::from(v)))
                .map_err(|_| bad("major and minor must be numbers or *")),
        }
    };
    let (major, minor) = numbers
        .split_once(':')
        .ok_or_else(|| bad("expected MAJOR:MINOR, such as 1:3 or 136:*"))?;
    Ok(DeviceRule {
        kind,
        major: num(major)?,
        minor: num(minor)?,
        access: device_access(access)
            .ok_or_else(|| bad("the access must be some of r, w and m"))?,
    })
}

/// Parses `--device HOST[:CONTAINER][:PERMISSIONS]` (Docker's format; both paths absolute).
pub fn parse_device(s: &str) -> Result<DeviceMapping, OptionError> {
    let bad = |why| OptionError::Invalid {
        flag: "--device",
        value: s.to_owned(),
        why,
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if device_access(p).is_some() => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(bad("expected HOST[:CONTAINER][:PERMISSIONS]")),
    };
    if !host.starts_with('/') || !container.starts_with("/") || container == "/" {
        return Err(bad("device paths must be absolute"));
    }
    Ok(DeviceMapping {
        path_on_host: host.to_owned(),
        path_in_container: container.to_owned(),
        cgroup_permissions: device_access(access)
            .ok_or_else(|| bad("the permissions must be some of r, w and m"))?,
    })
}

/// A `--device` with the host node's type and numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDevice {
    /// Path in the container.
    pub path: String,
    /// 'b' or 'c'.
    pub kind: char,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits of the host node.
    pub mode: u32,
    /// Cgroup access.
    pub access: String,
}

/// Looks up the host node of a `--device` (following symlinks, as /dev/disk/by-* are).
pub fn resolve_device(m: &DeviceMapping) -> Result<ResolvedDevice, OptionError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let bad = |why| OptionError::Invalid {
        flag: "--device",
        value: m.path_on_host.clone(),
        why,
    };
    let md = std::fs::metadata(&m.path_on_host).map_err(|_| bad("no such device on the host"))?;
    let kind = if md.file_type().is_char_device() {
        'c'
    } else if md.file_type().is_block_device() {
        'b'
    } else {
        return Err(bad("not a character or block device"));
    };
    let rdev = md.rdev();
    Ok(ResolvedDevice {
        path: m.path_in_container.clone(),
        kind,
        major: i64::from(libc::major(rdev)),
        minor: i64::from(libc::minor(rdev)),
        mode: md.mode() & 0o7777,
        access: m.cgroup_permissions.clone(),
    })
}

/// Security options after parsing `--security-opt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// no-new-privileges (default on).
    pub no_new_privileges: bool,
    /// Seccomp profile choice.
    pub seccomp: SeccompChoice,
}

/// Which seccomp profile a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    /// berth's default profile.
    Default,
    /// None at all.
    Unconfined,
    /// A profile JSON file.
    File(PathBuf),
}

/// Parses the `--security-opt` values.
pub fn parse_security(opts: &[String]) -> Result<Security, OptionError> {
    let mut sec = Security {
        no_new_privileges: true,
        seccomp: SeccompChoice::Default,
    };
    for o in opts {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match k {
            "no-new-privileges" => {
                sec.no_new_privileges = match v {
                    "" | "true" => true,
                    "false" => false,
                    _ => {
                        return Err(OptionError::Invalid {
                            flag: "--security-opt",
                            value: o.clone(),
                            why: "no-new-privileges takes true or false",
                        });
                    }
                }
            }
            "seccomp" => {
                sec.seccomp = match v {
                    "unconfined" => SeccompChoice::Unconfined,
                    "" => {
                        return Err(OptionError::Invalid {
                            flag: "--security-opt",
                            value: o.clone(),
                            why: "seccomp needs unconfined or a file",
                        });
                    }
                    path => SeccompChoice::File(PathBuf::from(path)),
                }
            }
            "label" | "apparmor" if v == "disable" || v == "unconfined" => {}
            _ => {
                return Err(OptionError::Unsupported {
                    flag: "--security-opt",
                    value: o.clone(),
                });
            }
        }
    }
    Ok(sec)
}

/// User namespace mode (`--userns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsernsMode {
    /// No user namespace: container root is host root.
    #[default]
    Host,
    /// A user namespace mapping container ids 0–65535 to a host range of its own.
    Auto,
}

/// Parses `--userns` (`host`, the default, or `auto`).
pub fn parse_userns(s: Option<&str>) -> Result<UsernsMode, OptionError> {
    match s {
        None | Some("") | Some("host") => Ok(UsernsMode::Host),
        Some("auto") => Ok(UsernsMode::Auto),
        Some(other) => Err(OptionError::Unsupported {
            flag: "--userns",
            value: other.to_owned(),
        }),
    }
}

/// Parses the `--network` values of one container: none means the default network.
pub fn parse_networks(values: &[String]) -> Result<NetworkMode, OptionError> {
    let bad = |value: &str, why| OptionError::Invalid {
        flag: "--network",
        value: value.to_owned(),
        why,
    };
    let mut names: Vec<String> = Vec::new();
    let mut special = None;
    for v in values {
        let mode = match v.as_str() {
            "none" => Some(NetworkMode::None),
            "host" => Some(NetworkMode::Host),
            _ => match v.strip_prefix("container:") {
                Some("") => return Err(bad(v, "container: needs a container name or id")),
                Some(c) => Some(NetworkMode::Container(c.to_owned())),
                None => None,
            },
        };
        match mode {
            Some(m) => {
                if special.is_some() || values.len() > 1 {
                    return Err(bad(
                        v,
                        "none, host and container: cannot be combined with other networks",
                    ));
                }
                special = Some(m);
            }
            None => {
                let name = if v == "default" || v.is_empty() {
                    "bridge"
                } else {
                    v.as_str()
                };
                if names.iter().any(|n| n == name) {
                    return Err(bad(v, "the same network is given twice"));
                }
                names.push(name.to_owned());
            }
        }
    }
    Ok(match special {
        Some(m) => m,
        None if names.is_empty() => NetworkMode::Bridge(vec!["bridge".into()]),
        None => NetworkMode::Bridge(names),
    })
}

/// The network mode a container recorded as `HostConfig.NetworkMode` (its first network for
/// bridge networks, the rest being in its `NetworkingConfig`).
pub fn recorded_network_mode(mode: &str, networks: &[String]) -> NetworkMode {
    match mode {
        "none" | "" => NetworkMode::None,
        "host" => NetworkMode::Host,
        m => match m.strip_prefix("container:") {
            Some(c) => NetworkMode::Container(c.to_owned()),
            None => NetworkMode::Bridge(networks.to_vec()),
        },
    }
}

/// Parses `--mac-address` (`02:42:ac:11:00:02`).
pub fn parse_mac(s: &str) -> Result<[u8; 6], OptionError> {
    let bad = |why| OptionError::Invalid {
        flag: "--mac-address",
        value: s.to_owned(),
        why,
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad("expected six hex bytes such as 02:42:ac:11:00:02"));
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad("expected six hex bytes such as 02:42:ac:11:00:02"));
        }
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| bad("expected six hex bytes such as 02:42:ac:11:00:02"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(bad("a multicast address cannot be an interface's address"));
    }
    Ok(mac)
}

/// Parses `--add-host NAME:IP` (Docker also takes `NAME=IP`); the IP may be `host-gateway`.
pub fn parse_add_host(s: &str) -> Result<(String, String), OptionError> {
    let bad = |why| OptionError::Invalid {
        flag: "--add-host",
        value: s.to_owned(),
        why,
    };
    // The IP may be IPv6 (colons), so split at the first ':' or '='.
    let (name, ip) = s
        .split_once(['=', ':'])
        .ok_or_else(|| bad("expected NAME:IP"))?;
    if name.is_empty() {
        return Err(bad("the host name is empty"));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(bad("not an IP address (or host-gateway)"));
    }
    Ok((name.to_owned(), ip.to_owned()))
}

/// Parses `--link NAME[:ALIAS]` into the target and its alias.
pub fn parse_link(s: &str) -> Result<(String, String), OptionError> {
    let (name, alias) = match s.split_once(':') {
        Some((n, a)) => (n, a),
        None => (s, s),
    };
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() || alias.is_empty() {
        return Err(OptionError::Invalid {
            flag: "--link",
            value: s.to_owned(),
            why: "expected NAME[:ALIAS]",
        });
    }
    Ok((name.to_owned(), alias.to_owned()))
}

/// Parses a signal name ("TERM", "SIGTERM", "sigkill") or number ("9") into its number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.strip_prefix('+')?.parse().ok()?
        };
        return (base + off <= libc::SIGRTMAX()).then_some(base + off);
    }
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

/// Reads `--env-file` lines: `K=V`, `K` (from the caller's environment), comments and blanks skipped.
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<String>, OptionError> {
    let text = std::fs::read_to_string(path).map_err(|source| OptionError::EnvFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_limit_defaults_to_2048_and_0_or_minus_1_lift_it() {
        assert_eq!(pids_limit(None).unwrap(), Some(2048));
        assert_eq!(pids_limit(Some(100)).unwrap(), Some(100));
        assert_eq!(pids_limit(Some(-1)).unwrap(), None);
        assert_eq!(pids_limit(Some(0)).unwrap(), None);
        let e = pids_limit(Some(-5)).unwrap_err().to_string();
        assert!(e.contains("--pids-limit") && e.contains("-5"), "{e}");
    }

    #[test]
    fn device_cgroup_rules_parse_as_docker_writes_them() {
        assert_eq!(
            parse_device_cgroup_rule("c 5:1 rw").unwrap(),
            DeviceRule {
                kind: 'c',
                major: Some(5),
                minor: Some(1),
                access: "rw".into()
            }
        );
        let r = parse_device_cgroup_rule(" b  8:*  mwr ").unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access.as_str()),
            ('b', Some(8), None, "rwm")
        );
        let r = parse_device_cgroup_rule("a").unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access.as_str()),
            ('a', None, None, "rwm")
        );
        for bad in [
            "", "x 1:3 r", "c 1:3", "c 1-3 r", "c 1:x r", "c 1:3 rx", "c 1:3 rr", "c -1:3 r",
        ] {
            let e = parse_device_cgroup_rule(bad).unwrap_err().to_string();
            assert!(e.contains("--device-cgroup-rule"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn devices_parse_and_resolve_on_the_host() {
        let m = |h: &str, c: &str, p: &str| DeviceMapping {
            path_on_host: h.into(),
            path_in_container: c.into(),
            cgroup_permissions: p.into(),
        };
        assert_eq!(
            parse_device("/dev/null").unwrap(),
            m("/dev/null", "/dev/null", "rwm")
        );
        assert_eq!(
            parse_device("/dev/null:r").unwrap(),
            m("/dev/null", "/dev/null", "r")
        );
        assert_eq!(
            parse_device("/dev/null:/dev/n").unwrap(),
            m("/dev/null", "/dev/n", "rwm")
        );
        assert_eq!(
            parse_device("/dev/null:/dev/n:wm").unwrap(),
            m("/dev/null", "/dev/n", "wm")
        );
        for bad in [
            "dev/null",
            "/dev/null:n",
            "/dev/null:/dev/n:x",
            "/a:/b:r:w",
            "/dev/null:/",
        ] {
            let e = parse_device(bad).unwrap_err().to_string();
            assert!(e.contains("--device"), "{bad:?}: {e}");
        }
        let d = resolve_device(&m("/dev/null", "/dev/n", "rw")).unwrap();
        assert_eq!(
            (d.path.as_str(), d.kind, d.major, d.minor, d.access.as_str()),
            ("/dev/n", 'c', 1, 3, "rw")
        );
        for missing in ["/no/such/device", "/etc/hostname"] {
            let e = resolve_device(&m(missing, "/dev/x", "rwm"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(missing), "{e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "64MB").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("--memory", "100").unwrap(), 100);
        assert_eq!(parse_size("--memory", "100b").unwrap(), 100);
        assert!(parse_size("--memory", "lots").is_err());
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert!(parse_cpus("0").is_err());
    }

    #[test]
    fn ulimits_binds_tmpfs() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }
        );
        assert_eq!(parse_ulimit("nproc=10").unwrap().hard, 10);
        assert!(parse_ulimit("nofile=5:4").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert_eq!(
            parse_bind("/h:/c:ro").unwrap(),
            Bind {
                source: "/h".into(),
                target: "/c".into(),
                read_only: true,
                idmap: false,
            }
        );
        assert!(!parse_bind("/h:/c").unwrap().read_only);
        let b = parse_bind("/h:/c:ro,idmap").unwrap();
        assert!(b.read_only && b.idmap);
        assert!(parse_bind("/h:/c:bogus").is_err());
        assert!(parse_bind("vol:/c").is_err());
        assert!(parse_bind("/h:rel").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=1m").unwrap(),
            ("/run".into(), "size=1m".into())
        );
        assert!(parse_tmpfs("run").is_err());
    }

    #[test]
    fn security_network_signals() {
        let s = parse_security(&[]).unwrap();
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp, SeccompChoice::Default);
        let s = parse_security(&[
            "no-new-privileges=false".into(),
            "seccomp=unconfined".into(),
        ])
        .unwrap();
        assert!(!s.no_new_privileges);
        assert_eq!(s.seccomp, SeccompChoice::Unconfined);
        assert_eq!(
            parse_security(&["seccomp=/p.json".into()]).unwrap().seccomp,
            SeccompChoice::File("/p.json".into())
        );
        assert!(parse_security(&["bogus".into()]).is_err());
        let nets =
            |v: &[&str]| parse_networks(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(nets(&["host"]).unwrap(), NetworkMode::Host);
        assert_eq!(
            nets(&[]).unwrap(),
            NetworkMode::Bridge(vec!["bridge".into()])
        );
        assert_eq!(
            nets(&["default"]).unwrap(),
            NetworkMode::Bridge(vec!["bridge".into()])
        );
        assert_eq!(
            nets(&["a", "b"]).unwrap(),
            NetworkMode::Bridge(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            nets(&["container:web"]).unwrap(),
            NetworkMode::Container("web".into())
        );
        for bad in [
            &["host", "a"][..],
            &["a", "a"],
            &["container:"],
            &["none", "none"],
        ] {
            assert!(nets(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("01:00:00:00:00:00").is_err());
        assert!(parse_mac("02:42:ac").is_err());
        assert_eq!(
            parse_add_host("db:10.0.0.2").unwrap(),
            ("db".to_string(), "10.0.0.2".to_string())
        );
        assert_eq!(parse_add_host("v6:::1").unwrap().1, "::1");
        assert_eq!(parse_add_host("gw:host-gateway").unwrap().1, "host-gateway");
        assert!(parse_add_host("db:nope").is_err());
        assert_eq!(
            parse_link("db").unwrap(),
            ("db".to_string(), "db".to_string())
        );
        assert_eq!(
            parse_link("/db:mongo").unwrap(),
            ("db".to_string(), "mongo".to_string())
        );
        assert_eq!(parse_signal("TERM"), Some(15));
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("hup"), Some(1));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }
}
