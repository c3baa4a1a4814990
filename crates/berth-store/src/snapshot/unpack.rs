//! Extraction of one uncompressed layer tar into a directory, confined to that directory.
//!
//! Every parent directory is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! relative to the root handle, so symlinks written by the layer (or `..` in them) can never lead
//! out; the final component is always created with an `*at()` call relative to that parent and
//! never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`). Paths are never joined as strings.
//!
//! OCI whiteouts become overlay whiteouts: `.wh.NAME` a 0:0 character device `NAME`, and
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory. A whiteout and a real
//! entry of the same name in one layer keep the real entry (a directory becomes opaque, since the
//! whiteout hid everything below it).

use super::path;
use crate::error::SnapshotError;
use crate::fsutil;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    self as rfs, AtFlags, FileType, FlockOperation, Mode, OFlags, ResolveFlags, Timespec,
    Timestamps, XattrFlags,
};
use rustix::io::Errno;
use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use tar::EntryType;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Xattrs the overlay driver interprets (redirects, metacopy, opaque); a layer must not smuggle
/// them in, only the whiteout conversion here sets the opaque one.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
const COPY_BUF: usize = 256 * 1024;
const IMPLICIT_DIR_MODE: u32 = 0o755;

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// What `extract` counted.
pub(crate) struct Counts {
    /// Tar entries applied.
    pub(crate) entries: u64,
    /// Bytes of regular file content and symlink targets (hard links counted once, as files).
    pub(crate) content_size: u64,
}

/// Extracts every entry read from `reader` under the directory `root`. `trash` is a directory on
/// the same filesystem, outside `root`, that receives directories replaced by other entries (the
/// caller deletes it). Stops at the tar end-of-archive marker; the caller reads whatever follows.
pub(crate) fn extract<R: Read>(
    root: OwnedFd,
    trash: OwnedFd,
    reader: R,
) -> Result<Counts, SnapshotError> {
    let mut archive = tar::Archive::new(reader);
    let mut x = Extractor {
        fs: Fs {
            root,
            trash,
            trashed: Cell::new(0),
            cache: RefCell::new(None),
            stale: Cell::new(false),
        },
        s: Scratch {
            raw: Vec::new(),
            path: Vec::new(),
            link: Vec::new(),
            xattrs: Vec::new(),
            buf: vec![0; COPY_BUF],
        },
        dirs: Vec::new(),
        root_times: None,
    };
    let entries = archive.entries().map_err(|source| SnapshotError::Read {
        after: None,
        source,
    })?;
    let mut count = 0u64;
    let mut content_size = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|source| SnapshotError::Read {
            after: x.last_entry(count),
            source,
        })?;
        let kind = entry.header().entry_type();
        if kind.is_file() || kind == EntryType::Continuous {
            content_size += entry.size();
        } else if kind.is_symlink() {
            content_size += entry.link_name_bytes().map_or(0, |l| l.len() as u64);
        }
        x.entry(&mut entry)?;
        count += 1;
    }
    x.finish()?;
    Ok(Counts {
        entries: count,
        content_size,
    })
}

/// The directory handles and the one-entry parent cache (layers list siblings together, so the
/// last parent is almost always the next one).
struct Fs {
    root: OwnedFd,
    trash: OwnedFd,
    trashed: Cell<u64>,
    cache: RefCell<Option<(Vec<u8>, OwnedFd)>>,
    /// Set when something was removed or moved, which may invalidate the cached parent path.
    stale: Cell<bool>,
}

/// Buffers reused across entries.
struct Scratch {
    raw: Vec<u8>,
    path: Vec<u8>,
    link: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    buf: Vec<u8>,
}

struct Extractor {
    fs: Fs,
    s: Scratch,
    /// Directories whose mtime is set at the end, after their contents exist.
    dirs: Vec<(Vec<u8>, Timestamps)>,
    root_times: Option<Timestamps>,
}

/// A resolved parent directory: the root itself or an `O_PATH` handle (with its cleaned path, so
/// it can go back into the cache).
enum Parent {
    Root,
    Dir(Vec<u8>, OwnedFd),
}

/// Why a parent directory could not be resolved.
enum ParentError {
    /// A component is a symlink whose target does not exist (inside the root).
    Dangling,
    /// Any other failure.
    Io(Errno),
}

/// What `make_room` found at a name about to be created.
enum Room {
    /// Nothing is there (any more); `was_whiteout` if a whiteout of this layer was removed.
    Free { was_whiteout: bool },
    /// A directory is there and the new entry is a directory too: keep it.
    KeepDir,
}

/// The metadata an entry carries.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    times: Timestamps,
}

/// A failure while applying an entry: what was being done, and why it failed.
type Step<T> = Result<T, (&'static str, io::Error)>;

fn step<T>(action: &'static str, r: rustix::io::Result<T>) -> Step<T> {
    r.map_err(|e| (action, io::Error::from(e)))
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl Extractor {
    fn last_entry(&self, count: u64) -> Option<String> {
        (count > 0).then(|| lossy(&self.s.raw))
    }

    fn rejected(&self, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Rejected {
            entry: lossy(&self.s.raw),
            reason: reason.into(),
        }
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), SnapshotError> {
        let kind = e.header().entry_type();
        self.s.raw.clear();
        self.s.raw.extend_from_slice(&e.path_bytes());
        // Global PAX headers and GNU volume labels describe the archive, not a file.
        if kind == EntryType::XGlobalHeader || kind.as_byte() == b'V' {
            return Ok(());
        }
        let read_err = |raw: &[u8], source| SnapshotError::Read {
            after: Some(lossy(raw)),
            source,
        };
        path::clean(&self.s.raw, &mut self.s.path).map_err(|p| self.rejected(p.reason()))?;
        let meta = self
            .meta(e)
            .map_err(|source| read_err(&self.s.raw, source))?;

        if self.s.path.is_empty() {
            if kind != EntryType::Directory {
                return Err(self.rejected("would replace the rootfs directory"));
            }
            let r = self
                .fs
                .apply_fd_meta(self.fs.root.as_fd(), &meta, &self.s.xattrs, false);
            self.root_times = Some(meta.times);
            return r.map_err(|(action, source)| self.entry_err(action, source));
        }

        let (parent_path, name) = path::split(&self.s.path);
        if name.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout();
        }
        let parent = self
            .fs
            .parent(parent_path)
            .map_err(|e| self.parent_err(e))?;
        let pfd = self.fs.fd(&parent);
        let r = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                match self
                    .fs
                    .file(pfd, name, &meta, &self.s.xattrs, e, &mut self.s.buf)
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(source)) => {
                        self.fs.release(parent);
                        return Err(read_err(&self.s.raw, source));
                    }
                    Err(e) => Err(e),
                }
            }
            EntryType::Directory => {
                let r = self.fs.dir(pfd, name, &meta, &self.s.xattrs);
                if r.is_ok() {
                    self.dirs.push((self.s.path.clone(), meta.times));
                }
                r
            }
            EntryType::Symlink => match e.link_name_bytes() {
                Some(target) if !target.is_empty() => {
                    self.fs.symlink(pfd, name, &target, &meta, &self.s.xattrs)
                }
                _ => Err((
                    "creating the symlink",
                    io::Error::new(io::ErrorKind::InvalidData, "empty target"),
                )),
            },
            EntryType::Link => {
                let target = e.link_name_bytes().unwrap_or_default();
                if let Err(p) = path::clean(&target, &mut self.s.link) {
                    let reason = match p {
                        path::PathProblem::Escapes => {
                            format!("is a hard link to {:?}, outside the rootfs", lossy(&target))
                        }
                        path::PathProblem::Nul => "has a NUL byte in its link target".to_string(),
                    };
                    self.fs.release(parent);
                    return Err(self.rejected(reason));
                }
                match self.fs.hardlink(pfd, name, &self.s.link) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(why)) => {
                        self.fs.release(parent);
                        return Err(self.rejected(format!("{why} ({:?})", lossy(&target))));
                    }
                    Err(e) => Err(e),
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let h = e.header();
                let dev = match (h.device_major(), h.device_minor()) {
                    // A fifo has no device number; some writers leave the fields blank.
                    _ if kind == EntryType::Fifo => rfs::makedev(0, 0),
                    (Ok(maj), Ok(min)) => rfs::makedev(maj.unwrap_or(0), min.unwrap_or(0)),
                    (Err(source), _) | (_, Err(source)) => {
                        self.fs.release(parent);
                        return Err(read_err(&self.s.raw, source));
                    }
                };
                self.fs.node(pfd, name, ft, dev, &meta, &self.s.xattrs)
            }
            other => {
                self.fs.release(parent);
                return Err(self.rejected(format!(
                    "has an unsupported type {:?}",
                    other.as_byte() as char
                )));
            }
        };
        self.fs.release(parent);
        r.map_err(|(action, source)| self.entry_err(action, source))
    }

    fn entry_err(&self, action: &'static str, source: io::Error) -> SnapshotError {
        SnapshotError::Entry {
            action,
            entry: lossy(&self.s.raw),
            source,
        }
    }

    fn parent_err(&self, e: ParentError) -> SnapshotError {
        match e {
            ParentError::Dangling => {
                self.rejected("has a parent that is a symlink to a missing directory")
            }
            ParentError::Io(Errno::NOTDIR) => self.rejected("has a parent that is not a directory"),
            ParentError::Io(e) => self.entry_err("resolving the parent directory of", e.into()),
        }
    }

    /// Reads mode, owner, mtime (PAX `mtime` for sub-second precision) and PAX xattrs.
    fn meta<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
        let h = e.header();
        let old = h.as_old();
        let mode = blank_is_zero(&old.mode, h.mode().map(u64::from))? as u32 & 0o7777;
        let too_big = |what| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} is not a valid 32-bit id"),
            )
        };
        // u32::MAX is chown's "leave unchanged", not an id.
        let uid = u32::try_from(blank_is_zero(&old.uid, h.uid())?)
            .ok()
            .filter(|u| *u != u32::MAX)
            .ok_or_else(|| too_big("uid"))?;
        let gid = u32::try_from(blank_is_zero(&old.gid, h.gid())?)
            .ok()
            .filter(|g| *g != u32::MAX)
            .ok_or_else(|| too_big("gid"))?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(blank_is_zero(&old.mtime, h.mtime())?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        self.s.xattrs.clear();
        if let Some(pax) = e.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    self.s
                        .xattrs
                        .push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime"
                    && let Some(t) = parse_pax_time(ext.value_bytes())
                {
                    mtime = t;
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            times: Timestamps {
                last_access: mtime,
                last_modification: mtime,
            },
        })
    }

    /// `.wh.NAME` → 0:0 char device `NAME`; `.wh..wh..opq` → opaque parent directory.
    fn whiteout(&self) -> Result<(), SnapshotError> {
        let (parent_path, name) = path::split(&self.s.path);
        if name == OPAQUE_MARKER {
            let parent = self
                .fs
                .parent(parent_path)
                .map_err(|e| self.parent_err(e))?;
            let r = step(
                "opening the directory of",
                rfs::openat(self.fs.fd(&parent), ".", dir_flags(), Mode::empty()),
            )
            .and_then(|fd| self.fs.set_opaque(fd.as_fd()));
            self.fs.release(parent);
            return r.map_err(|(action, source)| self.entry_err(action, source));
        }
        if name.starts_with(META_PREFIX) {
            // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): meaningless for overlay.
            return Ok(());
        }
        let target = &name[WHITEOUT_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err(self.rejected("is a whiteout of an invalid name"));
        }
        let parent = self
            .fs
            .parent(parent_path)
            .map_err(|e| self.parent_err(e))?;
        let r = self.fs.whiteout(self.fs.fd(&parent), target);
        self.fs.release(parent);
        r.map_err(|(action, source)| self.entry_err(action, source))
    }

    /// Sets directory mtimes, last, so creating their contents did not disturb them.
    fn finish(&self) -> Result<(), SnapshotError> {
        for (p, times) in &self.dirs {
            let fd = match rfs::openat2(
                &self.fs.root,
                p.as_slice(),
                dir_flags() | OFlags::NOFOLLOW,
                Mode::empty(),
                in_root(),
            ) {
                Ok(fd) => fd,
                // Replaced by a later entry of another type: its own times were set then.
                Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
                Err(e) => {
                    return Err(SnapshotError::Entry {
                        action: "opening",
                        entry: lossy(p),
                        source: e.into(),
                    });
                }
            };
            rfs::futimens(&fd, times).map_err(|e| SnapshotError::Entry {
                action: "setting the modification time of",
                entry: lossy(p),
                source: e.into(),
            })?;
        }
        if let Some(times) = &self.root_times {
            rfs::futimens(&self.fs.root, times).map_err(|e| SnapshotError::Entry {
                action: "setting the modification time of",
                entry: ".".into(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn path_dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// A numeric header field left blank (all NUL or spaces) reads as 0, as Go's archive/tar (and so
/// Docker and containerd) reads it; anything else must parse.
fn blank_is_zero(field: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// Parses a PAX time ("1700000000.5"); `None` if malformed, so the header's value is used.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = sec.parse().ok()?;
    if tv_sec < 0 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return (tv_sec < 0).then_some(Timespec { tv_sec, tv_nsec: 0 });
    }
    let mut tv_nsec = 0i64;
    for i in 0..9 {
        tv_nsec = tv_nsec * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    Some(Timespec { tv_sec, tv_nsec })
}

impl Fs {
    fn fd<'a>(&'a self, p: &'a Parent) -> BorrowedFd<'a> {
        match p {
            Parent::Root => self.root.as_fd(),
            Parent::Dir(_, fd) => fd.as_fd(),
        }
    }

    /// Resolves (creating missing directories, as tar does) the cleaned parent path `p`.
    fn parent(&self, p: &[u8]) -> Result<Parent, ParentError> {
        if p.is_empty() {
            return Ok(Parent::Root);
        }
        let cached = self.cache.borrow_mut().take();
        let mut buf = match cached {
            Some((cp, fd)) if !self.stale.get() && cp == p => return Ok(Parent::Dir(cp, fd)),
            Some((cp, _)) => cp,
            None => Vec::new(),
        };
        self.stale.set(false);
        let fd = match self.open_dir(p) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.create_dirs(p)?,
            Err(e) => return Err(ParentError::Io(e)),
        };
        buf.clear();
        buf.extend_from_slice(p);
        Ok(Parent::Dir(buf, fd))
    }

    /// Gives a parent back to the cache unless something was removed since it was resolved.
    fn release(&self, p: Parent) {
        if let Parent::Dir(path, fd) = p
            && !self.stale.get()
        {
            *self.cache.borrow_mut() = Some((path, fd));
        }
    }

    /// `openat2(root, p, O_PATH|O_DIRECTORY, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)`, retrying the
    /// EAGAIN the kernel returns when a concurrent rename may have raced the resolution.
    fn open_dir(&self, p: &[u8]) -> Result<OwnedFd, Errno> {
        let mut tries = 0;
        loop {
            match rfs::openat2(&self.root, p, path_dir_flags(), Mode::empty(), in_root()) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r,
            }
        }
    }

    /// Creates the missing directories of `p` one component at a time, each relative to the
    /// handle of the one above it.
    fn create_dirs(&self, p: &[u8]) -> Result<OwnedFd, ParentError> {
        let mut cur: Option<OwnedFd> = None;
        let mut start = 0;
        let ends = p
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .chain([p.len()]);
        for end in ends {
            let comp = &p[start..end];
            start = end + 1;
            match self.open_dir(&p[..end]) {
                Ok(fd) => {
                    cur = Some(fd);
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(ParentError::Io(e)),
            }
            let dfd = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            match rfs::mkdirat(dfd, comp, Mode::from_raw_mode(IMPLICIT_DIR_MODE)) {
                Ok(()) => rfs::chmodat(
                    dfd,
                    comp,
                    Mode::from_raw_mode(IMPLICIT_DIR_MODE),
                    AtFlags::empty(),
                )
                .map_err(ParentError::Io)?,
                Err(Errno::EXIST) => {
                    let st = rfs::statat(dfd, comp, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(ParentError::Io)?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                        return Err(ParentError::Dangling);
                    }
                }
                Err(e) => return Err(ParentError::Io(e)),
            }
            let fd = rfs::openat(
                dfd,
                comp,
                path_dir_flags() | OFlags::NOFOLLOW,
                Mode::empty(),
            )
            .map_err(ParentError::Io)?;
            cur = Some(fd);
        }
        cur.ok_or(ParentError::Io(Errno::NOENT))
    }

    /// Clears `name` in `parent` for a new entry, with Docker's rules: a directory over a
    /// directory is kept (and updated), anything else is removed first. Replaced directories are
    /// moved to the trash in O(1) rather than deleted here.
    fn make_room(&self, parent: BorrowedFd<'_>, name: &[u8]) -> Step<Room> {
        self.make_room_for(parent, name, false)
    }

    fn make_room_for(&self, parent: BorrowedFd<'_>, name: &[u8], new_is_dir: bool) -> Step<Room> {
        let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                return Ok(Room::Free {
                    was_whiteout: false,
                });
            }
            Err(e) => return step("inspecting what is in the way of", Err(e)),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory && new_is_dir {
            return Ok(Room::KeepDir);
        }
        // Removing or moving a path component may change what the cached parent path resolves to.
        self.stale.set(true);
        if ft == FileType::Directory {
            let n = self.trashed.get();
            self.trashed.set(n + 1);
            step(
                "moving aside the directory replaced by",
                rfs::renameat(parent, name, &self.trash, n.to_string()),
            )?;
            return Ok(Room::Free {
                was_whiteout: false,
            });
        }
        step(
            "removing what is replaced by",
            rfs::unlinkat(parent, name, AtFlags::empty()),
        )?;
        Ok(Room::Free {
            was_whiteout: ft == FileType::CharacterDevice && st.st_rdev == 0,
        })
    }

    /// A regular file: created exclusively, data copied, then owner, mode, xattrs and times via
    /// the descriptor. The inner result is a read error of the tar stream.
    fn file<R: Read>(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        e: &mut tar::Entry<'_, R>,
        buf: &mut [u8],
    ) -> Step<io::Result<()>> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match rfs::openat(parent, name, flags, mode) {
            Err(Errno::EXIST) => {
                self.make_room(parent, name)?;
                step("creating", rfs::openat(parent, name, flags, mode))?
            }
            r => step("creating", r)?,
        };
        let mut file = File::from(fd);
        let expected = e.size();
        let mut copied = 0u64;
        let mut kicked = 0u64;
        loop {
            let n = match e.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Ok(Err(err)),
            };
            file.write_all(&buf[..n]).map_err(|e| ("writing", e))?;
            copied += n as u64;
            if copied - kicked >= fsutil::WRITEBACK_EVERY {
                fsutil::start_writeback(&file, kicked, copied - kicked);
                kicked = copied;
            }
        }
        if copied != expected && e.header().entry_type() != EntryType::GNUSparse {
            return Ok(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file data ends after {copied} of {expected} bytes"),
            )));
        }
        self.apply_fd_meta(file.as_fd(), meta, xattrs, false)?;
        step(
            "setting the modification time of",
            rfs::futimens(&file, &meta.times),
        )?;
        Ok(Ok(()))
    }

    /// A directory: created, or kept if one is already there; metadata applied now, its mtime later.
    fn dir(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Step<()> {
        let mode = Mode::from_raw_mode(0o700);
        let mut opaque = false;
        match rfs::mkdirat(parent, name, mode) {
            Err(Errno::EXIST) => match self.make_room_for(parent, name, true)? {
                Room::KeepDir => {}
                Room::Free { was_whiteout } => {
                    // A whiteout and a directory of one name in one layer: the directory replaces
                    // everything below, which is what opaque means.
                    opaque = was_whiteout;
                    step("creating", rfs::mkdirat(parent, name, mode))?;
                }
            },
            r => step("creating", r)?,
        }
        let fd = step(
            "opening",
            rfs::openat(parent, name, dir_flags() | OFlags::NOFOLLOW, Mode::empty()),
        )?;
        self.apply_fd_meta(fd.as_fd(), meta, xattrs, opaque)
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs (chown clears file capabilities).
    fn apply_fd_meta(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        opaque: bool,
    ) -> Step<()> {
        let (uid, gid) = ids(meta);
        step(
            "setting the owner of",
            rfs::fchown(fd, Some(uid), Some(gid)),
        )?;
        step(
            "setting the mode of",
            rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)),
        )?;
        for (name, value) in xattrs {
            if name.starts_with(OVERLAY_XATTR_PREFIX) {
                continue;
            }
            match rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
                Ok(()) | Err(Errno::NOTSUP) => {}
                Err(e) => return step("setting extended attributes of", Err(e)),
            }
        }
        if opaque {
            self.set_opaque(fd)?;
        }
        Ok(())
    }

    fn set_opaque(&self, fd: BorrowedFd<'_>) -> Step<()> {
        step(
            "marking opaque",
            rfs::fsetxattr(fd, OPAQUE_XATTR, b"y", XattrFlags::empty()),
        )
    }

    /// A symlink: its target is stored as written and never followed here.
    fn symlink(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Step<()> {
        match rfs::symlinkat(target, parent, name) {
            Err(Errno::EXIST) => {
                self.make_room(parent, name)?;
                step("creating the symlink", rfs::symlinkat(target, parent, name))?;
            }
            r => step("creating the symlink", r)?,
        }
        let (uid, gid) = ids(meta);
        step(
            "setting the owner of",
            rfs::chownat(
                parent,
                name,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            ),
        )?;
        name_xattrs(parent, name, xattrs)?;
        step(
            "setting the modification time of",
            rfs::utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW),
        )
    }

    /// A hard link to `target` (cleaned), which must already exist in this layer and not be a
    /// directory. A symlink target is linked itself, never followed. The inner error is the
    /// reason a hostile link is refused.
    fn hardlink(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
    ) -> Step<Result<(), &'static str>> {
        if target.is_empty() {
            return Ok(Err("is a hard link to a directory"));
        }
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let tfd = match rfs::openat2(&self.root, target, flags, Mode::empty(), in_root()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => {
                return Ok(Err("is a hard link to a missing file"));
            }
            Err(e) => return step("resolving the target of", Err(e)),
        };
        let tst = step("inspecting the target of", rfs::fstat(&tfd))?;
        if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
            return Ok(Err("is a hard link to a directory"));
        }
        match rfs::linkat(&tfd, "", parent, name, AtFlags::EMPTY_PATH) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                if let Ok(st) = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    && st.st_dev == tst.st_dev
                    && st.st_ino == tst.st_ino
                {
                    return Ok(Ok(()));
                }
                self.make_room(parent, name)?;
                step(
                    "creating the hard link",
                    rfs::linkat(&tfd, "", parent, name, AtFlags::EMPTY_PATH),
                )?;
            }
            Err(e) => return step("creating the hard link", Err(e)),
        }
        Ok(Ok(()))
    }

    /// A device node or fifo.
    fn node(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        ft: FileType,
        dev: rfs::Dev,
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Step<()> {
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        match rfs::mknodat(parent, name, ft, mode, dev) {
            Err(Errno::EXIST) => {
                self.make_room(parent, name)?;
                step("creating", rfs::mknodat(parent, name, ft, mode, dev))?;
            }
            r => step("creating", r)?,
        }
        let (uid, gid) = ids(meta);
        step(
            "setting the owner of",
            rfs::chownat(
                parent,
                name,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            ),
        )?;
        // We just created this non-symlink in a directory only we write to, so following is moot.
        step(
            "setting the mode of",
            rfs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            ),
        )?;
        name_xattrs(parent, name, xattrs)?;
        step(
            "setting the modification time of",
            rfs::utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW),
        )
    }

    /// An overlay whiteout for `target`, unless this layer already has a real entry there (which
    /// hides the lower one by itself; a directory becomes opaque).
    fn whiteout(&self, parent: BorrowedFd<'_>, target: &[u8]) -> Step<()> {
        match rfs::mknodat(
            parent,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        ) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let st = step(
                    "inspecting what is whited out by",
                    rfs::statat(parent, target, AtFlags::SYMLINK_NOFOLLOW),
                )?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let fd = step(
                        "opening",
                        rfs::openat(
                            parent,
                            target,
                            dir_flags() | OFlags::NOFOLLOW,
                            Mode::empty(),
                        ),
                    )?;
                    self.set_opaque(fd.as_fd())?;
                }
                Ok(())
            }
            Err(e) => step("creating the whiteout", Err(e)),
        }
    }
}

/// Xattrs of an entry that cannot be opened for `fsetxattr` (symlink, device node, fifo), set by
/// name relative to its parent without following it.
fn name_xattrs(parent: BorrowedFd<'_>, name: &[u8], xattrs: &[(Vec<u8>, Vec<u8>)]) -> Step<()> {
    for (key, value) in xattrs {
        if key.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        match setxattrat_nofollow(parent, name, key, value) {
            // ENOSYS: a kernel before 6.13 has no way to do this without a path string.
            Ok(()) | Err(Errno::NOTSUP | Errno::NOSYS) => {}
            Err(e) => return step("setting extended attributes of", Err(e)),
        }
    }
    Ok(())
}

/// `setxattrat(parent, name, AT_SYMLINK_NOFOLLOW, key, {value}, sizeof)` (Linux 6.13; the same
/// number on every architecture). Neither libc nor rustix wraps it yet.
fn setxattrat_nofollow(
    parent: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> rustix::io::Result<()> {
    const SYS_SETXATTRAT: libc::c_long = 463;
    #[repr(C)]
    struct XattrArgs {
        value: u64,
        size: u32,
        flags: u32,
    }
    let name = CString::new(name).map_err(|_| Errno::INVAL)?;
    let key = CString::new(key).map_err(|_| Errno::INVAL)?;
    let size = u32::try_from(value.len()).map_err(|_| Errno::TOOBIG)?;
    let args = XattrArgs {
        value: value.as_ptr() as u64,
        size,
        flags: 0,
    };
    // SAFETY: every pointer refers to a live, NUL-terminated string or to `args`/`value`, which
    // outlive the call; the kernel reads `size_of::<XattrArgs>()` bytes at `&args` and `size`
    // bytes at `value` and writes nothing; `parent` is an open descriptor borrowed for the call.
    let r = unsafe {
        libc::syscall(
            SYS_SETXATTRAT,
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            key.as_ptr(),
            &args as *const XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        )
    };
    if r < 0 {
        let raw = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return Err(Errno::from_raw_os_error(raw));
    }
    Ok(())
}

fn ids(meta: &Meta) -> (rfs::Uid, rfs::Gid) {
    (rfs::Uid::from_raw(meta.uid), rfs::Gid::from_raw(meta.gid))
}

/// Takes an exclusive non-blocking flock on `fd`; `false` if another process holds it.
pub(crate) fn try_lock(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match rfs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"12.5").map(|t| (t.tv_sec, t.tv_nsec)),
            Some((12, 500_000_000))
        );
        assert_eq!(
            parse_pax_time(b"7").map(|t| (t.tv_sec, t.tv_nsec)),
            Some((7, 0))
        );
        assert_eq!(
            parse_pax_time(b"1.1234567899").map(|t| t.tv_nsec),
            Some(123_456_789)
        );
        assert!(parse_pax_time(b"x").is_none());
    }
}
