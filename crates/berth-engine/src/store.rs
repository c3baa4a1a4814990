//! Containers on disk. `ROOT/containers/<id>/` holds `config.json` (written once), `state.json`
//! (replaced atomically), the JSON log, the overlay `upper/`, `work/` and `rootfs/` dirs and the
//! `hosts`/`hostname`/`resolv.conf` files. `ROOT/names/<name>` is a symlink to the id owning a
//! name: `symlink(2)` fails if the name exists, so two creators cannot both win. A container is
//! visible (listed, resolvable) only once its `state.json` exists, so the files written before it
//! need no temp-and-rename.
//! State changes happen under an exclusive `flock` of the container directory.

use crate::record::{ContainerRecord, State};
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors reading or writing container records.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No container matches.
    #[error("No such container: {0}")]
    NotFound(String),
    /// A prefix matches several containers.
    #[error("multiple containers match {0:?}: use more characters of the id")]
    Ambiguous(String),
    /// The name is taken.
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The owner.
        id: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A record does not parse.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Writes `data` to `path` atomically (berth-fs): `durable = false` is for state that dies with
/// the container.
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<(), StoreError> {
    let durability = if durable {
        berth_fs::Durability::Durable
    } else {
        berth_fs::Durability::Volatile
    };
    berth_fs::write_atomic(path, data, durability).map_err(|e| StoreError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

/// An exclusive lock on one container's directory; released on drop.
#[derive(Debug)]
pub struct ContainerLock {
    _fd: OwnedFd,
}

/// The container records under a state root.
#[derive(Debug, Clone)]
pub struct Containers {
    root: PathBuf,
}

impl Containers {
    /// The records under ROOT (`ROOT/containers`, `ROOT/names`), created if missing.
    pub fn open(root: &Path) -> Result<Containers, StoreError> {
        for d in ["containers", "names"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io("create", &p))?;
        }
        Ok(Containers {
            root: root.to_owned(),
        })
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/containers/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Creates the container directory with `upper/`, `work/` and `rootfs/`.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        let dir = self.dir(id);
        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
        for sub in ["upper", "work", "rootfs"] {
            let p = dir.join(sub);
            std::fs::create_dir(&p).map_err(io("create", &p))?;
        }
        Ok(dir)
    }

    /// Locks a container's directory exclusively (blocks until free).
    pub fn lock(&self, id: &str) -> Result<ContainerLock, StoreError> {
        let dir = self.dir(id);
        let fd = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == rustix::io::Errno::NOENT {
                StoreError::NotFound(id.to_owned())
            } else {
                io("open", &dir)(e.into())
            }
        })?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .map_err(|e| io("lock", &dir)(e.into()))?;
        Ok(ContainerLock { _fd: fd })
    }

    /// Locks a container's directory if nobody holds it; None if it is locked.
    pub fn try_lock(&self, id: &str) -> Result<Option<ContainerLock>, StoreError> {
        let dir = self.dir(id);
        let fd = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == rustix::io::Errno::NOENT {
                StoreError::NotFound(id.to_owned())
            } else {
                io("open", &dir)(e.into())
            }
        })?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(ContainerLock { _fd: fd })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(io("lock", &dir)(e.into())),
        }
    }

    /// Whether the owner `id` of a name was left by a creation that died: its directory is gone,
    /// or it has no state file and no creator holds its lock.
    fn owner_is_stale(&self, id: &str) -> bool {
        if !self.dir(id).exists() {
            return true;
        }
        match self.try_lock(id) {
            Ok(Some(_lock)) => !self.dir(id).join("state.json").exists(),
            Ok(None) => false,
            Err(StoreError::NotFound(_)) => true,
            Err(_) => false,
        }
    }

    /// Writes `config.json` of a container being created (not yet visible: no rename needed).
    pub fn write_new_config(&self, rec: &ContainerRecord, durable: bool) -> Result<(), StoreError> {
        let path = self.dir(&rec.id).join("config.json");
        let data = serde_json::to_vec(rec).map_err(|source| StoreError::Parse {
            path: path.clone(),
            source,
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("create", &path))?;
        f.write_all(&data).map_err(io("write", &path))?;
        if durable {
            f.sync_all().map_err(io("fsync", &path))?;
        }
        Ok(())
    }

    /// Writes `config.json`.
    pub fn write_config(&self, rec: &ContainerRecord, durable: bool) -> Result<(), StoreError> {
        write_json(&self.dir(&rec.id).join("config.json"), rec, durable)
    }

    /// Reads `config.json`.
    pub fn read_config(&self, id: &str) -> Result<ContainerRecord, StoreError> {
        read_json(id, self.dir(id).join("config.json"))
    }

    /// Writes `state.json` (call with the container locked).
    pub fn write_state(&self, id: &str, st: &State, durable: bool) -> Result<(), StoreError> {
        write_json(&self.dir(id).join("state.json"), st, durable)
    }

    /// Reads `state.json` as recorded (no liveness check).
    pub fn read_state(&self, id: &str) -> Result<State, StoreError> {
        read_json(id, self.dir(id).join("state.json"))
    }

    /// Image ids that container directories name in their `config.json`, creations in progress
    /// (no `state.json` yet) included, so that a prune never takes an image a container is being
    /// made from. Only the `Image` field is read: a record written by another version still pins
    /// its image. Directories without a readable `Image` are skipped.
    pub fn image_ids(&self) -> Result<std::collections::HashSet<berth_oci::Digest>, StoreError> {
        #[derive(serde::Deserialize)]
        struct ImageOnly {
            #[serde(rename = "Image")]
            image: String,
        }
        let dir = self.root.join("containers");
        let mut used = std::collections::HashSet::new();
        for e in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let e = e.map_err(io("list", &dir))?;
            let Ok(data) = std::fs::read(e.path().join("config.json")) else {
                continue; // no record yet, or removed while we listed
            };
            if let Ok(rec) = serde_json::from_slice::<ImageOnly>(&data)
                && let Ok(d) = rec.image.parse()
            {
                used.insert(d);
            }
        }
        Ok(used)
    }

    /// Ids of all containers with a state file (complete creations).
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("containers");
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let e = e.map_err(io("list", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && e.path().join("state.json").exists() {
                ids.push(name);
            }
        }
        Ok(ids)
    }

    /// Removes what creations or removals killed half-way left: container directories without a
    /// state file that nobody holds locked and that are older than a few seconds (a creation in
    /// progress locks its directory right after making it). Returns how many were removed.
    pub fn sweep(&self) -> usize {
        self.sweep_trash(std::time::Duration::from_secs(10));
        let dir = self.root.join("containers");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if id.len() != 64 || path.join("state.json").exists() {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(10));
            if !old {
                continue;
            }
            if let Ok(Some(_lock)) = self.try_lock(&id)
                && !path.join("state.json").exists()
                && std::fs::remove_dir_all(&path).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// The id owning `name`, if any.
    pub fn name_owner(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.root.join("names").join(name)).ok()?;
        Some(target.to_string_lossy().into_owned())
    }

    /// Reserves `name` for `id` (call with `id`'s directory locked); fails with `NameInUse` if
    /// another container has it. A name left by a creation killed half-way is taken over.
    pub fn reserve_name(&self, name: &str, id: &str) -> Result<(), StoreError> {
        let target = self.root.join("names").join(name);
        match std::os::unix::fs::symlink(id, &target) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("link", &target)(e)),
        }
        let in_use = |id: String| StoreError::NameInUse {
            name: name.to_owned(),
            id,
        };
        let owner = self.name_owner(name).unwrap_or_default();
        if !self.owner_is_stale(&owner) {
            return Err(in_use(owner));
        }
        // Take over under the names lock, re-checking that the same stale owner still holds it,
        // so two takers cannot remove each other's fresh links.
        let names = self.root.join("names");
        let fd = rustix::fs::open(
            &names,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("open", &names)(e.into()))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .map_err(|e| io("lock", &names)(e.into()))?;
        let now = self.name_owner(name).unwrap_or_default();
        if now == owner && self.owner_is_stale(&owner) {
            let _ = std::fs::remove_file(&target);
        }
        match std::os::unix::fs::symlink(id, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(in_use(self.name_owner(name).unwrap_or_default()))
            }
            Err(e) => Err(io("link", &target)(e)),
        }
    }

    /// Releases `name` if `id` owns it.
    pub fn release_name(&self, name: &str, id: &str) -> Result<(), StoreError> {
        if self.name_owner(name).as_deref() == Some(id) {
            let p = self.root.join("names").join(name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &p)(e)),
            }
        }
        Ok(())
    }

    /// Resolves a full id, a name, or a unique id prefix (Docker's order) to a full id.
    pub fn resolve(&self, what: &str) -> Result<String, StoreError> {
        let what = what.strip_prefix('/').unwrap_or(what);
        if what.is_empty() {
            return Err(StoreError::NotFound(what.to_owned()));
        }
        if what.len() == 64 && self.dir(what).join("state.json").exists() {
            return Ok(what.to_owned());
        }
        if !what.contains('/')
            && !what.starts_with('.')
            && let Some(id) = self.name_owner(what)
            && self.dir(&id).join("state.json").exists()
        {
            return Ok(id);
        }
        if what.bytes().all(|b| b.is_ascii_hexdigit()) {
            let lower = what.to_ascii_lowercase();
            let matches: Vec<String> = self
                .ids()?
                .into_iter()
                .filter(|id| id.starts_with(&lower))
                .collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next().unwrap_or_default()),
                0 => {}
                _ => return Err(StoreError::Ambiguous(what.to_owned())),
            }
        }
        Err(StoreError::NotFound(what.to_owned()))
    }

    /// `ROOT/trash`: directories of removed containers waiting to be deleted.
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// Removes a container from view in one rename: its directory moves to `ROOT/trash/<id>`, to be
    /// deleted later (see [`Containers::sweep_trash`]). Returns the new path, or None if there was
    /// nothing to move. If the rename is not possible the directory is deleted in place.
    pub fn move_to_trash(&self, id: &str) -> Result<Option<PathBuf>, StoreError> {
        let dir = self.dir(id);
        let trash = self.trash_dir();
        let to = trash.join(id);
        let mut r = std::fs::rename(&dir, &to);
        if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::NotFound) && dir.exists() {
            // The trash directory itself is missing (first removal under this root).
            match std::fs::create_dir(&trash) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &trash)(e)),
            }
            r = std::fs::rename(&dir, &to);
        }
        match r {
            Ok(()) => Ok(Some(to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => Ok(None),
            Err(_) => self.remove_dir(id).map(|()| None),
        }
    }

    /// Deletes trash entries older than `min_age` (their cleaner died or was never started);
    /// younger ones may still be in a cleaner's hands. Returns how many were deleted.
    pub fn sweep_trash(&self, min_age: std::time::Duration) -> usize {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(self.trash_dir()) else {
            return 0;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut removed = 0;
        for e in rd.flatten() {
            // A rename sets the moved directory's ctime: that is when it entered the trash.
            let old = e
                .metadata()
                .is_ok_and(|m| now.saturating_sub(m.ctime()) >= min_age.as_secs() as i64);
            if old && std::fs::remove_dir_all(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes a container's directory (state file first, so a half-removed container is invisible).
    pub fn remove_dir(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.dir(id);
        match std::fs::remove_file(dir.join("state.json")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &dir)(e)),
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &dir)(e)),
        }
    }
}

/// Serialises `value` to `path` atomically (fsync'd when `durable`).
fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
    durable: bool,
) -> Result<(), StoreError> {
    let data = serde_json::to_vec(value).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &data, durable)
}

/// Reads one of container `id`'s JSON files; a missing file means no such container.
fn read_json<T: serde::de::DeserializeOwned>(id: &str, path: PathBuf) -> Result<T, StoreError> {
    let data = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(id.to_owned())
        } else {
            io("read", &path)(e)
        }
    })?;
    serde_json::from_slice(&data).map_err(|source| StoreError::Parse { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exclusive_and_resolution_follows_docker_order() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(t.path()).unwrap();
        let a = format!("abc{}", "0".repeat(61));
        let b = format!("abd{}", "1".repeat(61));
        for id in [&a, &b] {
            c.create_dir(id).unwrap();
            c.write_state(id, &State::created(), false).unwrap();
        }
        c.reserve_name("web", &a).unwrap();
        assert!(
            matches!(c.reserve_name("web", &b), Err(StoreError::NameInUse { id, .. }) if id == a)
        );
        assert_eq!(c.resolve("web").unwrap(), a);
        assert_eq!(c.resolve("/web").unwrap(), a);
        assert_eq!(c.resolve(&a).unwrap(), a);
        assert_eq!(c.resolve("abd").unwrap(), b);
        assert!(matches!(c.resolve("ab"), Err(StoreError::Ambiguous(_))));
        assert!(matches!(c.resolve("nope"), Err(StoreError::NotFound(_))));
        c.release_name("web", &b).unwrap();
        assert_eq!(
            c.resolve("web").unwrap(),
            a,
            "only the owner releases a name"
        );
        c.release_name("web", &a).unwrap();
        c.reserve_name("web", &b).unwrap();
        c.remove_dir(&a).unwrap();
        assert_eq!(c.ids().unwrap(), vec![b.clone()]);
    }

    #[test]
    fn concurrent_name_reservations_have_one_winner() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(t.path()).unwrap();
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let c = c.clone();
                    s.spawn(move || {
                        // As `create` does: own directory, locked while the name is reserved.
                        let id = format!("{i:064}");
                        c.create_dir(&id).unwrap();
                        let _creating = c.lock(&id).unwrap();
                        let won = c.reserve_name("x", &id).is_ok();
                        c.write_state(&id, &State::created(), false).unwrap();
                        won as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
    }

    #[test]
    fn sweep_removes_only_old_unlocked_stateless_dirs() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(t.path()).unwrap();
        let old = |id: &str| {
            let f = std::fs::File::open(c.dir(id)).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
                .unwrap();
        };
        let (crashed, fresh, complete, locked) = (
            "1".repeat(64),
            "2".repeat(64),
            "3".repeat(64),
            "4".repeat(64),
        );
        for id in [&crashed, &fresh, &complete, &locked] {
            c.create_dir(id).unwrap();
        }
        c.write_state(&complete, &State::created(), false).unwrap();
        for id in [&crashed, &complete, &locked] {
            old(id);
        }
        let _creating = c.lock(&locked).unwrap();
        assert_eq!(c.sweep(), 1);
        assert!(!c.dir(&crashed).exists());
        assert!(c.dir(&fresh).exists() && c.dir(&complete).exists() && c.dir(&locked).exists());
    }

    #[test]
    fn trashed_containers_vanish_at_once_and_old_trash_is_swept() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(t.path()).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        for id in [&a, &b] {
            c.create_dir(id).unwrap();
            std::fs::write(c.dir(id).join("upper/file"), b"x").unwrap();
            c.write_state(id, &State::created(), false).unwrap();
        }
        let moved = c.move_to_trash(&a).unwrap().expect("moved");
        assert_eq!(moved, c.trash_dir().join(&a));
        assert!(moved.join("upper/file").exists());
        assert!(!c.dir(&a).exists());
        assert_eq!(c.ids().unwrap(), vec![b.clone()], "gone from every listing");
        assert!(matches!(c.resolve(&a), Err(StoreError::NotFound(_))));
        assert_eq!(c.move_to_trash(&a).unwrap(), None, "nothing left to move");
        // Fresh trash may be in a cleaner's hands: only old entries are swept.
        assert_eq!(c.sweep_trash(std::time::Duration::from_secs(3600)), 0);
        assert!(moved.exists());
        assert_eq!(c.sweep_trash(std::time::Duration::ZERO), 1);
        assert!(!moved.exists());
        // An entry in the way of the rename: the container is deleted in place instead.
        std::fs::create_dir_all(c.trash_dir().join(&b).join("junk")).unwrap();
        assert_eq!(c.move_to_trash(&b).unwrap(), None);
        assert!(!c.dir(&b).exists());
    }

    #[test]
    fn a_name_left_by_a_dead_creation_is_taken_over() {
        let t = tempfile::tempdir().unwrap();
        let c = Containers::open(t.path()).unwrap();
        let dead = format!("dead{}", "0".repeat(60));
        let live = format!("beef{}", "1".repeat(60));
        c.create_dir(&dead).unwrap();
        c.create_dir(&live).unwrap();
        c.reserve_name("stale", &dead).unwrap();
        {
            let _creating = c.lock(&dead).unwrap();
            assert!(
                matches!(
                    c.reserve_name("stale", &live),
                    Err(StoreError::NameInUse { .. })
                ),
                "a creator holding its lock keeps the name"
            );
        }
        c.reserve_name("stale", &live).unwrap();
        assert_eq!(c.name_owner("stale").as_deref(), Some(live.as_str()));
        // A complete container (state file present) keeps its name even when unlocked.
        c.write_state(&live, &State::created(), false).unwrap();
        assert!(matches!(
            c.reserve_name("stale", &dead),
            Err(StoreError::NameInUse { .. })
        ));
    }
}
