//! Which cgroup version the host runs and where its hierarchies are mounted.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::CgroupError;

/// The v1 controllers a container gets a directory in (name=systemd is not needed).
pub const V1_CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "pids", "devices", "freezer", "blkio", "cpuset",
];

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// One v1 hierarchy: its mount root and the controllers co-mounted on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Controllers attached to this hierarchy ("cpu" and "cpuacct" often share one).
    pub controllers: Vec<&'static str>,
    /// The hierarchy's root directory.
    pub root: PathBuf,
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Legacy: one hierarchy per controller (or group of co-mounted controllers).
    V1 {
        /// Distinct hierarchies, in [`V1_CONTROLLERS`] order of first appearance.
        mounts: Vec<Mount>,
    },
    /// Unified: one hierarchy at `root`.
    V2 {
        /// The cgroup2 mount point.
        root: PathBuf,
    },
}

impl Hierarchy {
    /// The host's layout under /sys/fs/cgroup, detected once per process.
    pub fn host() -> Result<&'static Hierarchy, CgroupError> {
        static HOST: OnceLock<Hierarchy> = OnceLock::new();
        if let Some(h) = HOST.get() {
            return Ok(h);
        }
        let h = Self::detect(Path::new("/sys/fs/cgroup"))?;
        Ok(HOST.get_or_init(|| h))
    }

    /// Detects the layout at `root`: a cgroup2 filesystem there means v2, anything else v1 with
    /// controllers at `root/<name>`.
    pub fn detect(root: &Path) -> Result<Hierarchy, CgroupError> {
        let st = rustix::fs::statfs(root).map_err(|e| CgroupError::Detect {
            root: root.to_owned(),
            source: e.into(),
        })?;
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
        if st.f_type as i64 == CGROUP2_SUPER_MAGIC {
            return Ok(Hierarchy::V2 {
                root: root.to_owned(),
            });
        }
        Ok(Self::v1_at(root))
    }

    /// Whether `controller` ("pids", "memory", …) can be used here: on v1 a hierarchy holds it, on
    /// v2 the root's `cgroup.controllers` lists it.
    pub fn has_controller(&self, controller: &str) -> bool {
        match self {
            Hierarchy::V1 { mounts } => mounts.iter().any(|m| m.controllers.contains(&controller)),
            Hierarchy::V2 { root } => std::fs::read_to_string(root.join("cgroup.controllers"))
                .is_ok_and(|s| s.split_whitespace().any(|c| c == controller)),
        }
    }

    /// The v1 layout with controllers under `root/<name>`; co-mounted controllers (symlinks to one
    /// mount) share one [`Mount`], absent controllers are left out.
    pub fn v1_at(root: &Path) -> Hierarchy {
        let mut mounts: Vec<Mount> = Vec::new();
        for c in V1_CONTROLLERS {
            let Ok(real) = std::fs::canonicalize(root.join(c)) else {
                continue;
            };
            match mounts.iter_mut().find(|m| m.root == real) {
                Some(m) => m.controllers.push(c),
                None => mounts.push(Mount {
                    controllers: vec![c],
                    root: real,
                }),
            }
        }
        Hierarchy::V1 { mounts }
    }
}
