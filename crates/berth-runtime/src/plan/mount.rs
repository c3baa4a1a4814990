//! Mount option parsing: Docker/OCI `options` strings → kernel mount attributes, propagation and
//! filesystem parameters, decided once in the parent.

use std::ffi::CString;

/// `MOUNT_ATTR_*` bits as the kernel defines them (`linux/mount.h`).
pub(crate) mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// Mount propagation types, as `MS_*` values accepted by `mount_setattr`'s `propagation` field.
pub(crate) mod prop {
    pub const PRIVATE: u64 = libc::MS_PRIVATE;
    pub const SLAVE: u64 = libc::MS_SLAVE;
    pub const SHARED: u64 = libc::MS_SHARED;
    pub const UNBINDABLE: u64 = libc::MS_UNBINDABLE;
}

/// A filesystem parameter handed to `fsconfig`: a flag (`newinstance`) or a key/value (`size=64m`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsParam {
    pub key: CString,
    pub value: Option<CString>,
}

/// What a mount's option list means, split by where each option goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ParsedOptions {
    /// `bind` or `rbind` seen.
    pub bind: bool,
    /// `rbind`, or a recursive propagation/attribute change.
    pub recursive: bool,
    /// Attributes to set on the mount.
    pub attr_set: u64,
    /// Attributes to clear on the mount (`rw`, `suid`, `dev`, `exec`, ...).
    pub attr_clr: u64,
    /// Propagation type to apply after attaching, if any.
    pub propagation: Option<u64>,
    /// Propagation applies recursively (`rprivate`, `rslave`, ...).
    pub propagation_recursive: bool,
    /// Parameters for the filesystem itself (ignored for binds).
    pub params: Vec<FsParam>,
    /// `idmap` or `ridmap`: the bind carries the container's (or the mount's own) id mapping.
    pub idmap: bool,
}

/// Why an option list could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MountOptionError {
    /// An option contains a NUL byte.
    #[error("mount option {0:?} contains a NUL byte")]
    Nul(String),
}

/// Parses an OCI/Docker mount option list.
pub(crate) fn parse_options(options: &[String]) -> Result<ParsedOptions, MountOptionError> {
    let mut p = ParsedOptions::default();
    for opt in options {
        let o = opt.as_str();
        let (set, clr): (u64, u64) = match o {
            "bind" => {
                p.bind = true;
                continue;
            }
            "idmap" | "ridmap" => {
                p.idmap = true;
                continue;
            }
            "rbind" => {
                p.bind = true;
                p.recursive = true;
                continue;
            }
            "ro" => (attr::RDONLY, 0),
            "rw" => (0, attr::RDONLY),
            "nosuid" => (attr::NOSUID, 0),
            "suid" => (0, attr::NOSUID),
            "nodev" => (attr::NODEV, 0),
            "dev" => (0, attr::NODEV),
            "noexec" => (attr::NOEXEC, 0),
            "exec" => (0, attr::NOEXEC),
            "noatime" => (attr::NOATIME, attr::ATIME_MASK),
            "strictatime" => (attr::STRICTATIME, attr::ATIME_MASK),
            "relatime" => (attr::RELATIME, attr::ATIME_MASK),
            "norelatime" | "nostrictatime" | "atime" => (0, 0),
            "nodiratime" => (attr::NODIRATIME, 0),
            "diratime" => (0, attr::NODIRATIME),
            "nosymfollow" => (attr::NOSYMFOLLOW, 0),
            "symfollow" => (0, attr::NOSYMFOLLOW),
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" => {
                let base = o.strip_prefix('r').unwrap_or(o);
                p.propagation_recursive = o.starts_with('r');
                p.propagation = Some(match base {
                    "private" => prop::PRIVATE,
                    "slave" => prop::SLAVE,
                    "shared" => prop::SHARED,
                    _ => prop::UNBINDABLE,
                });
                continue;
            }
            // Labels and engine-side hints the runtime has nothing to do for.
            "z" | "Z" | "defaults" | "tmpcopyup" | "notmpcopyup" | "copy-symlink" | "sync"
            | "async" | "dirsync" | "mand" | "nomand" | "lazytime" | "nolazytime" | "silent"
            | "loud" | "remount" => continue,
            _ => {
                let (k, v) = match o.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (o, None),
                };
                let key = CString::new(k).map_err(|_| MountOptionError::Nul(opt.clone()))?;
                let value = match v {
                    Some(v) => {
                        Some(CString::new(v).map_err(|_| MountOptionError::Nul(opt.clone()))?)
                    }
                    None => None,
                };
                p.params.push(FsParam { key, value });
                continue;
            }
        };
        p.attr_set = (p.attr_set & !clr) | set;
        p.attr_clr = (p.attr_clr & !set) | clr;
    }
    // `relatime` is the zero value of the atime field: setting it means clearing the mask.
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_tmpfs_dev_options() {
        let p =
            parse_options(&opts(&["nosuid", "strictatime", "mode=755", "size=65536k"])).unwrap();
        assert!(!p.bind);
        assert_eq!(p.attr_set, attr::NOSUID | attr::STRICTATIME);
        assert_eq!(p.attr_clr, attr::ATIME_MASK);
        assert_eq!(
            p.params,
            vec![
                FsParam {
                    key: c"mode".into(),
                    value: Some(c"755".into())
                },
                FsParam {
                    key: c"size".into(),
                    value: Some(c"65536k".into())
                },
            ]
        );
    }

    #[test]
    fn devpts_flag_parameter() {
        let p =
            parse_options(&opts(&["nosuid", "noexec", "newinstance", "ptmxmode=0666"])).unwrap();
        assert_eq!(p.attr_set, attr::NOSUID | attr::NOEXEC);
        assert_eq!(
            p.params[0],
            FsParam {
                key: c"newinstance".into(),
                value: None
            }
        );
    }

    #[test]
    fn idmap_is_a_flag_not_a_parameter() {
        let p = parse_options(&opts(&["rbind", "idmap"])).unwrap();
        assert!(p.idmap && p.bind && p.params.is_empty());
        assert!(parse_options(&opts(&["ridmap"])).unwrap().idmap);
        assert!(!parse_options(&opts(&["rbind"])).unwrap().idmap);
    }

    #[test]
    fn rbind_ro_rprivate() {
        let p = parse_options(&opts(&["rbind", "ro", "rprivate"])).unwrap();
        assert!(p.bind && p.recursive);
        assert_eq!(p.attr_set, attr::RDONLY);
        assert_eq!(p.propagation, Some(prop::PRIVATE));
        assert!(p.propagation_recursive);
        assert!(p.params.is_empty());
    }

    #[test]
    fn later_option_wins() {
        let p = parse_options(&opts(&["ro", "rw", "noexec", "exec"])).unwrap();
        assert_eq!(p.attr_set, 0);
        assert_eq!(p.attr_clr, attr::RDONLY | attr::NOEXEC);
        let p = parse_options(&opts(&["rw", "ro"])).unwrap();
        assert_eq!(p.attr_set, attr::RDONLY);
        assert_eq!(p.attr_clr, 0);
    }

    #[test]
    fn selinux_labels_ignored_and_nul_rejected() {
        let p = parse_options(&opts(&["bind", "z"])).unwrap();
        assert!(p.bind && !p.recursive && p.params.is_empty());
        assert!(parse_options(&opts(&["size=1\0"])).is_err());
    }

    proptest::proptest! {
        #[test]
        fn set_and_clear_never_overlap(opts in proptest::collection::vec(
            proptest::sample::select(vec![
                "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime",
                "strictatime", "relatime", "nodiratime", "diratime", "rbind", "bind", "rprivate",
                "shared", "z", "size=1m", "mode=755", "newinstance",
            ]),
            0..12,
        )) {
            let opts: Vec<String> = opts.into_iter().map(String::from).collect();
            let p = parse_options(&opts).unwrap();
            // Flags are never both set and cleared; the atime field is an enum, which the kernel
            // wants set together with the whole field in attr_clr.
            proptest::prop_assert_eq!(p.attr_set & p.attr_clr & !attr::ATIME_MASK, 0);
            if p.attr_set & attr::ATIME_MASK != 0 {
                proptest::prop_assert_eq!(p.attr_clr & attr::ATIME_MASK, attr::ATIME_MASK);
            }
            proptest::prop_assert_eq!(p.bind, opts.iter().any(|o| o == "bind" || o == "rbind"));
        }

        #[test]
        fn arbitrary_options_never_panic(opts in proptest::collection::vec(".*", 0..8)) {
            let _ = parse_options(&opts);
        }
    }
}
