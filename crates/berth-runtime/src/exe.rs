//! The berth binary as a container may see it. A process that `exec` forks into a running container
//! is a fork of the caller, so until its `execve` its `/proc/<pid>/exe` is the caller's binary. A
//! container root that can read it (`--cap-add SYS_PTRACE` defeats non-dumpability) would get a
//! handle on the host's berth binary: executable, and writable once no berth process runs it
//! (CVE-2019-5736). [`run_from_sealed_copy`] re-executes the caller first from a view of itself that
//! nobody can change: a detached read-only overlay whose only layer is the binary's directory (no copy,
//! as runc ≥ 1.2 does), or where that cannot be mounted a sealed in-memory copy.

use std::ffi::{CString, c_char};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{MemfdFlags, OFlags, SealFlags};

use crate::error::Error;

/// `MFD_EXEC` (kernel 6.3+): say explicitly that this memfd is to be executed, so a host with
/// `vm.memfd_noexec = 1` does not seal it non-executable.
const MFD_EXEC: u32 = 0x10;

/// Seals that make the copy immutable: no write, no resize, no further change of seals.
fn seals() -> SealFlags {
    SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
}

/// Whether `fd` is a memfd carrying [`seals`].
fn is_sealed(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(seals()))
}

/// `OVERLAYFS_SUPER_MAGIC` (linux/magic.h).
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Whether `fd` is a file of a read-only overlay (what [`read_only_view`] makes; without an upper
/// layer an overlay cannot be written whatever its mount flags say).
fn is_read_only_overlay(fd: BorrowedFd<'_>) -> bool {
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    let overlay = rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type as i64 == OVERLAYFS_SUPER_MAGIC);
    overlay
        && rustix::fs::fstatvfs(fd)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Whether the running binary is already an unchangeable view (a sealed copy or a read-only overlay).
pub fn running_sealed() -> bool {
    rustix::fs::open(
        c"/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .is_ok_and(|fd| is_sealed(fd.as_fd()) || is_read_only_overlay(fd.as_fd()))
}

/// The running binary seen through a detached, read-only overlay whose only layer is its directory:
/// the same pages, no copy, and no way to write through it (an overlay without an upper layer is
/// read-only, and the mount is attached nowhere a container could reach). `None` when it cannot be
/// had (no overlayfs, no privilege, the binary was replaced on disk since it started).
pub fn read_only_view() -> Option<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let (dir, name) = (exe.parent()?, exe.file_name()?);
    let running = rustix::fs::stat("/proc/self/exe").ok()?;
    let fs = rustix::mount::fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
    rustix::mount::fsconfig_set_string(&fs, c"source", c"berth-exe").ok()?;
    rustix::mount::fsconfig_set_string(&fs, c"lowerdir+", dir).ok()?;
    // An overlay without an upper layer needs two lower ones: the second, an empty detached tmpfs,
    // adds nothing.
    let empty = rustix::mount::fsopen(c"tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
    rustix::mount::fsconfig_create(&empty).ok()?;
    let empty = rustix::mount::fsmount(
        &empty,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )
    .ok()?;
    rustix::mount::fsconfig_set_fd(&fs, c"lowerdir+", empty.as_fd()).ok()?;
    rustix::mount::fsconfig_create(&fs).ok()?;
    let mnt = rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .ok()?;
    let file = rustix::fs::openat(
        &mnt,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    // The same binary, not one installed over it since we started: overlay reports the lower
    // file's inode number, size and times.
    let seen = rustix::fs::fstat(&file).ok()?;
    let same = seen.st_ino == running.st_ino
        && seen.st_size == running.st_size
        && seen.st_mtime == running.st_mtime
        && seen.st_mtime_nsec == running.st_mtime_nsec;
    same.then_some(file)
}

/// A sealed, executable in-memory copy of the running binary.
pub fn sealed_copy() -> Result<OwnedFd, Error> {
    let sys = |what: &str| {
        let what = what.to_owned();
        move |e: rustix::io::Errno| Error::sys(what.clone(), e.raw_os_error())
    };
    let src = rustix::fs::open(
        c"/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(sys("opening /proc/self/exe"))?;
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let mfd = rustix::fs::memfd_create(c"berth", base | MemfdFlags::from_bits_retain(MFD_EXEC))
        .or_else(|e| match e {
            // Kernels before 6.3 know no MFD_EXEC; their memfds are executable anyway.
            rustix::io::Errno::INVAL => rustix::fs::memfd_create(c"berth", base),
            e => Err(e),
        })
        .map_err(sys("creating the sealed copy of berth"))?;
    let size = rustix::fs::fstat(&src)
        .map_err(sys("inspecting /proc/self/exe"))?
        .st_size as u64;
    let mut done = 0u64;
    while done < size {
        // In the kernel, page cache to shmem: the binary is never copied through user space.
        let n = rustix::fs::sendfile(&mfd, &src, None, (size - done) as usize)
            .map_err(sys("copying berth into its sealed copy"))?;
        if n == 0 {
            return Err(Error::sys(
                "copying berth into its sealed copy: the binary shrank while it was read",
                libc::EIO,
            ));
        }
        done += n as u64;
    }
    rustix::fs::fcntl_add_seals(&mfd, seals()).map_err(sys("sealing the copy of berth"))?;
    Ok(mfd)
}

/// Unless the running binary is already an unchangeable view, replaces the process with one of
/// itself ([`read_only_view`], else [`sealed_copy`]), same arguments and environment: returns only on error, or at once when already sealed.
/// Call it first thing in `main` (single-threaded, nothing open that matters) for commands that
/// put berth's own processes in view of a container.
pub fn run_from_sealed_copy() -> Result<(), Error> {
    if running_sealed() {
        return Ok(());
    }
    let copy = match read_only_view() {
        Some(view) => view,
        None => sealed_copy()?,
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Error::sys(
                "re-executing berth: an argument holds a NUL byte",
                libc::EINVAL,
            )
        })?;
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    unsafe extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: argv is a NULL-terminated array of pointers into `args`, alive across the call;
    // `environ` is libc's own NULL-terminated environment; the empty path with AT_EMPTY_PATH
    // executes the memfd itself. execveat returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            copy.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            environ,
            libc::AT_EMPTY_PATH,
        )
    };
    Err(Error::sys(
        "re-executing berth from its read-only view",
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    fn running_binary() -> Vec<u8> {
        std::fs::read("/proc/self/exe").unwrap()
    }

    fn contents(fd: &OwnedFd) -> Vec<u8> {
        // A duplicate shares the offset, which the copy left at the end.
        let mut f = std::fs::File::from(fd.try_clone().unwrap());
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn the_test_binary_is_not_a_sealed_view() {
        assert!(!running_sealed());
    }

    #[test]
    fn the_read_only_view_is_the_running_binary_and_refuses_writing() {
        // Mounting needs root (as the rest of the runtime's tests); an unprivileged run has no view.
        if !rustix::process::geteuid().is_root() {
            assert!(read_only_view().is_none());
            return;
        }
        let view = read_only_view().expect("a read-only overlay view of the test binary");
        assert!(is_read_only_overlay(view.as_fd()));
        assert!(
            contents(&view) == running_binary(),
            "the view shows other bytes"
        );
        let reopen = format!("/proc/self/fd/{}", view.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&reopen)
            .expect_err("the view opened for writing");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    }

    #[test]
    fn the_sealed_copy_is_the_running_binary_and_refuses_writing() {
        let copy = sealed_copy().unwrap();
        assert!(is_sealed(copy.as_fd()));
        assert!(
            contents(&copy) == running_binary(),
            "the copy holds other bytes"
        );
        let err = rustix::io::pwrite(&copy, b"x", 0).expect_err("the sealed copy took a write");
        assert_eq!(err, rustix::io::Errno::PERM);
        let err = rustix::fs::ftruncate(&copy, 0).expect_err("the sealed copy shrank");
        assert_eq!(err, rustix::io::Errno::PERM);
    }
}
