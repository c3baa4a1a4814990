//! cgroups v1 and v2 behind one [`Cgroup`] type, the version detected at run time.
//!
//! Which file gets which value is decided in [`plan`] (pure, tested without root); this module only
//! makes directories, writes the planned values and reads state back. Creation is on the start hot
//! path: each file is opened once and nothing is read that is not needed.

pub mod devices;
mod fsops;
mod hierarchy;
pub mod plan;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

pub use hierarchy::{Hierarchy, Mount};
use plan::Version;

/// What went wrong with a cgroup, naming the operation and the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup path is not a relative path of normal components.
    #[error("invalid cgroup path {path:?}: must be relative, without '..'")]
    InvalidPath {
        /// The rejected path.
        path: String,
    },
    /// Finding out which cgroup version the host runs failed.
    #[error("detecting the cgroup version at {root}: {source}")]
    Detect {
        /// The cgroup mount root examined.
        root: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Making a cgroup directory failed.
    #[error("creating cgroup directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("writing {value:?} to {file}: {source}")]
    Write {
        /// The file.
        file: PathBuf,
        /// The value written.
        value: String,
        /// The error.
        source: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("reading {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A limit needs a controller this host does not mount (v1) or enable (v2).
    #[error("setting {file}: the {controller} cgroup controller is not available")]
    ControllerMissing {
        /// The controller.
        controller: &'static str,
        /// The file that would have been written.
        file: &'static str,
    },
    /// Opening `cgroup.procs` for a later join failed.
    #[error("opening {file} to join the cgroup: {source}")]
    OpenProcs {
        /// The file.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Sending a signal to a process of the cgroup failed.
    #[error("sending signal {signal} to process {pid}: {source}")]
    Signal {
        /// The process.
        pid: i32,
        /// The signal.
        signal: i32,
        /// The error.
        source: io::Error,
    },
    /// The cgroup did not reach the frozen state in time.
    #[error("freezing cgroup {dir}: still not frozen after {millis} ms")]
    FreezeTimeout {
        /// The cgroup directory.
        dir: PathBuf,
        /// How long we waited.
        millis: u64,
    },
    /// Loading or attaching the v2 device-access eBPF program failed.
    #[error("{action} cgroup {dir}: {source}{}", if log.is_empty() { String::new() } else { format!("; verifier: {log}") })]
    DeviceFilter {
        /// What was being done.
        action: &'static str,
        /// The cgroup directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
        /// The BPF verifier's log, if it rejected the program.
        log: String,
    },
    /// Removing a cgroup directory failed (after retries while its tasks exit).
    #[error("removing cgroup directory {dir}: {source}")]
    Remove {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A container's cgroup: one directory per mounted controller (v1) or one unified directory (v2).
#[derive(Debug, Clone)]
pub enum Cgroup {
    /// Legacy hierarchies.
    V1(V1),
    /// The unified hierarchy.
    V2(V2),
}

/// A v1 cgroup: the same relative path in every controller hierarchy.
#[derive(Debug, Clone)]
pub struct V1 {
    path: String,
    /// (controllers co-mounted there, absolute cgroup directory), one per distinct hierarchy.
    dirs: Vec<(Vec<&'static str>, PathBuf)>,
}

/// A v2 cgroup: one directory.
#[derive(Debug, Clone)]
pub struct V2 {
    path: String,
    dir: PathBuf,
}

/// Pre-opened `cgroup.procs` files: the child writes "0" into each to move itself, without allocating.
#[derive(Debug)]
pub struct JoinHandle {
    fds: Vec<OwnedFd>,
}

impl JoinHandle {
    /// Moves the calling process into the cgroup. Async-signal-safe: no allocation, one write per fd.
    pub fn join_self(&self) -> Result<(), rustix::io::Errno> {
        for fd in &self.fds {
            rustix::io::write(fd, b"0")?;
        }
        Ok(())
    }

    /// The descriptors the handle holds (a child that closes everything else keeps these).
    pub(crate) fn raw_fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        use std::os::fd::AsRawFd;
        self.fds.iter().map(|f| f.as_raw_fd())
    }
}

/// Checks `path` and returns it without leading '/' (Docker writes "/docker/<id>"; we accept both).
fn normalise(path: &str, allow_root: bool) -> Result<&str, CgroupError> {
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    let bad = rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..");
    if (rel.is_empty() && !allow_root) || (!rel.is_empty() && bad) {
        return Err(CgroupError::InvalidPath {
            path: path.to_owned(),
        });
    }
    Ok(rel)
}

impl Cgroup {
    /// Creates the cgroup `path` (relative, e.g. "berth/<id>") on this host and applies `resources`.
    pub fn create(path: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, CgroupError> {
        Self::create_in(Hierarchy::host()?, path, resources)
    }

    /// Opens the existing cgroup `path` on this host ("" or "/" is the root cgroup).
    pub fn open(path: &str) -> Result<Cgroup, CgroupError> {
        Self::open_in(Hierarchy::host()?, path)
    }

    /// Opens `path` under an explicit hierarchy (tests, or a non-standard mount).
    pub fn open_in(h: &Hierarchy, path: &str) -> Result<Cgroup, CgroupError> {
        let rel = normalise(path, true)?;
        Ok(match h {
            Hierarchy::V1 { mounts } => Cgroup::V1(V1 {
                path: rel.to_owned(),
                dirs: mounts
                    .iter()
                    .map(|m| (m.controllers.clone(), m.root.join(rel)))
                    .collect(),
            }),
            Hierarchy::V2 { root } => Cgroup::V2(V2 {
                path: rel.to_owned(),
                dir: root.join(rel),
            }),
        })
    }

    /// Creates `path` under an explicit hierarchy and applies `resources`; on failure removes what it made.
    pub fn create_in(
        h: &Hierarchy,
        path: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, CgroupError> {
        normalise(path, false)?;
        let cg = Self::open_in(h, path)?;
        let res = match &cg {
            Cgroup::V1(v) => v.create(h, resources),
            Cgroup::V2(v) => v.create(h, resources),
        };
        if let Err(e) = res {
            // Best effort: the error that matters is the first one.
            let _ = cg.destroy();
            return Err(e);
        }
        Ok(cg)
    }

    /// The cgroup path relative to the hierarchy root, as given (without leading '/').
    pub fn path(&self) -> &str {
        match self {
            Cgroup::V1(v) => &v.path,
            Cgroup::V2(v) => &v.path,
        }
    }

    /// The cgroup version.
    pub fn version(&self) -> Version {
        match self {
            Cgroup::V1(_) => Version::V1,
            Cgroup::V2(_) => Version::V2,
        }
    }

    /// Every directory of this cgroup (one per distinct v1 hierarchy, or the single v2 one).
    pub fn dirs(&self) -> Vec<&Path> {
        match self {
            Cgroup::V1(v) => v.dirs.iter().map(|(_, d)| d.as_path()).collect(),
            Cgroup::V2(v) => vec![v.dir.as_path()],
        }
    }

    /// Opens every `cgroup.procs` now, so a freshly cloned child can join with [`JoinHandle::join_self`].
    pub fn join_handle(&self) -> Result<JoinHandle, CgroupError> {
        let mut fds = Vec::new();
        for d in self.dirs() {
            let file = d.join("cgroup.procs");
            let fd = rustix::fs::open(
                &file,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| CgroupError::OpenProcs {
                file,
                source: e.into(),
            })?;
            fds.push(fd);
        }
        Ok(JoinHandle { fds })
    }

    /// The ids of the processes in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match self {
            Cgroup::V1(v) => v
                .dir_of("pids")
                .or_else(|| v.dirs.first().map(|(_, d)| d.as_path())),
            Cgroup::V2(v) => Some(v.dir.as_path()),
        };
        match dir {
            Some(d) => fsops::read_pids(&d.join("cgroup.procs")),
            None => Ok(Vec::new()),
        }
    }

    /// Sends `sig` to every process in the cgroup, with no chance for one to fork past the signal.
    pub fn kill_all(&self, sig: i32) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(v) => match v.dir_of("freezer") {
                // A cgroup already removed has nobody left to signal.
                Some(f) if !f.exists() => signal_all(&self.pids()?, sig),
                Some(f) => {
                    fsops::write(&f.join("freezer.state"), "FROZEN")?;
                    let frozen =
                        fsops::wait_for(&f.join("freezer.state"), |s| s.trim() == "FROZEN", f);
                    let sent = frozen.and_then(|()| signal_all(&self.pids()?, sig));
                    let thawed = fsops::write(&f.join("freezer.state"), "THAWED");
                    sent.and(thawed)
                }
                None => signal_all(&self.pids()?, sig),
            },
            Cgroup::V2(v) if !v.dir.exists() => Ok(()),
            Cgroup::V2(v) => {
                let kill = v.dir.join("cgroup.kill");
                if sig == libc::SIGKILL && kill.exists() {
                    return fsops::write(&kill, "1");
                }
                fsops::write(&v.dir.join("cgroup.freeze"), "1")?;
                let frozen = fsops::wait_for(
                    &v.dir.join("cgroup.events"),
                    |s| s.lines().any(|l| l == "frozen 1"),
                    &v.dir,
                );
                let sent = frozen.and_then(|()| signal_all(&self.pids()?, sig));
                let thawed = fsops::write(&v.dir.join("cgroup.freeze"), "0");
                sent.and(thawed)
            }
        }
    }

    /// Whether the kernel OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> Result<bool, CgroupError> {
        let (file, keys): (PathBuf, &[&str]) = match self {
            Cgroup::V1(v) => match v.dir_of("memory") {
                Some(d) => (d.join("memory.oom_control"), &["oom_kill", "under_oom"]),
                None => return Ok(false),
            },
            Cgroup::V2(v) => (v.dir.join("memory.events"), &["oom_kill"]),
        };
        let text = match fsops::read_optional(&file)? {
            Some(t) => t,
            None => return Ok(false),
        };
        Ok(text.lines().any(|l| {
            let mut it = l.split_whitespace();
            matches!((it.next(), it.next()), (Some(k), Some(n)) if keys.contains(&k) && n.parse::<u64>().is_ok_and(|n| n > 0))
        }))
    }

    /// Current memory use in bytes, or `None` without a memory controller.
    pub fn memory_usage(&self) -> Result<Option<u64>, CgroupError> {
        let file = match self {
            Cgroup::V1(v) => match v.dir_of("memory") {
                Some(d) => d.join("memory.usage_in_bytes"),
                None => return Ok(None),
            },
            Cgroup::V2(v) => v.dir.join("memory.current"),
        };
        Ok(fsops::read_optional(&file)?.and_then(|t| t.trim().parse().ok()))
    }

    /// Removes the cgroup in every hierarchy, retrying briefly while exiting tasks keep it busy.
    /// Parents (e.g. "berth") are left for other containers. Missing directories are fine.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first = Ok(());
        for d in self.dirs() {
            if let Err(e) = fsops::remove_dir(d)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

fn signal_all(pids: &[i32], sig: i32) -> Result<(), CgroupError> {
    for &pid in pids {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(CgroupError::Signal {
                    pid,
                    signal: sig,
                    source: err,
                });
            }
        }
    }
    Ok(())
}

impl V1 {
    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.contains(&controller))
            .map(|(_, d)| d.as_path())
    }

    fn create(&self, h: &Hierarchy, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let Hierarchy::V1 { mounts } = h else {
            unreachable!("V1 cgroup from a v2 hierarchy")
        };
        for (m, (_, dir)) in mounts.iter().zip(&self.dirs) {
            fsops::make_dirs(&m.root, &self.path)?;
            if m.controllers.contains(&"cpuset") {
                fsops::ensure_cpuset(&m.root, dir)?;
            }
        }
        if let Some(res) = resources {
            for w in plan::plan(Version::V1, res) {
                let Some(dir) = self.dir_of(w.controller) else {
                    if w.optional {
                        continue;
                    }
                    return Err(CgroupError::ControllerMissing {
                        controller: w.controller,
                        file: w.file,
                    });
                };
                fsops::apply(dir, &w)?;
            }
        }
        Ok(())
    }
}

impl V2 {
    fn create(&self, h: &Hierarchy, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let Hierarchy::V2 { root } = h else {
            unreachable!("V2 cgroup from a v1 hierarchy")
        };
        let created = fsops::make_dirs(root, &self.path)?;
        // Controllers reach a leaf only if every ancestor delegates them; do it once, when an
        // ancestor is new (so the hot path of an existing "berth" parent costs nothing).
        let comps: Vec<&str> = self.path.split('/').collect();
        let mut parent = root.clone();
        for (i, c) in comps.iter().enumerate() {
            if i + 1 == comps.len() {
                break;
            }
            let dir = parent.join(c);
            if i >= created.first_new {
                fsops::delegate_controllers(&parent)?;
                fsops::delegate_controllers(&dir)?;
            }
            parent = dir;
        }
        // Even without limits, memory.oom.group is planned: one OOM kill takes the whole container.
        let none = LinuxResources::default();
        for w in &plan::plan(Version::V2, resources.unwrap_or(&none)) {
            fsops::apply(&self.dir, w)?;
        }
        if let Some(rules) = resources.and_then(|r| r.devices().as_ref()) {
            devices::attach(&self.dir, &devices::program(rules))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
