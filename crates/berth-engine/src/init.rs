//! `--init`: a minimal init as the container's pid 1 — starts the command as pid 2, forwards the
//! signals it receives to it, reaps every orphan, and exits with the command's Docker exit code
//! (128 + signal when it was killed). It is this very binary, mounted into the container's `/dev` (a
//! private tmpfs, so the image is untouched) together with the dynamic loader and the libraries it is
//! linked against, and started through that loader, so it runs on any image.
//!
//! Never the host's own files: a container allowed to mount (`--cap-add SYS_ADMIN`) could remount a
//! read-only bind of them read-write, and the loader maps the binary without the "text busy" guard an
//! `execve` gives. They are copied once per berth build into the state root ([`InitFiles::copied_into`])
//! and that copy is mounted as a read-only overlay without an upper layer, which no remount can make
//! writable ([`InitFiles::mount_source`]).

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
    /// The directory holding all of them (the copy in the state root), once copied.
    pub dir: Option<PathBuf>,
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
        Ok(InitFiles {
            dir: None,
            exe,
            loader,
            libs,
        })
    }

    /// The same files copied into `cache/init-<key>/` (made once, atomically: a temporary directory,
    /// fsync, rename; `key` names the host files' identities, so a new berth or libc gets a new copy).
    pub fn copied_into(&self, cache: &Path) -> std::io::Result<InitFiles> {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let files: Vec<&PathBuf> = std::iter::once(&self.exe)
            .chain(self.loader.iter())
            .chain(self.libs.iter())
            .collect();
        // A name, not a digest of the contents: it only has to change when a host file does.
        let mut h = std::hash::DefaultHasher::new();
        for f in &files {
            let m = std::fs::metadata(f)?;
            (f, m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()).hash(&mut h);
        }
        let key = format!("{:016x}", h.finish());
        let dir = cache.join(format!("init-{key}"));
        let name = |p: &Path| p.file_name().map(|n| n.to_owned()).unwrap_or_default();
        if !dir.is_dir() {
            std::fs::create_dir_all(cache)?;
            let tmp = cache.join(format!(".init-{key}.tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp)?;
            for (i, f) in files.iter().enumerate() {
                // The binary itself is always "berth" inside (argv names it so).
                let to = if i == 0 {
                    tmp.join("berth")
                } else {
                    tmp.join(name(f))
                };
                std::fs::copy(f, &to)?;
                std::fs::File::open(&to)?.sync_all()?;
            }
            std::fs::File::open(&tmp)?.sync_all()?;
            match std::fs::rename(&tmp, &dir) {
                Ok(()) => std::fs::File::open(cache)?.sync_all()?,
                // Another command made it first: theirs holds the same files.
                Err(_) if dir.is_dir() => {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                Err(e) => return Err(e),
            }
        }
        let empty = cache.join("init-empty");
        match std::fs::create_dir(&empty) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        Ok(InitFiles {
            exe: dir.join("berth"),
            loader: self.loader.as_ref().map(|l| dir.join(name(l))),
            libs: self.libs.iter().map(|l| dir.join(name(l))).collect(),
            dir: Some(dir),
        })
    }

    /// For a copy ([`InitFiles::copied_into`]): the overlay `lowerdir` that shows it, read-only, at
    /// [`INIT_DIR`] — the copy above an empty directory, since an overlay without an upper layer needs
    /// two lower ones.
    pub fn mount_source(&self) -> Option<String> {
        let dir = self.dir.as_ref()?;
        let empty = dir.parent()?.join("init-empty");
        Some(format!("lowerdir={}:{}", dir.display(), empty.display()))
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
    // Set, not added to: the runtime starts us with every signal blocked (so that none sent before
    // this point is lost), and the ones we do not forward must reach us.
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&set), None) {
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
    fn the_copy_is_made_once_holds_every_file_and_shows_as_a_two_layer_overlay() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        let f = InitFiles::of_this_process().unwrap();
        let c = f.copied_into(&cache).unwrap();
        let dir = c.dir.clone().unwrap();
        assert_eq!(c.exe, dir.join("berth"));
        assert_eq!(
            std::fs::read(&c.exe).unwrap(),
            std::fs::read(&f.exe).unwrap()
        );
        for (host, copy) in f.libs.iter().zip(&c.libs) {
            assert_eq!(copy.parent(), Some(dir.as_path()));
            assert_eq!(copy.file_name(), host.file_name());
            assert_eq!(std::fs::read(copy).unwrap(), std::fs::read(host).unwrap());
        }
        assert_eq!(
            c.mount_source().unwrap(),
            format!(
                "lowerdir={}:{}",
                dir.display(),
                cache.join("init-empty").display()
            )
        );
        assert!(cache.join("init-empty").is_dir());
        // Again: the same directory, nothing left beside it.
        let again = f.copied_into(&cache).unwrap();
        assert_eq!(again, c);
        let names: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            f.mount_source().is_none(),
            "host files have no overlay view"
        );
    }

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
