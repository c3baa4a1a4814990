//! `-u USER[:GROUP]` → uid, gid, supplementary groups and home directory, read from the image's
//! `/etc/passwd` and `/etc/group` across overlay layers (topmost first) without ever following a
//! symlink: a layer cannot make berth read a host file.

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors resolving a user or group.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A named user is not in the image's passwd file.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// A named group is not in the image's group file.
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// Reading a file of a layer failed.
    #[error("reading {file} in layer {layer}: {source}")]
    Read {
        /// File inside the layer.
        file: &'static str,
        /// Layer directory.
        layer: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The resolved identity of a container process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (from /etc/group membership).
    pub additional_gids: Vec<u32>,
    /// Home directory from passwd ("/" when unknown).
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

enum Lookup {
    Found(String),
    /// Deleted by a whiteout, hidden by an opaque directory, or a symlink we refuse to follow.
    Hidden,
    Absent,
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 4];
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if let Ok(n) = rustix::fs::fgetxattr(dir, name, &mut buf[..])
            && n >= 1
            && buf[0] == b'y'
        {
            return true;
        }
    }
    false
}

fn lookup_in_layer(layer: &Path, file: &'static str) -> Result<Lookup, UserError> {
    let err = |source: std::io::Error| UserError::Read {
        file,
        layer: layer.to_owned(),
        source,
    };
    let root = match rustix::fs::open(
        layer,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Lookup::Absent),
        Err(e) => return Err(err(e.into())),
    };
    let etc = match rustix::fs::openat2(
        &root,
        "etc",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Lookup::Absent),
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => return Ok(Lookup::Hidden),
        Err(e) => return Err(err(e.into())),
    };
    let st = rustix::fs::fstat(&etc).map_err(|e| err(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        // A whiteout (char device 0:0) or a file where /etc should be: nothing below is visible.
        return Ok(Lookup::Hidden);
    }
    let name = &file["etc/".len()..];
    let fd = match rustix::fs::openat2(
        &etc,
        name,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            let opaque = rustix::fs::openat2(
                &root,
                "etc",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )
            .map(|d| is_opaque(&d))
            .unwrap_or(false);
            return Ok(if opaque {
                Lookup::Hidden
            } else {
                Lookup::Absent
            });
        }
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => return Ok(Lookup::Hidden),
        Err(e) => return Err(err(e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(Lookup::Hidden); // whiteout or something that is not a file
    }
    let real = rustix::fs::openat2(
        &etc,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(|e| err(e.into()))?;
    let mut text = String::new();
    std::fs::File::from(real)
        .take(4 << 20)
        .read_to_string(&mut text)
        .map_err(err)?;
    Ok(Lookup::Found(text))
}

/// Reads `file` ("etc/passwd") from the first layer (topmost first) that has it.
fn read_layered(layers: &[PathBuf], file: &'static str) -> Result<Option<String>, UserError> {
    for layer in layers {
        match lookup_in_layer(layer, file)? {
            Lookup::Found(t) => return Ok(Some(t)),
            Lookup::Hidden => return Ok(None),
            Lookup::Absent => {}
        }
    }
    Ok(None)
}

/// Resolves `spec` ("", "name", "uid", "name:group", "uid:gid") against the layers (topmost first).
pub fn resolve(spec: &str, layers: &[PathBuf]) -> Result<ResolvedUser, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd = parse_passwd(&read_layered(layers, "etc/passwd")?.unwrap_or_default());
    let groups = parse_group(&read_layered(layers, "etc/group")?.unwrap_or_default());

    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid),
        Err(_) => Some(
            passwd
                .iter()
                .find(|p| p.name == user)
                .ok_or_else(|| UserError::UserNotFound(user.to_owned()))?,
        ),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user
            .parse::<u32>()
            .map_err(|_| UserError::UserNotFound(user.to_owned()))?,
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::GroupNotFound(g.to_owned()))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(e) = entry {
        for g in &groups {
            if g.members.contains(&e.name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    let home = entry
        .map(|e| e.home.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, passwd: Option<&str>, group: Option<&str>) -> PathBuf {
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        if let Some(p) = passwd {
            std::fs::write(dir.join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            std::fs::write(dir.join("etc/group"), g).unwrap();
        }
        dir.to_owned()
    }

    #[test]
    fn resolves_names_ids_groups_and_home() {
        let t = tempfile::tempdir().unwrap();
        let bottom = layer(
            &t.path().join("l0"),
            Some("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"),
            Some("root:x:0:\nwheel:x:10:user\nuser:x:1000:\nstaff:x:50:other,user\n"),
        );
        let top = layer(&t.path().join("l1"), None, None);
        let layers = vec![top, bottom];
        let r = resolve("user", &layers).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1000, 1000, "/home/user"));
        assert_eq!(r.additional_gids, vec![10, 50]);
        let r = resolve("", &layers).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve("1000:wheel", &layers).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 10));
        let r = resolve("4242:7", &layers).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (4242, 7, "/"));
        assert!(matches!(
            resolve("ghost", &layers),
            Err(UserError::UserNotFound(_))
        ));
        assert!(matches!(
            resolve("user:ghosts", &layers),
            Err(UserError::GroupNotFound(_))
        ));
    }

    #[test]
    fn topmost_layer_wins_and_symlinks_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let bottom = layer(
            &t.path().join("l0"),
            Some("root:x:0:0:root:/root:/bin/sh\n"),
            None,
        );
        let top = layer(
            &t.path().join("l1"),
            Some("root:x:0:0:root:/top:/bin/sh\n"),
            None,
        );
        assert_eq!(
            resolve("root", &[top.clone(), bottom.clone()])
                .unwrap()
                .home,
            "/top"
        );

        // A symlink to a host file hides the lower file rather than being followed.
        let host = t.path().join("host-passwd");
        std::fs::write(&host, "evil:x:0:0::/evil:/bin/sh\n").unwrap();
        let sneaky = t.path().join("l2");
        std::fs::create_dir_all(sneaky.join("etc")).unwrap();
        std::os::unix::fs::symlink(&host, sneaky.join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve("evil", &[sneaky.clone(), bottom.clone()]),
            Err(UserError::UserNotFound(_))
        ));
        let sneaky_etc = t.path().join("l3");
        std::fs::create_dir_all(&sneaky_etc).unwrap();
        std::os::unix::fs::symlink(t.path().join("l1/etc"), sneaky_etc.join("etc")).unwrap();
        assert_eq!(resolve("0", &[sneaky_etc, bottom]).unwrap().home, "/");
    }
}
