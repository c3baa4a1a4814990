//! A minimal busybox root filesystem from Debian's busybox-static (installed by `scripts/deps.sh`): the
//! binary, a symlink per applet, `/etc/passwd` and `/etc/group` with root, `user` (1000) and nobody, and
//! the usual empty directories. As a directory ([`write_rootfs`]) or as a tar built once per test run
//! ([`tar`]); the tar records owners and modes itself, so building it needs no root.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n";

/// One entry of the root filesystem.
enum Entry {
    Dir {
        path: &'static str,
        mode: u32,
        owner: u32,
    },
    File {
        path: &'static str,
        data: Vec<u8>,
        mode: u32,
    },
    Link {
        path: String,
    },
}

/// The host's busybox-static binary.
pub fn binary() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is not installed: run scripts/deps.sh")
}

fn entries() -> Vec<Entry> {
    let bin = binary();
    let mut out: Vec<Entry> = [
        ("bin", 0o755, 0),
        ("etc", 0o755, 0),
        ("tmp", 0o1777, 0),
        ("proc", 0o555, 0),
        ("sys", 0o555, 0),
        ("dev", 0o755, 0),
        ("root", 0o700, 0),
        ("home", 0o755, 0),
        ("home/user", 0o755, 1000),
        ("var", 0o755, 0),
    ]
    .into_iter()
    .map(|(path, mode, owner)| Entry::Dir { path, mode, owner })
    .collect();
    out.push(Entry::File {
        path: "bin/busybox",
        data: std::fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display())),
        mode: 0o755,
    });
    let list = std::process::Command::new(&bin)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" {
            out.push(Entry::Link {
                path: format!("bin/{applet}"),
            });
        }
    }
    out.push(Entry::File {
        path: "etc/passwd",
        data: PASSWD.into(),
        mode: 0o644,
    });
    out.push(Entry::File {
        path: "etc/group",
        data: GROUP.into(),
        mode: 0o644,
    });
    out
}

/// Writes the root filesystem at `rootfs` (created if missing). Owners other than the caller's are
/// set only when the caller may (root).
pub fn write_rootfs(rootfs: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in entries() {
        match e {
            Entry::Dir { path, mode, owner } => {
                let p = rootfs.join(path);
                std::fs::create_dir_all(&p)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
                if owner != 0 {
                    let _ = std::os::unix::fs::chown(&p, Some(owner), Some(owner));
                }
            }
            Entry::File { path, data, mode } => {
                let p = rootfs.join(path);
                std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            Entry::Link { path } => {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join(path));
            }
        }
    }
}

/// The root filesystem as an uncompressed tar, in memory.
pub fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries() {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir { path, mode, owner } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                h.set_uid(owner.into());
                h.set_gid(owner.into());
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())
            }
            Entry::File { path, data, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..])
            }
            Entry::Link { path } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, "busybox")
            }
        }
        .expect("append to the busybox tar");
    }
    b.into_inner().expect("finish the busybox tar")
}

/// The root filesystem as a tar file, built once per test run under [`crate::scratch_dir`] and then
/// shared by every test (published with a rename, so parallel binaries never see half a file).
pub fn tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = crate::scratch_dir();
        let tar = dir.join("busybox.tar");
        if !tar.exists() {
            let tmp = dir.join(format!(".busybox.tar.{}", std::process::id()));
            std::fs::write(&tmp, tar_bytes()).expect("write the busybox tar");
            std::fs::rename(&tmp, &tar).expect("publish busybox.tar");
        }
        tar
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tar_holds_busybox_its_applets_and_a_user() {
        let bytes = super::tar_bytes();
        let mut a = tar::Archive::new(&bytes[..]);
        let mut names = std::collections::BTreeMap::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            names.insert(
                e.path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned(),
                (h.entry_type(), h.uid().unwrap()),
            );
        }
        assert_eq!(names["bin/busybox"].0, tar::EntryType::Regular);
        assert_eq!(names["bin/sh"].0, tar::EntryType::Symlink);
        assert_eq!(names["home/user"], (tar::EntryType::Directory, 1000));
        assert!(names.contains_key("etc/passwd"));
    }

    #[test]
    fn a_written_rootfs_runs_its_shell() {
        let d = tempfile::tempdir().unwrap();
        super::write_rootfs(d.path());
        let out = std::process::Command::new(d.path().join("bin/sh"))
            .args(["-c", "echo ok"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
        assert!(
            std::fs::read_to_string(d.path().join("etc/passwd"))
                .unwrap()
                .contains("user:x:1000")
        );
    }
}
