//! `--userns auto`: each container gets its own range of 65536 host uids and gids, so its root is
//! an unprivileged host id no other container shares.
//!
//! Ranges come from the `berth` entries of `/etc/subuid` and `/etc/subgid` when both have one
//! (cut into 65536-id blocks), else from 100000 upward in 65536 steps. Claims live under
//! `ROOT/userns/`: one file per claimed range, named by its first uid and holding
//! `<container id> <uid> <gid> <size>`, written atomically under an exclusive `flock` of
//! `ROOT/userns/.lock`. A container keeps its range across starts; removal releases it, and a
//! claim whose container directory is gone (a create or removal killed half-way) is reclaimed.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

/// Size of every allocated range.
pub const RANGE_SIZE: u32 = 65_536;
/// First host id of the default pool.
pub const DEFAULT_BASE: u32 = 100_000;
/// The user whose `/etc/subuid` and `/etc/subgid` entries give the pool.
pub const SUBID_USER: &str = "berth";

/// A container's id mapping: container ids `0..size` are host uids `uid..` and gids `gid..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First host uid.
    pub uid: u32,
    /// First host gid.
    pub gid: u32,
    /// Number of ids.
    pub size: u32,
}

impl IdRange {
    fn overlaps(&self, o: &IdRange) -> bool {
        let ov = |a: u32, b: u32| {
            let (a, b) = (u64::from(a), u64::from(b));
            a < b + u64::from(o.size) && b < a + u64::from(self.size)
        };
        ov(self.uid, o.uid) || ov(self.gid, o.gid)
    }
}

/// Errors of range allocation.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// A file operation on the claims directory failed.
    #[error("{action} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Every range of the pool is claimed.
    #[error("no free range of {RANGE_SIZE} ids for --userns auto: all {0} ranges are in use")]
    Exhausted(usize),
}

/// The ranges containers may get, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pool {
    /// 100000 upward in 65536 steps, same ids for uids and gids.
    Default,
    /// Blocks cut from `/etc/subuid` and `/etc/subgid`, paired in order.
    Listed(Vec<IdRange>),
}

impl Pool {
    /// The pool for this host: the `berth` sub-id entries, or the default.
    pub fn host() -> Pool {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Pool::from_subids(&read("/etc/subuid"), &read("/etc/subgid"), SUBID_USER)
    }

    /// The pool from the text of `/etc/subuid` and `/etc/subgid` for `user`.
    pub fn from_subids(subuid: &str, subgid: &str, user: &str) -> Pool {
        let blocks = |text: &str| -> Vec<u32> {
            let mut out = Vec::new();
            for line in text.lines() {
                let mut f = line.trim().split(':');
                let (Some(name), Some(start), Some(count)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else {
                    continue;
                };
                if name != user {
                    continue;
                }
                let mut s = start;
                while s + u64::from(RANGE_SIZE) <= start + count
                    && s + u64::from(RANGE_SIZE) <= u64::from(u32::MAX)
                {
                    out.push(s as u32);
                    s += u64::from(RANGE_SIZE);
                }
            }
            out
        };
        let (u, g) = (blocks(subuid), blocks(subgid));
        if u.is_empty() || g.is_empty() {
            return Pool::Default;
        }
        Pool::Listed(
            u.into_iter()
                .zip(g)
                .map(|(uid, gid)| IdRange {
                    uid,
                    gid,
                    size: RANGE_SIZE,
                })
                .collect(),
        )
    }

    fn len(&self) -> usize {
        match self {
            Pool::Default => {
                ((u64::from(u32::MAX) - u64::from(DEFAULT_BASE)) / u64::from(RANGE_SIZE)) as usize
            }
            Pool::Listed(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> Option<IdRange> {
        match self {
            Pool::Default => (i < self.len()).then(|| {
                let start = DEFAULT_BASE + (i as u32) * RANGE_SIZE;
                IdRange {
                    uid: start,
                    gid: start,
                    size: RANGE_SIZE,
                }
            }),
            Pool::Listed(v) => v.get(i).copied(),
        }
    }
}

/// The claims directory of a state root, with its lock held.
struct Claims {
    dir: PathBuf,
    _lock: std::os::fd::OwnedFd,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> UsernsError + 'a {
    move |source| UsernsError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl Claims {
    fn lock(root: &Path) -> Result<Claims, UsernsError> {
        let dir = root.join("userns");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let p = dir.join(".lock");
        let fd = rustix::fs::open(
            &p,
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io("open", &p)(e.into()))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .map_err(|e| io("lock", &p)(e.into()))?;
        Ok(Claims { dir, _lock: fd })
    }

    /// Every claim: (file, owner id, range). Unreadable or malformed files are skipped.
    fn list(&self) -> Result<Vec<(PathBuf, String, IdRange)>, UsernsError> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io("read", &self.dir))? {
            let e = e.map_err(io("read", &self.dir))?;
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Some((id, r)) = parse_claim(&text) {
                out.push((path, id, r));
            }
        }
        Ok(out)
    }

    fn write(&self, id: &str, r: IdRange) -> Result<(), UsernsError> {
        let tmp = self.dir.join(format!(".claim-{id}"));
        let fin = self.dir.join(r.uid.to_string());
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(format!("{id} {} {} {}\n", r.uid, r.gid, r.size).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &fin).map_err(io("rename", &fin))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", &self.dir))
    }
}

fn parse_claim(text: &str) -> Option<(String, IdRange)> {
    let mut f = text.split_whitespace();
    let id = f.next()?.to_owned();
    let mut n = || f.next()?.parse::<u32>().ok();
    let (uid, gid, size) = (n()?, n()?, n()?);
    Some((id, IdRange { uid, gid, size }))
}

/// The range of container `id`: the one it already holds, else the first free one of `pool`.
/// `live(other)` says whether another claim's container still exists; stale claims are dropped.
pub fn acquire(
    root: &Path,
    id: &str,
    pool: &Pool,
    live: impl Fn(&str) -> bool,
) -> Result<IdRange, UsernsError> {
    let claims = Claims::lock(root)?;
    let mut taken = Vec::new();
    for (path, owner, r) in claims.list()? {
        if owner == id {
            return Ok(r);
        }
        if live(&owner) {
            taken.push(r);
        } else {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
    }
    for i in 0..pool.len() {
        let Some(r) = pool.get(i) else { break };
        if !taken.iter().any(|t| t.overlaps(&r)) {
            claims.write(id, r)?;
            return Ok(r);
        }
    }
    Err(UsernsError::Exhausted(pool.len()))
}

/// Releases the range of container `id`, if it holds one.
pub fn release(root: &Path, id: &str) -> Result<(), UsernsError> {
    if !root.join("userns").exists() {
        return Ok(());
    }
    let claims = Claims::lock(root)?;
    for (path, owner, _) in claims.list()? {
        if owner == id {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subids_of_berth_are_cut_into_blocks() {
        let uid = "alice:100000:65536\nberth:200000:140000\n";
        let gid = "berth:300000:65536\nberth:500000:65536\n";
        let p = Pool::from_subids(uid, gid, "berth");
        assert_eq!(
            p,
            Pool::Listed(vec![
                IdRange {
                    uid: 200_000,
                    gid: 300_000,
                    size: RANGE_SIZE
                },
                IdRange {
                    uid: 265_536,
                    gid: 500_000,
                    size: RANGE_SIZE
                },
            ])
        );
        assert_eq!(Pool::from_subids(uid, "", "berth"), Pool::Default);
        assert_eq!(
            Pool::from_subids("berth:1:100\n", gid, "berth"),
            Pool::Default
        );
    }

    #[test]
    fn ranges_are_distinct_kept_released_and_reclaimed() {
        let t = tempfile::tempdir().unwrap();
        let live = |id: &str| id != "gone";
        let a = acquire(t.path(), "a", &Pool::Default, live).unwrap();
        let b = acquire(t.path(), "b", &Pool::Default, live).unwrap();
        assert_eq!(a.uid, DEFAULT_BASE);
        assert_eq!(b.uid, DEFAULT_BASE + RANGE_SIZE);
        assert_eq!(acquire(t.path(), "a", &Pool::Default, live).unwrap(), a);
        release(t.path(), "a").unwrap();
        let c = acquire(t.path(), "c", &Pool::Default, live).unwrap();
        assert_eq!(c, a, "a released range is reused");
        let g = acquire(t.path(), "gone", &Pool::Default, |_| true).unwrap();
        assert_eq!(g.uid, DEFAULT_BASE + 2 * RANGE_SIZE);
        // "gone" no longer exists: its claim is reclaimed by the next allocation.
        let d = acquire(t.path(), "d", &Pool::Default, live).unwrap();
        assert_eq!(d, g);
    }

    #[test]
    fn a_claim_overlapping_the_pool_is_respected() {
        let t = tempfile::tempdir().unwrap();
        let pool = Pool::Listed(vec![
            IdRange {
                uid: 100_000,
                gid: 100_000,
                size: RANGE_SIZE,
            },
            IdRange {
                uid: 300_000,
                gid: 300_000,
                size: RANGE_SIZE,
            },
        ]);
        let a = acquire(t.path(), "a", &Pool::Default, |_| true).unwrap();
        assert_eq!(a.uid, 100_000);
        let b = acquire(t.path(), "b", &pool, |_| true).unwrap();
        assert_eq!(b.uid, 300_000);
        assert!(matches!(
            acquire(t.path(), "c", &pool, |_| true),
            Err(UsernsError::Exhausted(2))
        ));
    }

    #[test]
    fn concurrent_acquires_never_share() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_owned();
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    acquire(&root, &format!("c{i}"), &Pool::Default, |_| true).unwrap()
                })
            })
            .collect();
        let mut got: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap().uid).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 8);
    }
}
