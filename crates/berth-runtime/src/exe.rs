//! The berth binary as a container may see it. A process that `exec` forks into a running container
//! is a fork of the caller, so until its `execve` its `/proc/<pid>/exe` is the caller's binary. A
//! container root that can read it (`--cap-add SYS_PTRACE` defeats non-dumpability) would get a
//! handle on the host's berth binary: executable, and writable once no berth process runs it
//! (CVE-2019-5736). [`run_from_sealed_copy`] re-executes the caller from a sealed in-memory copy
//! first, so the only binary ever in view is one nobody can change.

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

/// Whether the running binary is already a sealed copy.
pub fn running_sealed() -> bool {
    rustix::fs::open(
        c"/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .is_ok_and(|fd| is_sealed(fd.as_fd()))
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

/// Unless the running binary is already a sealed copy, replaces the process with a sealed copy of
/// itself, same arguments and environment: returns only on error, or at once when already sealed.
/// Call it first thing in `main` (single-threaded, nothing open that matters) for commands that
/// put berth's own processes in view of a container.
pub fn run_from_sealed_copy() -> Result<(), Error> {
    if running_sealed() {
        return Ok(());
    }
    let copy = sealed_copy()?;
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
        "re-executing berth from its sealed copy",
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    ))
}
