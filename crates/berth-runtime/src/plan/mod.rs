//! Pure planning: an OCI spec plus launch options → a [`Plan`] of C strings, flags and masks, so the
//! child after `clone` only issues syscalls on precomputed data (no JSON, next to no allocation).

mod cgroupfs;
pub(crate) mod idmap;
pub(crate) mod mount;
pub(crate) mod process;

use std::ffi::CString;
use std::ops::Not;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

pub use idmap::IdmapError;
pub(crate) use mount::{FsParam, MountOptionError};
pub(crate) use process::ProcessPlan;

use crate::seccomp::Program;
use crate::stage::Stage;

/// An overlay the child mounts at `spec.root.path` inside its own mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayRoot {
    /// Lower layers, topmost first, absolute.
    pub lowers: Vec<PathBuf>,
    /// The container's upper directory.
    pub upper: PathBuf,
    /// overlayfs work directory (same filesystem as `upper`).
    pub work: PathBuf,
}

/// Why a spec could not be turned into a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The spec has no `process`.
    #[error("the spec has no process")]
    NoProcess,
    /// `process.args` is empty.
    #[error("the spec's process.args is empty")]
    NoArgs,
    /// The spec has no `root`.
    #[error("the spec has no root")]
    NoRoot,
    /// The spec has no `linux` section.
    #[error("the spec has no linux section")]
    NoLinux,
    /// A string destined for the kernel contains a NUL byte.
    #[error("{what} {value:?} contains a NUL byte")]
    Nul {
        /// What the string is.
        what: &'static str,
        /// The offending string.
        value: String,
    },
    /// A path that must be absolute is not.
    #[error("{what} {path:?} is not an absolute path")]
    NotAbsolute {
        /// What the path is.
        what: &'static str,
        /// The offending path.
        path: PathBuf,
    },
    /// A capability name is not known.
    #[error("unknown capability {0}")]
    UnknownCapability(String),
    /// Mount options could not be parsed.
    #[error("parsing the options of the mount on {dest:?}: {source}")]
    MountOptions {
        /// Mount destination.
        dest: PathBuf,
        /// What was wrong.
        source: MountOptionError,
    },
    /// A bind mount's source cannot be inspected.
    #[error("inspecting bind source {source_path:?} for {dest:?}: {source}")]
    BindSource {
        /// Source on the host.
        source_path: PathBuf,
        /// Destination in the container.
        dest: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A namespace to join cannot be opened.
    #[error("opening namespace {path:?}: {source}")]
    OpenNamespace {
        /// The namespace path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A feature the spec asks for that this runtime does not provide.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A sysctl name is malformed.
    #[error("invalid sysctl name {0:?}")]
    Sysctl(String),
    /// The id-mapped root overlay of a user-namespaced container could not be built.
    #[error(transparent)]
    Idmap(#[from] IdmapError),
    /// A device type that cannot be created.
    #[error("device {0:?}: only c, b, u and p devices can be created")]
    DeviceType(PathBuf),
}

pub(crate) fn cstring(s: &str, what: &'static str) -> Result<CString, PlanError> {
    CString::new(s).map_err(|_| PlanError::Nul {
        what,
        value: s.to_owned(),
    })
}

/// `path` (absolute) → the same path relative to the container root, normalised, `.` for the root.
pub(crate) fn relative(path: &Path, what: &'static str) -> Result<CString, PlanError> {
    if !path.is_absolute() {
        return Err(PlanError::NotAbsolute {
            what,
            path: path.to_owned(),
        });
    }
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str("..");
            }
            Component::Normal(n) => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(&n.to_string_lossy());
            }
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    cstring(&out, what)
}

/// How a planned mount gets its filesystem.
#[derive(Debug)]
pub(crate) enum MountSource {
    /// A new filesystem instance via `fsopen`/`fsconfig`/`fsmount`.
    Fs {
        fstype: CString,
        source: CString,
        params: Vec<FsParam>,
    },
    /// A clone of a host tree via `open_tree`; `premade` when the parent already cloned it (and set
    /// its attributes), for a child in a user namespace that cannot reach the host path.
    Bind {
        source: CString,
        recursive: bool,
        premade: Option<OwnedFd>,
    },
    /// A tmpfs filled with directories and symlinks, then made read-only before it is attached
    /// (the root of v1 cgroup hierarchies).
    CgroupRoot {
        subdirs: Vec<CString>,
        symlinks: Vec<(CString, CString)>,
    },
}

/// One mount, in order.
#[derive(Debug)]
pub(crate) struct MountPlan {
    /// Destination relative to the container root.
    pub dest: CString,
    /// "proc on /proc", for errors.
    pub display: String,
    pub source: MountSource,
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Attribute changes apply to the whole tree (rbind).
    pub recursive: bool,
    pub propagation: Option<u64>,
    /// Destination is a file (bind of a file), created empty if missing.
    pub is_file: bool,
}

/// A device node to create (or bind from the host if `mknod` is refused).
#[derive(Debug)]
pub(crate) struct DevicePlan {
    pub path: CString,
    pub host_path: CString,
    pub display: String,
    pub mode: u32,
    pub dev: u64,
    pub uid: u32,
    pub gid: u32,
}

/// A namespace joined by path (`linux.namespaces[].path`).
#[derive(Debug)]
pub(crate) struct NsJoin {
    pub fd: OwnedFd,
    pub nstype: i32,
    pub display: String,
}

/// The overlay to mount as the root.
#[derive(Debug)]
pub(crate) struct OverlayPlan {
    pub lowers: Vec<CString>,
    pub upper: CString,
    pub work: CString,
    /// The overlay, already built by the parent (id-mapped lowers for a user namespace): the child
    /// only attaches it.
    pub premounted: Option<OwnedFd>,
}

/// uid/gid maps the parent writes for a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMaps {
    pub uid_map: String,
    pub gid_map: String,
}

/// Symlinks created in a fresh `/dev` (target, name in /dev).
pub(crate) const DEV_SYMLINKS: &[(&std::ffi::CStr, &std::ffi::CStr)] = &[
    (c"/proc/self/fd", c"fd"),
    (c"/proc/self/fd/0", c"stdin"),
    (c"/proc/self/fd/1", c"stdout"),
    (c"/proc/self/fd/2", c"stderr"),
    (c"pts/ptmx", c"ptmx"),
];

const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Everything the container's first process needs, decided before `clone`.
pub(crate) struct Plan<'a> {
    pub clone_flags: u64,
    pub unshare_cgroup: bool,
    pub join: Vec<NsJoin>,
    pub root: CString,
    pub root_display: String,
    pub overlay: Option<OverlayPlan>,
    pub root_readonly: bool,
    pub root_propagation: u64,
    pub mounts: Vec<MountPlan>,
    /// A fresh /dev was mounted: create the default nodes and symlinks.
    pub dev_setup: bool,
    pub devices: Vec<DevicePlan>,
    pub console: bool,
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub sysctls: Vec<(CString, CString)>,
    pub loopback: bool,
    pub die_with_parent: bool,
    /// Every signal blocked across `execve` (an init that `sigwait`s).
    pub signals_blocked: bool,
    pub userns: Option<IdMaps>,
    pub process: ProcessPlan<'a>,
}

impl<'a> Plan<'a> {
    /// The descriptors the plan holds for the child (namespaces to join, premade mounts), which it
    /// keeps when it closes every other descriptor it inherited.
    pub(crate) fn held_fds(&self, out: &mut Vec<std::os::fd::RawFd>) {
        use std::os::fd::AsRawFd;
        out.extend(self.join.iter().map(|j| j.fd.as_raw_fd()));
        out.extend(self.mounts.iter().filter_map(|m| match &m.source {
            MountSource::Bind {
                premade: Some(fd), ..
            } => Some(fd.as_raw_fd()),
            _ => None,
        }));
        out.extend(
            self.overlay
                .iter()
                .filter_map(|o| o.premounted.as_ref().map(|fd| fd.as_raw_fd())),
        );
    }

    /// Builds the plan for `spec`. `terminal` is true when the caller hands a pty slave.
    pub(crate) fn build(
        spec: &Spec,
        overlay: Option<&OverlayRoot>,
        die_with_parent: bool,
        terminal: bool,
        seccomp: Option<&'a Program>,
    ) -> Result<Plan<'a>, PlanError> {
        let process = spec.process().as_ref().ok_or(PlanError::NoProcess)?;
        let root = spec.root().as_ref().ok_or(PlanError::NoRoot)?;
        let linux = spec.linux().as_ref().ok_or(PlanError::NoLinux)?;
        let root_path = root.path();
        if !root_path.is_absolute() {
            return Err(PlanError::NotAbsolute {
                what: "root.path",
                path: root_path.clone(),
            });
        }
        let root_display = root_path.display().to_string();

        let mut clone_flags = 0u64;
        let mut unshare_cgroup = false;
        let mut join = Vec::new();
        let mut new_net = false;
        let mut new_uts = false;
        let mut have_mnt = false;
        for ns in linux.namespaces().as_deref().unwrap_or_default() {
            let (flag, name) = match ns.typ() {
                LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, "mnt"),
                LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, "pid"),
                LinuxNamespaceType::Network => (libc::CLONE_NEWNET, "net"),
                LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "ipc"),
                LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "uts"),
                LinuxNamespaceType::User => (libc::CLONE_NEWUSER, "user"),
                LinuxNamespaceType::Cgroup => (libc::CLONE_NEWCGROUP, "cgroup"),
                LinuxNamespaceType::Time => {
                    return Err(PlanError::Unsupported("time namespaces".into()));
                }
            };
            match ns.path() {
                Some(path) => {
                    if matches!(
                        ns.typ(),
                        LinuxNamespaceType::Pid
                            | LinuxNamespaceType::User
                            | LinuxNamespaceType::Mount
                    ) {
                        return Err(PlanError::Unsupported(format!(
                            "joining an existing {name} namespace at start"
                        )));
                    }
                    let fd =
                        std::fs::File::open(path).map_err(|source| PlanError::OpenNamespace {
                            path: path.clone(),
                            source,
                        })?;
                    join.push(NsJoin {
                        fd: fd.into(),
                        nstype: flag,
                        display: path.display().to_string(),
                    });
                }
                None => match ns.typ() {
                    LinuxNamespaceType::Cgroup => unshare_cgroup = true,
                    t => {
                        clone_flags |= flag as u64;
                        new_net |= t == LinuxNamespaceType::Network;
                        new_uts |= t == LinuxNamespaceType::Uts;
                        have_mnt |= t == LinuxNamespaceType::Mount;
                    }
                },
            }
        }
        if !have_mnt {
            return Err(PlanError::Unsupported(
                "a container without its own mount namespace".into(),
            ));
        }

        let userns = if clone_flags & libc::CLONE_NEWUSER as u64 != 0 {
            let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
                m.as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                    .collect::<String>()
            };
            Some(IdMaps {
                uid_map: fmt(linux.uid_mappings()),
                gid_map: fmt(linux.gid_mappings()),
            })
        } else {
            None
        };

        // One helper user namespace carrying the container's maps, for id-mapping the image layers
        // and `idmap` binds (the container's own namespace does not exist before clone).
        let wants_idmap = overlay.is_some()
            || spec
                .mounts()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|m| {
                    m.options()
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .any(|o| o == "idmap" || o == "ridmap")
                });
        let helper = match &userns {
            Some(maps) if wants_idmap => Some(idmap::helper_userns(maps)?),
            _ => None,
        };
        let overlay = overlay
            .map(|o| -> Result<OverlayPlan, PlanError> {
                Ok(OverlayPlan {
                    lowers: o
                        .lowers
                        .iter()
                        .map(|l| path_cstring(l, "overlay lower"))
                        .collect::<Result<_, _>>()?,
                    upper: path_cstring(&o.upper, "overlay upper")?,
                    work: path_cstring(&o.work, "overlay work")?,
                    premounted: match (&userns, &helper) {
                        (Some(maps), Some(ns)) => Some(idmap::overlay(o, maps, ns.as_fd())?),
                        _ => None,
                    },
                })
            })
            .transpose()?;

        let mut mounts = Vec::new();
        let mut dev_setup = false;
        for m in spec.mounts().as_deref().unwrap_or_default() {
            let dest_path = m.destination();
            let dest = relative(dest_path, "mount destination")?;
            let options = m.options().as_deref().unwrap_or_default();
            let parsed =
                mount::parse_options(options).map_err(|source| PlanError::MountOptions {
                    dest: dest_path.clone(),
                    source,
                })?;
            let typ = m
                .typ()
                .as_deref()
                .unwrap_or(if parsed.bind { "bind" } else { "none" });
            let src_path = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
            let display = format!("{} on {}", src_path.display(), dest_path.display());
            if parsed.bind || typ == "bind" {
                let is_file = std::fs::metadata(&src_path)
                    .map_err(|source| PlanError::BindSource {
                        source_path: src_path.clone(),
                        dest: dest_path.clone(),
                        source,
                    })?
                    // Files, device nodes, sockets: anything but a directory needs a file target.
                    .is_dir()
                    .not();
                mounts.push(MountPlan {
                    dest,
                    display,
                    source: MountSource::Bind {
                        source: path_cstring(&src_path, "bind source")?,
                        recursive: parsed.recursive,
                        premade: match (&userns, parsed.idmap) {
                            (None, true) => {
                                return Err(PlanError::Unsupported(format!(
                                    "idmap on {} without a user namespace",
                                    dest_path.display()
                                )));
                            }
                            (None, false) => None,
                            (Some(maps), idmapped) => {
                                let own;
                                let ns = match (idmapped, mount_maps(m)) {
                                    (false, _) => None,
                                    (true, Some(mm)) if &mm != maps => {
                                        own = idmap::helper_userns(&mm)?;
                                        Some(own.as_fd())
                                    }
                                    (true, _) => helper.as_ref().map(|h| h.as_fd()),
                                };
                                Some(idmap::clone_bind(
                                    &src_path,
                                    parsed.recursive,
                                    parsed.attr_set,
                                    parsed.attr_clr,
                                    ns,
                                )?)
                            }
                        },
                    },
                    attr_set: parsed.attr_set,
                    attr_clr: parsed.attr_clr,
                    recursive: parsed.recursive,
                    propagation: parsed.propagation,
                    is_file,
                });
                continue;
            }
            if dest_path == Path::new("/dev") {
                dev_setup = true;
            }
            if typ == "cgroup" {
                plan_cgroup_mount(&mut mounts, dest_path, &parsed)?;
                continue;
            }
            mounts.push(MountPlan {
                dest,
                display,
                source: MountSource::Fs {
                    fstype: cstring(typ, "mount type")?,
                    source: path_cstring(&src_path, "mount source")?,
                    params: parsed.params,
                },
                attr_set: parsed.attr_set,
                attr_clr: parsed.attr_clr,
                recursive: false,
                propagation: parsed.propagation,
                is_file: false,
            });
        }

        let mut devices = Vec::new();
        let spec_devices = linux.devices().as_deref().unwrap_or_default();
        if dev_setup {
            for (name, major, minor) in DEFAULT_DEVICES {
                let p = format!("/dev/{name}");
                if spec_devices.iter().any(|d| d.path() == Path::new(&p)) {
                    continue;
                }
                devices.push(DevicePlan {
                    path: cstring(&p[1..], "device path")?,
                    host_path: cstring(&p, "device path")?,
                    display: p,
                    mode: libc::S_IFCHR | 0o666,
                    dev: libc::makedev(*major, *minor),
                    uid: 0,
                    gid: 0,
                });
            }
        }
        for d in spec_devices {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                LinuxDeviceType::A => return Err(PlanError::DeviceType(d.path().clone())),
            };
            devices.push(DevicePlan {
                path: relative(d.path(), "device path")?,
                host_path: path_cstring(d.path(), "device path")?,
                display: d.path().display().to_string(),
                mode: kind | (d.file_mode().unwrap_or(0o666) & 0o7777),
                dev: libc::makedev(d.major() as u32, d.minor() as u32),
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            });
        }

        let abs = |v: &Option<Vec<String>>, what| -> Result<Vec<CString>, PlanError> {
            v.as_deref()
                .unwrap_or_default()
                .iter()
                .map(|p| cstring(p, what))
                .collect()
        };
        let masked = abs(linux.masked_paths(), "masked path")?;
        let readonly = abs(linux.readonly_paths(), "readonly path")?;

        let mut sysctls = Vec::new();
        if let Some(map) = linux.sysctl() {
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort();
            for (k, v) in keys {
                if k.is_empty() || k.contains("..") || k.starts_with(['.', '/']) {
                    return Err(PlanError::Sysctl(k.clone()));
                }
                let path = format!("/proc/sys/{}", k.replace('.', "/"));
                sysctls.push((cstring(&path, "sysctl")?, cstring(v, "sysctl value")?));
            }
        }

        let root_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") | Some("private") | Some("rprivate") => libc::MS_PRIVATE,
            Some("slave") | Some("rslave") => libc::MS_SLAVE,
            Some("shared") | Some("rshared") => libc::MS_SHARED,
            Some("unbindable") | Some("runbindable") => libc::MS_UNBINDABLE,
            Some(other) => {
                return Err(PlanError::Unsupported(format!(
                    "rootfsPropagation {other:?}"
                )));
            }
        };

        Ok(Plan {
            clone_flags,
            unshare_cgroup,
            join,
            root: path_cstring(root_path, "root.path")?,
            root_display,
            overlay,
            root_readonly: root.readonly().unwrap_or(false),
            root_propagation,
            mounts,
            dev_setup,
            devices,
            console: terminal && dev_setup,
            masked,
            readonly,
            hostname: match spec.hostname() {
                Some(h) if new_uts => Some(cstring(h, "hostname")?),
                _ => None,
            },
            domainname: match spec.domainname() {
                Some(h) if new_uts => Some(cstring(h, "domainname")?),
                _ => None,
            },
            sysctls,
            loopback: new_net,
            die_with_parent,
            signals_blocked: false,
            userns,
            process: ProcessPlan::build(process, seccomp)?,
        })
    }

    /// The object an error record's index refers to, for messages.
    pub(crate) fn describe(&self, stage: Stage, index: usize) -> String {
        use Stage as S;
        let c = |v: &Vec<CString>| {
            v.get(index)
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        match stage {
            S::MountTarget
            | S::MountCreate
            | S::MountConfig
            | S::MountAttach
            | S::MountAttr
            | S::MountPropagation => self
                .mounts
                .get(index)
                .map(|m| m.display.clone())
                .unwrap_or_default(),
            S::Device => self
                .devices
                .get(index)
                .map(|d| d.display.clone())
                .unwrap_or_default(),
            S::Masked => c(&self.masked),
            S::Readonly => c(&self.readonly),
            S::Sysctl => self
                .sysctls
                .get(index)
                .map(|s| s.0.to_string_lossy().into_owned())
                .unwrap_or_default(),
            S::Join => self
                .join
                .get(index)
                .map(|j| j.display.clone())
                .unwrap_or_default(),
            S::RootMount | S::PivotRoot | S::ReadonlyRoot => self.root_display.clone(),
            S::DevSymlink => DEV_SYMLINKS
                .get(index)
                .map(|s| format!("/dev/{}", s.1.to_string_lossy()))
                .unwrap_or_default(),
            S::Chdir => self.process.cwd.to_string_lossy().into_owned(),
            S::Hostname => self
                .hostname
                .as_ref()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            S::Rlimit => self
                .process
                .rlimits
                .get(index)
                .map(|r| format!("resource {}", r.resource))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// A mount's own `uidMappings`/`gidMappings` (runtime-spec 1.2 idmapped mounts), as map text.
fn mount_maps(m: &oci_spec::runtime::Mount) -> Option<IdMaps> {
    let fmt = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        v.as_deref().filter(|v| !v.is_empty()).map(|v| {
            v.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect::<String>()
        })
    };
    Some(IdMaps {
        uid_map: fmt(m.uid_mappings())?,
        gid_map: fmt(m.gid_mappings())?,
    })
}

fn path_cstring(p: &Path, what: &'static str) -> Result<CString, PlanError> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| PlanError::Nul {
        what,
        value: p.display().to_string(),
    })
}

/// A `cgroup` mount: cgroup2 on a unified host; on a v1 host a read-only tmpfs holding one mount per
/// hierarchy (as runc does), each showing the container's own cgroup when a cgroup namespace is used.
fn plan_cgroup_mount(
    mounts: &mut Vec<MountPlan>,
    dest: &Path,
    parsed: &mount::ParsedOptions,
) -> Result<(), PlanError> {
    let rel = relative(dest, "mount destination")?;
    match cgroupfs::host() {
        cgroupfs::HostCgroups::Unified => mounts.push(MountPlan {
            dest: rel,
            display: format!("cgroup2 on {}", dest.display()),
            source: MountSource::Fs {
                fstype: c"cgroup2".into(),
                source: c"cgroup".into(),
                params: Vec::new(),
            },
            attr_set: parsed.attr_set,
            attr_clr: parsed.attr_clr,
            recursive: false,
            propagation: None,
            is_file: false,
        }),
        cgroupfs::HostCgroups::Legacy {
            hierarchies,
            symlinks,
        } => {
            mounts.push(MountPlan {
                dest: rel,
                display: format!("tmpfs on {}", dest.display()),
                source: MountSource::CgroupRoot {
                    subdirs: hierarchies
                        .iter()
                        .map(|h| cstring(&h.name, "cgroup hierarchy"))
                        .collect::<Result<_, _>>()?,
                    symlinks: symlinks
                        .iter()
                        .map(|(t, n)| {
                            Ok((cstring(t, "cgroup symlink")?, cstring(n, "cgroup symlink")?))
                        })
                        .collect::<Result<_, PlanError>>()?,
                },
                attr_set: parsed.attr_set | mount::attr::RDONLY,
                attr_clr: parsed.attr_clr & !mount::attr::RDONLY,
                recursive: false,
                propagation: None,
                is_file: false,
            });
            for h in hierarchies {
                let d = dest.join(&h.name);
                mounts.push(MountPlan {
                    dest: relative(&d, "mount destination")?,
                    display: format!("{} on {}", h.fstype, d.display()),
                    source: MountSource::Fs {
                        fstype: cstring(&h.fstype, "mount type")?,
                        source: c"cgroup".into(),
                        params: h
                            .options
                            .iter()
                            .map(|o| -> Result<FsParam, PlanError> {
                                Ok(match o.split_once('=') {
                                    Some((k, v)) => FsParam {
                                        key: cstring(k, "cgroup option")?,
                                        value: Some(cstring(v, "cgroup option")?),
                                    },
                                    None => FsParam {
                                        key: cstring(o, "cgroup option")?,
                                        value: None,
                                    },
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    },
                    attr_set: parsed.attr_set,
                    attr_clr: parsed.attr_clr,
                    recursive: false,
                    propagation: None,
                    is_file: false,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxNamespaceBuilder, ProcessBuilder, RootBuilder, SpecBuilder,
    };

    fn spec() -> Spec {
        let ns = |t| LinuxNamespaceBuilder::default().typ(t).build().unwrap();
        SpecBuilder::default()
            .root(
                RootBuilder::default()
                    .path("/tmp/root")
                    .readonly(false)
                    .build()
                    .unwrap(),
            )
            .process(
                ProcessBuilder::default()
                    .args(vec!["true".to_string()])
                    .build()
                    .unwrap(),
            )
            .hostname("box")
            .mounts(crate::defaults::mounts())
            .linux(
                LinuxBuilder::default()
                    .namespaces(vec![
                        ns(LinuxNamespaceType::Mount),
                        ns(LinuxNamespaceType::Pid),
                        ns(LinuxNamespaceType::Network),
                        ns(LinuxNamespaceType::Uts),
                        ns(LinuxNamespaceType::Cgroup),
                    ])
                    .masked_paths(crate::defaults::masked_paths())
                    .sysctl(
                        [("net.ipv4.ip_forward".to_string(), "1".to_string())]
                            .into_iter()
                            .collect::<std::collections::HashMap<_, _>>(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/proc"), "t").unwrap().as_c_str(),
            c"proc"
        );
        assert_eq!(
            relative(Path::new("//dev/./pts/"), "t").unwrap().as_c_str(),
            c"dev/pts"
        );
        assert_eq!(relative(Path::new("/"), "t").unwrap().as_c_str(), c".");
        assert!(relative(Path::new("proc"), "t").is_err());
    }

    #[test]
    fn docker_like_spec_plans() {
        let s = spec();
        let p = Plan::build(&s, None, true, false, None).unwrap();
        let want =
            (libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWUTS)
                as u64;
        assert_eq!(p.clone_flags, want);
        assert!(p.unshare_cgroup && p.loopback && p.dev_setup && !p.console);
        assert_eq!(p.hostname.as_deref(), Some(c"box"));
        assert_eq!(p.mounts[0].dest.as_c_str(), c"proc");
        assert!(
            matches!(&p.mounts[0].source, MountSource::Fs { fstype, .. } if fstype.as_c_str() == c"proc")
        );
        assert!(
            p.mounts
                .iter()
                .any(|m| m.dest.as_c_str() == c"sys/fs/cgroup")
        );
        assert_eq!(p.devices.len(), 6);
        assert_eq!(p.devices[0].dev, libc::makedev(1, 3));
        assert_eq!(p.sysctls[0].0.as_c_str(), c"/proc/sys/net/ipv4/ip_forward");
        assert_eq!(p.masked.len(), crate::defaults::masked_paths().len());
        assert!(p.userns.is_none());
    }

    #[test]
    fn bind_of_missing_source_is_an_error() {
        let mut s = spec();
        let mut m = oci_spec::runtime::Mount::default();
        m.set_destination("/data".into());
        m.set_source(Some("/nonexistent/berth/x".into()));
        m.set_options(Some(vec!["rbind".into(), "ro".into()]));
        s.mounts_mut().as_mut().unwrap().push(m);
        let err = Plan::build(&s, None, false, false, None).err().unwrap();
        assert!(matches!(err, PlanError::BindSource { .. }), "{err}");
    }

    #[test]
    fn bind_of_file_is_file() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut s = spec();
        let mut m = oci_spec::runtime::Mount::default();
        m.set_destination("/etc/hosts".into());
        m.set_typ(Some("bind".into()));
        m.set_source(Some(f.path().to_owned()));
        m.set_options(Some(vec!["rbind".into(), "rprivate".into()]));
        s.mounts_mut().as_mut().unwrap().push(m);
        let p = Plan::build(&s, None, false, false, None).unwrap();
        let last = p.mounts.last().unwrap();
        assert!(last.is_file && last.recursive);
        assert!(matches!(
            last.source,
            MountSource::Bind {
                recursive: true,
                premade: None,
                ..
            }
        ));
    }

    #[test]
    fn sysctl_escape_rejected() {
        let mut s = spec();
        s.linux_mut().as_mut().unwrap().set_sysctl(Some(
            [("../x".to_string(), "1".to_string())]
                .into_iter()
                .collect(),
        ));
        assert!(matches!(
            Plan::build(&s, None, false, false, None),
            Err(PlanError::Sysctl(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn relative_stays_relative(parts in proptest::collection::vec("[a-z.]{0,4}", 0..6)) {
            let abs = format!("/{}", parts.join("/"));
            let rel = relative(Path::new(&abs), "t").unwrap();
            let rel = rel.to_str().unwrap();
            proptest::prop_assert!(!rel.starts_with('/'));
            proptest::prop_assert!(!rel.contains("//"));
            let want: Vec<&str> = parts.iter().map(String::as_str).filter(|p| !p.is_empty() && *p != ".").collect();
            if want.is_empty() {
                proptest::prop_assert_eq!(rel, ".");
            } else {
                proptest::prop_assert_eq!(rel, want.join("/"));
            }
        }
    }
}
