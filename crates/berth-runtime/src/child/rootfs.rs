//! Child side of the root filesystem: root mount, spec mounts (new mount API, attached through
//! fds resolved inside the root so a symlink in the image cannot redirect a mount to the host),
//! device nodes, `pivot_root`, then masked and read-only paths.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno as RErrno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

use super::{Fail, at, at_raw};
use crate::plan::mount::attr;
use crate::plan::{DEV_SYMLINKS, FsParam, MountPlan, MountSource, OverlayPlan, Plan};
use crate::stage::Stage;
use crate::sys;

const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;
const AT_RECURSIVE: u32 = libc::AT_RECURSIVE as u32;

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Opens `rel` (relative, inside `root`) as an `O_PATH` fd, resolving symlinks as if `root` were `/`.
fn open_in_root(root: BorrowedFd<'_>, rel: &CStr) -> Result<OwnedFd, RErrno> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        resolve_flags(),
    )
}

/// Like [`open_in_root`], creating missing directories (and the last component as an empty file
/// when `is_file`). Works on a stack copy of the path: no allocation.
pub(crate) fn ensure_in_root(
    root: BorrowedFd<'_>,
    rel: &CStr,
    is_file: bool,
) -> Result<OwnedFd, (Stage, RErrno)> {
    match open_in_root(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(RErrno::NOENT) => {}
        Err(e) => return Err((Stage::MountTarget, e)),
    }
    let bytes = rel.to_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        return Err((Stage::MountCreate, RErrno::NAMETOOLONG));
    }
    let mut parent: Option<OwnedFd> = None;
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'/')
            .map(|p| start + p)
            .unwrap_or(bytes.len());
        let last = end == bytes.len();
        buf[..end].copy_from_slice(&bytes[..end]);
        buf[end] = 0;
        let prefix = CStr::from_bytes_with_nul(&buf[..=end])
            .map_err(|_| (Stage::MountCreate, RErrno::INVAL))?;
        let opened = match open_in_root(root, prefix) {
            Ok(fd) => fd,
            Err(RErrno::NOENT) => {
                let mut nbuf = [0u8; 256];
                let name = &bytes[start..end];
                if name.len() >= nbuf.len() {
                    return Err((Stage::MountCreate, RErrno::NAMETOOLONG));
                }
                nbuf[..name.len()].copy_from_slice(name);
                let cname = CStr::from_bytes_with_nul(&nbuf[..=name.len()])
                    .map_err(|_| (Stage::MountCreate, RErrno::INVAL))?;
                let dir = parent.as_ref().map(|p| p.as_fd()).unwrap_or(root);
                if last && is_file {
                    let r = rustix::fs::openat(
                        dir,
                        cname,
                        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    );
                    match r {
                        Ok(_) | Err(RErrno::EXIST) => {}
                        Err(e) => return Err((Stage::MountCreate, e)),
                    }
                } else {
                    match rustix::fs::mkdirat(dir, cname, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(RErrno::EXIST) => {}
                        Err(e) => return Err((Stage::MountCreate, e)),
                    }
                }
                open_in_root(root, prefix).map_err(|e| (Stage::MountCreate, e))?
            }
            Err(e) => return Err((Stage::MountTarget, e)),
        };
        parent = Some(opened);
        start = end + 1;
    }
    parent.ok_or((Stage::MountTarget, RErrno::INVAL))
}

/// Reads the fs_context log after an `fsconfig` failure ("e overlay: ..."), into `buf`.
fn fs_message<'b>(fs: BorrowedFd<'_>, buf: &'b mut [u8; 112]) -> &'b [u8] {
    match rustix::io::read(fs, &mut buf[..]) {
        Ok(n) => &buf[..n],
        Err(_) => &buf[..0],
    }
}

fn fs_fail(stage: Stage, index: usize, fs: BorrowedFd<'_>) -> impl Fn(RErrno) -> Fail + '_ {
    move |e| {
        let mut buf = [0u8; 112];
        Fail::new(stage, index, e.raw_os_error()).with_msg(fs_message(fs, &mut buf))
    }
}

fn new_fs(
    fstype: &CStr,
    source: &CStr,
    params: &[FsParam],
    attrs: u64,
    index: usize,
) -> Result<OwnedFd, Fail> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(at(Stage::MountConfig, index))?;
    let f = fs_fail(Stage::MountConfig, index, fs.as_fd());
    rustix::mount::fsconfig_set_string(&fs, c"source", source).map_err(&f)?;
    for p in params {
        match &p.value {
            Some(v) => rustix::mount::fsconfig_set_string(&fs, p.key.as_c_str(), v.as_c_str())
                .map_err(&f)?,
            None => rustix::mount::fsconfig_set_flag(&fs, p.key.as_c_str()).map_err(&f)?,
        }
    }
    rustix::mount::fsconfig_create(&fs).map_err(&f)?;
    rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::from_bits_retain(attrs as u32),
    )
    .map_err(&f)
}

/// Builds the detached mount for `m` (not yet attached anywhere).
fn detached_mount(m: &MountPlan, index: usize) -> Result<OwnedFd, Fail> {
    match &m.source {
        MountSource::Fs {
            fstype,
            source,
            params,
        } => new_fs(fstype, source, params, m.attr_set, index),
        MountSource::Bind {
            premade: Some(t), ..
        } => rustix::io::fcntl_dupfd_cloexec(t, 0).map_err(at(Stage::MountConfig, index)),
        MountSource::Bind {
            source, recursive, ..
        } => {
            let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
            if *recursive {
                flags |= OpenTreeFlags::AT_RECURSIVE;
            }
            let t = rustix::mount::open_tree(CWD, source.as_c_str(), flags)
                .map_err(at(Stage::MountConfig, index))?;
            if m.attr_set | m.attr_clr != 0 {
                let fl = AT_EMPTY_PATH | if *recursive { AT_RECURSIVE } else { 0 };
                sys::mount_setattr(t.as_raw_fd(), c"", fl, m.attr_set, m.attr_clr, 0)
                    .map_err(at_raw(Stage::MountAttr, index))?;
            }
            Ok(t)
        }
        MountSource::CgroupRoot { subdirs, symlinks } => {
            let rw = m.attr_set & !attr::RDONLY;
            let t = new_fs(
                c"tmpfs",
                c"tmpfs",
                &[FsParam {
                    key: c"mode".into(),
                    value: Some(c"755".into()),
                }][..],
                rw,
                index,
            )?;
            for d in subdirs {
                rustix::fs::mkdirat(&t, d.as_c_str(), Mode::from_raw_mode(0o755))
                    .map_err(at(Stage::MountConfig, index))?;
            }
            for (target, name) in symlinks {
                rustix::fs::symlinkat(target.as_c_str(), &t, name.as_c_str())
                    .map_err(at(Stage::MountConfig, index))?;
            }
            if m.attr_set & attr::RDONLY != 0 {
                sys::mount_setattr(t.as_raw_fd(), c"", AT_EMPTY_PATH, attr::RDONLY, 0, 0)
                    .map_err(at_raw(Stage::MountAttr, index))?;
            }
            Ok(t)
        }
    }
}

fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), RErrno> {
    rustix::mount::move_mount(
        mnt,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// For a child in a user namespace: `root.path` opened (`O_PATH`) while our uid is still the host's
/// root, which owns the directories on the way; once we are the namespace's root (an unprivileged
/// host uid) a `0700` state directory would refuse the walk.
pub(crate) fn open_root(plan: &Plan<'_>) -> Result<Option<OwnedFd>, Fail> {
    if plan.userns.is_none() {
        return Ok(None);
    }
    rustix::fs::open(
        plan.root.as_c_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(Some)
    .map_err(at(Stage::RootMount, 0))
}

/// Everything before `pivot_root`, then `pivot_root` itself.
/// `console` is a detached clone of the pty slave's mount, made by the parent (a mount of another
/// mount namespace cannot be cloned from inside the child's); `root_dir` is from [`open_root`].
pub(crate) fn setup(
    plan: &Plan<'_>,
    console: Option<BorrowedFd<'_>>,
    root_dir: Option<BorrowedFd<'_>>,
) -> Result<(), Fail> {
    // Our mounts are copies in the host's peer groups, and pivot_root refuses shared mounts: a
    // shared request is a slave until after pivot_root (so nothing ever propagates back to the host),
    // then becomes shared inside.
    let shared = plan.root_propagation == libc::MS_SHARED;
    let first = if shared {
        libc::MS_SLAVE
    } else {
        plan.root_propagation
    };
    let prop = MountPropagationFlags::from_bits_retain(first as _) | MountPropagationFlags::REC;
    rustix::mount::mount_change(c"/", prop).map_err(at(Stage::RootPropagation, 0))?;

    // The root: an overlay built here (visible only in this mount namespace) or a bind of root.path.
    let built;
    let root_mnt = match &plan.overlay {
        Some(OverlayPlan {
            premounted: Some(m),
            ..
        }) => m.as_fd(),
        Some(o) => {
            let fs = rustix::mount::fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC)
                .map_err(at(Stage::RootMount, 0))?;
            let f = fs_fail(Stage::RootMount, 0, fs.as_fd());
            rustix::mount::fsconfig_set_string(&fs, c"source", c"overlay").map_err(&f)?;
            for l in &o.lowers {
                rustix::mount::fsconfig_set_string(&fs, c"lowerdir+", l.as_c_str()).map_err(&f)?;
            }
            rustix::mount::fsconfig_set_string(&fs, c"upperdir", o.upper.as_c_str()).map_err(&f)?;
            rustix::mount::fsconfig_set_string(&fs, c"workdir", o.work.as_c_str()).map_err(&f)?;
            rustix::mount::fsconfig_create(&fs).map_err(&f)?;
            built =
                rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
                    .map_err(&f)?;
            built.as_fd()
        }
        None => {
            built = rustix::mount::open_tree(
                CWD,
                plan.root.as_c_str(),
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_RECURSIVE,
            )
            .map_err(at(Stage::RootMount, 0))?;
            built.as_fd()
        }
    };
    let root = match root_dir {
        // In a user namespace: onto the directory the parent opened, then through the mount's own
        // fd (now attached) — the host path may not be walkable by the namespace's root.
        Some(dir) => {
            attach(root_mnt, dir).map_err(at(Stage::RootMount, 0))?;
            rustix::fs::openat(
                root_mnt,
                c".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(at(Stage::RootMount, 0))?
        }
        None => {
            rustix::mount::move_mount(
                root_mnt,
                c"",
                CWD,
                plan.root.as_c_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(at(Stage::RootMount, 0))?;
            rustix::fs::open(
                plan.root.as_c_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(at(Stage::RootMount, 0))?
        }
    };

    for (i, m) in plan.mounts.iter().enumerate() {
        let target = ensure_in_root(root.as_fd(), &m.dest, m.is_file)
            .map_err(|(s, e)| Fail::new(s, i, e.raw_os_error()))?;
        let mnt = detached_mount(m, i)?;
        attach(mnt.as_fd(), target.as_fd()).map_err(at(Stage::MountAttach, i))?;
        if let Some(p) = m.propagation
            && p != libc::MS_PRIVATE
        {
            let now =
                open_in_root(root.as_fd(), &m.dest).map_err(at(Stage::MountPropagation, i))?;
            let fl = AT_EMPTY_PATH | if m.recursive { AT_RECURSIVE } else { 0 };
            sys::mount_setattr(now.as_raw_fd(), c"", fl, 0, 0, p)
                .map_err(at_raw(Stage::MountPropagation, i))?;
        }
    }

    for (i, d) in plan.devices.iter().enumerate() {
        make_device(root.as_fd(), d).map_err(at(Stage::Device, i))?;
    }
    if plan.dev_setup {
        let dev = open_in_root(root.as_fd(), c"dev").map_err(at(Stage::DevSymlink, 0))?;
        for (i, (target, name)) in DEV_SYMLINKS.iter().enumerate() {
            match rustix::fs::symlinkat(*target, &dev, *name) {
                Ok(()) | Err(RErrno::EXIST) => {}
                Err(e) => return Err(Fail::new(Stage::DevSymlink, i, e.raw_os_error())),
            }
        }
        if let Some(console) = console {
            let target = ensure_in_root(root.as_fd(), c"dev/console", true)
                .map_err(|(_, e)| Fail::new(Stage::Console, 0, e.raw_os_error()))?;
            attach(console, target.as_fd()).map_err(at(Stage::Console, 0))?;
        }
    }

    rustix::process::fchdir(&root).map_err(at(Stage::PivotRoot, 0))?;
    rustix::process::pivot_root(c".", c".").map_err(at(Stage::PivotRoot, 0))?;
    rustix::mount::unmount(c".", UnmountFlags::DETACH).map_err(at(Stage::PivotRoot, 0))?;
    rustix::process::chdir(c"/").map_err(at(Stage::PivotRoot, 0))?;
    if shared {
        let prop = MountPropagationFlags::SHARED | MountPropagationFlags::REC;
        rustix::mount::mount_change(c"/", prop).map_err(at(Stage::RootPropagation, 0))?;
    }
    Ok(())
}

fn make_device(root: BorrowedFd<'_>, d: &crate::plan::DevicePlan) -> Result<(), RErrno> {
    let kind = FileType::from_raw_mode(d.mode);
    let perm = Mode::from_raw_mode(d.mode & 0o7777);
    // Resolve the parent directory inside the root, then create the node by name.
    let bytes = d.path.to_bytes();
    let (dir, name) = match bytes.iter().rposition(|b| *b == b'/') {
        Some(p) => (&bytes[..p], &bytes[p + 1..]),
        None => (&b"."[..], bytes),
    };
    let mut dbuf = [0u8; 4096];
    let mut nbuf = [0u8; 256];
    if dir.len() >= dbuf.len() || name.len() >= nbuf.len() {
        return Err(RErrno::NAMETOOLONG);
    }
    dbuf[..dir.len()].copy_from_slice(dir);
    nbuf[..name.len()].copy_from_slice(name);
    let dir = CStr::from_bytes_until_nul(&dbuf).map_err(|_| RErrno::INVAL)?;
    let name = CStr::from_bytes_until_nul(&nbuf).map_err(|_| RErrno::INVAL)?;
    let dirfd = ensure_in_root(root, dir, false).map_err(|(_, e)| e)?;
    match rustix::fs::mknodat(&dirfd, name, kind, perm, d.dev) {
        Ok(()) => {}
        Err(RErrno::EXIST) => return Ok(()),
        Err(RErrno::PERM) => {
            // No CAP_MKNOD (user namespace): bind the host's node over an empty file instead.
            match rustix::fs::openat(
                &dirfd,
                name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            ) {
                Ok(_) => {}
                Err(RErrno::EXIST) => {}
                Err(e) => return Err(e),
            }
            let target = rustix::fs::openat(
                &dirfd,
                name,
                OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::empty(),
            )?;
            let t = rustix::mount::open_tree(
                CWD,
                d.host_path.as_c_str(),
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )?;
            return attach(t.as_fd(), target.as_fd());
        }
        Err(e) => return Err(e),
    }
    if d.uid != 0 || d.gid != 0 {
        rustix::fs::chownat(
            &dirfd,
            name,
            Some(rustix::fs::Uid::from_raw(d.uid)),
            Some(rustix::fs::Gid::from_raw(d.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// After `pivot_root`: masked paths, read-only paths, read-only root.
pub(crate) fn protect(plan: &Plan<'_>) -> Result<(), Fail> {
    for (i, p) in plan.masked.iter().enumerate() {
        let st = match rustix::fs::statat(CWD, p.as_c_str(), AtFlags::empty()) {
            Ok(st) => st,
            Err(RErrno::NOENT) | Err(RErrno::NOTDIR) => continue,
            Err(e) => return Err(Fail::new(Stage::Masked, i, e.raw_os_error())),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            rustix::mount::mount(
                c"tmpfs",
                p.as_c_str(),
                c"tmpfs",
                MountFlags::RDONLY,
                Some(c"size=0,mode=755"),
            )
            .map_err(at(Stage::Masked, i))?;
        } else {
            rustix::mount::mount_bind(c"/dev/null", p.as_c_str()).map_err(at(Stage::Masked, i))?;
        }
    }
    for (i, p) in plan.readonly.iter().enumerate() {
        match rustix::mount::mount_bind_recursive(p.as_c_str(), p.as_c_str()) {
            Ok(()) => {}
            Err(RErrno::NOENT) => continue,
            Err(e) => return Err(Fail::new(Stage::Readonly, i, e.raw_os_error())),
        }
        sys::mount_setattr(
            libc::AT_FDCWD,
            p.as_c_str(),
            AT_RECURSIVE,
            attr::RDONLY,
            0,
            0,
        )
        .map_err(at_raw(Stage::Readonly, i))?;
    }
    if plan.root_readonly {
        sys::mount_setattr(libc::AT_FDCWD, c"/", 0, attr::RDONLY, 0, 0)
            .map_err(at_raw(Stage::ReadonlyRoot, 0))?;
    }
    Ok(())
}
