//! Deleting off the hot path. A removed container's directory is first renamed into
//! `ROOT/trash/` (one operation, after which no listing sees it), then deleted by a detached
//! child of this process while the command returns its result. The same child closes
//! the descriptor that kept the container's mount namespace alive, so the kernel's unmounting of
//! the container's tree happens there too. A cleaner killed half-way leaves an entry that
//! [`crate::store::Containers::sweep_trash`] removes later; the namespace goes with the cleaner's
//! descriptors whenever it dies.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Deletes `dir` (if any) and closes `mnt_ns` (if any) without making the caller wait: in a forked
/// child when this process is single-threaded, inline otherwise (a multi-threaded process must not
/// fork and then allocate). Failures only leave trash for the next sweep.
pub(crate) fn release(dir: Option<PathBuf>, mnt_ns: Option<OwnedFd>) {
    if dir.is_none() && mnt_ns.is_none() {
        return;
    }
    if single_threaded()
        && let Some(gate) = fork_cleaner(dir.as_ref(), mnt_ns.as_ref())
    {
        // Our copy of the namespace descriptor closes first, then the gate: the cleaner, waiting
        // for the gate's EOF, then holds the last reference.
        drop(mnt_ns);
        drop(gate);
        return;
    }
    drop(mnt_ns);
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Whether this process has one thread (field 20 of `/proc/self/stat`).
fn single_threaded() -> bool {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    // Fields resume at 3 (state) after the command name; num_threads is field 20.
    stat[close + 2..].split(' ').nth(17) == Some("1")
}

/// Forks the cleaner; returns the write end of its gate if it runs (it owns the work from then
/// on), None if it could not be started.
fn fork_cleaner(dir: Option<&PathBuf>, mnt_ns: Option<&OwnedFd>) -> Option<OwnedFd> {
    // The cleaner must hold the last reference to the namespace: it waits for EOF on this pipe,
    // which comes once the parent has closed its own copy of the namespace descriptor.
    let (gate_r, gate_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
    // SAFETY: fork in a single-threaded process (checked by the caller); the child only runs
    // `cleaner`, which ends with _exit and never returns into the caller's frames.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return None;
    }
    if pid == 0 {
        cleaner(dir, mnt_ns, gate_r, gate_w);
    }
    Some(gate_w)
}

/// The body of the forked cleaner; never returns.
fn cleaner(dir: Option<&PathBuf>, mnt_ns: Option<&OwnedFd>, gate_r: OwnedFd, gate_w: OwnedFd) -> ! {
    drop(gate_w);
    // SAFETY: plain syscalls on this (single-threaded, freshly forked) process: a session of its
    // own and stdio on /dev/null, so that whoever reads our parent's output sees EOF when the parent
    // exits. The cleaner keeps its normal priority on purpose: the unmounting holds the kernel's
    // global mount lock and the deletion holds directory locks and journal handles, which other
    // starts wait for; niced, it would be preempted while holding them (priority inversion: with
    // nice 19 the in-batch `spawn` phase of 10 parallel runs grew to ~27 ms median).
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    // Every other inherited descriptor (pidfds, locks, the parent's pipes) closes now.
    let keep: Vec<i32> = [Some(gate_r.as_raw_fd()), mnt_ns.map(|f| f.as_raw_fd())]
        .into_iter()
        .flatten()
        .collect();
    close_all_but(&keep);
    let mut b = [0u8; 1];
    loop {
        match rustix::io::read(&gate_r, &mut b) {
            Ok(0) => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    if let Some(ns) = mnt_ns {
        // SAFETY: closing a descriptor this process owns and never uses again (the OwnedFd lives
        // in the parent's frame, which this child never returns to).
        unsafe { libc::close(ns.as_raw_fd()) };
    }
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    // SAFETY: ends the child without running the parent's destructors or atexit handlers.
    unsafe { libc::_exit(0) }
}

/// Closes every descriptor from 3 up except those in `keep`.
fn close_all_but(keep: &[i32]) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut from: u32 = 3;
    for k in keep {
        let k = k as u32;
        if k >= from {
            if k > from {
                // SAFETY: close_range on descriptor numbers of this process; none is used again.
                unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) };
            }
            from = k + 1;
        }
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_when_threads_share_the_process() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("victim");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), b"x").unwrap();
        let n = std::fs::read_dir("/proc/self/task").unwrap().count();
        assert_eq!(single_threaded(), n == 1);
        release(Some(d.clone()), None);
        if n > 1 {
            assert!(!d.exists(), "deleted before returning");
        }
        release(None, None);
    }

    #[test]
    fn forked_cleaner_deletes_after_the_caller_returns() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("victim");
        for i in 0..200 {
            std::fs::create_dir_all(d.join(format!("d{i}"))).unwrap();
            std::fs::write(d.join(format!("d{i}/f")), b"x").unwrap();
        }
        // A single-threaded caller, as the CLI is: a forked copy of this test (glibc's fork keeps
        // malloc usable in the child). It reports that it was single-threaded, so `release` took
        // the fork path; the tree must then vanish after the caller has exited.
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        // SAFETY: the child calls `release` (the code under test) and _exits without unwinding.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let single = single_threaded();
            release(Some(d.clone()), None);
            let msg = format!("single={single}");
            let _ = rustix::io::write(&w, msg.as_bytes());
            // SAFETY: ends the forked test copy without running the harness's code.
            unsafe { libc::_exit(0) };
        }
        drop(w);
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut buf = [0u8; 64];
        let n = rustix::io::read(&r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"single=true");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while d.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!d.exists(), "the detached cleaner deleted the tree");
    }

    #[test]
    fn close_all_but_keeps_the_named_descriptors() {
        // Checked in a forked child (the test process's descriptors must survive): the child
        // exits 0 only if the kept pipe end still works and the other one is closed.
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let (r2, w2) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        // SAFETY: the child only makes raw syscalls (close_range, write, fcntl) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            close_all_but(&[w.as_raw_fd()]);
            // SAFETY: raw syscalls on descriptor numbers of this child, then _exit.
            unsafe {
                let closed = libc::fcntl(r2.as_raw_fd(), libc::F_GETFD) < 0;
                let ok = libc::write(w.as_raw_fd(), b"k".as_ptr().cast(), 1) == 1;
                libc::_exit(if closed && ok { 0 } else { 1 });
            }
        }
        drop((w, w2, r2));
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&r, &mut b).unwrap(), 1);
    }
}
