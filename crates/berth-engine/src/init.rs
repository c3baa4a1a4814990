//! `--init`: a minimal init as the container's pid 1 — starts the command as pid 2, forwards the
//! signals it receives to it, reaps every orphan, and exits with the command's Docker exit code
//! (128 + signal when it was killed). It is this very binary, bind-mounted read-only into the
//! container's `/dev` (a private tmpfs, so the image is untouched) together with the dynamic
//! loader and the libraries it is linked against, and started through that loader, so it runs on
//! any image.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// Where the init's files are mounted inside the container.
pub const INIT_DIR: &str = "/dev/.berth-init";

/// The host files the init needs: this executable, and the loader and libraries mapped into this
/// process (found in /proc/self/maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFiles {
    /// The berth executable.
    pub exe: PathBuf,
    /// The dynamic loader (None for a static build).
    pub loader: Option<PathBuf>,
    /// Shared libraries.
    pub libs: Vec<PathBuf>,
}

impl InitFiles {
    /// Finds the files of this running binary.
    pub fn of_this_process() -> std::io::Result<InitFiles> {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut loader = None;
        let mut libs: Vec<PathBuf> = Vec::new();
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            let p = Path::new(path);
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !path.starts_with('/') || p == exe || !name.contains(".so") {
                continue;
            }
            if name.starts_with("ld-linux")
                || name.starts_with("ld64")
                || name.starts_with("ld-musl")
            {
                loader = Some(p.to_owned());
            } else if !libs.iter().any(|l| l == p) {
                libs.push(p.to_owned());
            }
        }
        Ok(InitFiles { exe, loader, libs })
    }

    /// (host file, container path) pairs to bind-mount read-only.
    pub fn mounts(&self) -> Vec<(PathBuf, String)> {
        let inside = |p: &Path| {
            format!(
                "{INIT_DIR}/{}",
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            )
        };
        let mut m = vec![(self.exe.clone(), format!("{INIT_DIR}/berth"))];
        if let Some(l) = &self.loader {
            m.push((l.clone(), inside(l)));
        }
        for l in &self.libs {
            m.push((l.clone(), inside(l)));
        }
        m
    }

    /// The argv that runs `command` under the init inside the container.
    pub fn argv(&self, command: &[String]) -> Vec<String> {
        let mut argv = Vec::with_capacity(command.len() + 6);
        if let Some(l) = &self.loader {
            let name = l
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            argv.push(format!("{INIT_DIR}/{name}"));
            argv.push("--library-path".to_owned());
            argv.push(INIT_DIR.to_owned());
        }
        argv.push(format!("{INIT_DIR}/berth"));
        argv.push("__init".to_owned());
        argv.push("--".to_owned());
        argv.extend(command.iter().cloned());
        argv
    }
}

/// Signals the init does not take over: they are faults of its own, or cannot be caught.
const NOT_FORWARDED: [Signal; 8] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Runs the init: returns the exit code for pid 1.
pub fn run(argv: &[String]) -> i32 {
    let Some((cmd, args)) = argv.split_first() else {
        eprintln!("berth-init: no command");
        return 125;
    };
    // Started through the loader, pid 1 would show as "ld-linux…" in ps.
    let _ = rustix::thread::set_name(c"berth-init");
    let mut set = SigSet::all();
    for s in NOT_FORWARDED {
        set.remove(s);
    }
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("berth-init: blocking signals: {e}");
        return 125;
    }
    let mut command = std::process::Command::new(cmd);
    command.args(args);
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions (setpgid,
    // isatty, tcsetpgrp, getpid, pthread_sigmask) on this process's own state.
    unsafe {
        command.pre_exec(|| {
            // Its own process group, in the foreground of the terminal if there is one (our
            // blocked SIGTTOU lets tcsetpgrp through), as tini does.
            libc::setpgid(0, 0);
            if libc::isatty(0) == 1 {
                libc::tcsetpgrp(0, libc::getpid());
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("berth-init: exec {cmd:?}: {e}");
            return match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 125,
            };
        }
    };
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        // Reap everything that exited: our command and any orphan re-parented to us.
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_files_of_this_test_binary() {
        let f = InitFiles::of_this_process().unwrap();
        assert!(f.exe.is_absolute());
        assert!(
            f.libs
                .iter()
                .any(|l| l.to_string_lossy().contains("libc.so")),
            "{f:?}"
        );
        let argv = f.argv(&["sh".into(), "-c".into(), "x".into()]);
        assert_eq!(&argv[argv.len() - 5..], &["__init", "--", "sh", "-c", "x"]);
        assert!(argv[0].starts_with(INIT_DIR));
        let m = f.mounts();
        assert_eq!(m[0].1, format!("{INIT_DIR}/berth"));
        assert!(
            m.iter()
                .all(|(h, c)| h.is_absolute() && c.starts_with(INIT_DIR))
        );
    }
}
