//! The host's cgroup hierarchies, read from `/proc/self/mountinfo`, so a spec's `cgroup` mount can be
//! reproduced inside the container (a v1 host has one hierarchy per controller under a tmpfs).

use std::sync::OnceLock;

/// One cgroup hierarchy mounted on the host under the cgroup root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Directory name under the cgroup root (`cpu`, `systemd`, `unified`).
    pub name: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Controller options (`cpu`, `name=systemd`); empty for cgroup2.
    pub options: Vec<String>,
}

/// How the host mounts cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostCgroups {
    /// cgroup2 mounted at the root: the container mounts cgroup2.
    Unified,
    /// A tmpfs with one mount per hierarchy, plus symlinks such as `cpu,cpuacct` → `cpu`.
    Legacy {
        hierarchies: Vec<Hierarchy>,
        symlinks: Vec<(String, String)>,
    },
}

/// Parses mountinfo text for hierarchies under `root` (normally `/sys/fs/cgroup`).
pub(crate) fn parse_mountinfo(text: &str, root: &str) -> HostCgroups {
    let mut hierarchies = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split(' ').nth(4).unwrap_or("");
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        let _source = r.next();
        let super_opts = r.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        if mountpoint == root && fstype == "cgroup2" {
            return HostCgroups::Unified;
        }
        let Some(name) = mountpoint
            .strip_prefix(root)
            .and_then(|n| n.strip_prefix('/'))
        else {
            continue;
        };
        if name.is_empty() || name.contains('/') {
            continue;
        }
        let options = if fstype == "cgroup" {
            super_opts
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "") && !o.starts_with("release_agent"))
                .filter(|o| {
                    !matches!(
                        *o,
                        "clone_children" | "noprefix" | "xattr" | "cpuset_v2_mode"
                    )
                })
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        hierarchies.push(Hierarchy {
            name: name.to_owned(),
            fstype: fstype.to_owned(),
            options,
        });
    }
    HostCgroups::Legacy {
        hierarchies,
        symlinks: Vec::new(),
    }
}

/// The host's cgroup layout, read once per process.
pub(crate) fn host() -> &'static HostCgroups {
    static HOST: OnceLock<HostCgroups> = OnceLock::new();
    HOST.get_or_init(|| {
        let root = "/sys/fs/cgroup";
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut h = parse_mountinfo(&text, root);
        if let HostCgroups::Legacy { symlinks, .. } = &mut h
            && let Ok(rd) = std::fs::read_dir(root)
        {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_symlink()).unwrap_or(false)
                    && let (Some(name), Ok(target)) =
                        (e.file_name().to_str(), std::fs::read_link(e.path()))
                    && let Some(t) = target.to_str()
                {
                    symlinks.push((t.to_owned(), name.to_owned()));
                }
            }
        }
        h
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:39 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn legacy_hierarchies() {
        let HostCgroups::Legacy { hierarchies, .. } = parse_mountinfo(V1, "/sys/fs/cgroup") else {
            panic!("expected legacy");
        };
        let names: Vec<_> = hierarchies.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu", "systemd", "unified", "cpu,cpuacct"]);
        assert_eq!(hierarchies[1].options, ["name=systemd"]);
        assert_eq!(hierarchies[2].fstype, "cgroup2");
        assert_eq!(hierarchies[3].options, ["cpu", "cpuacct"]);
    }

    #[test]
    fn unified_host() {
        let t = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_mountinfo(t, "/sys/fs/cgroup"), HostCgroups::Unified);
    }
}
