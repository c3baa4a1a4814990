//! The thin effectful layer: directory creation, single writes and small reads of cgroup files.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;
use super::plan::Write;

/// Writes `value` to the existing file `file` (one open, one write).
pub(super) fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            file: file.to_owned(),
            value: value.to_owned(),
            source,
        })
}

/// Applies one planned write in `dir`, skipping an optional file the kernel does not provide.
pub(super) fn apply(dir: &Path, w: &Write) -> Result<(), CgroupError> {
    match write(&dir.join(w.file), &w.value) {
        Err(CgroupError::Write { source, .. })
            if w.optional && source.kind() == io::ErrorKind::NotFound =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Reads `file`, or `None` if it does not exist.
pub(super) fn read_optional(file: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}

fn read(file: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(file).map_err(|source| CgroupError::Read {
        file: file.to_owned(),
        source,
    })
}

/// The pids listed in a `cgroup.procs` file; a cgroup that is already gone has none.
pub(super) fn read_pids(file: &Path) -> Result<Vec<i32>, CgroupError> {
    Ok(read_optional(file)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Polls `file` until `done` accepts its text, for at most a second.
pub(super) fn wait_for(
    file: &Path,
    done: impl Fn(&str) -> bool,
    dir: &Path,
) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        if done(&read(file)?) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(1) {
            return Err(CgroupError::FreezeTimeout {
                dir: dir.to_owned(),
                millis: 1000,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Which components of a path [`make_dirs`] had to create.
pub(super) struct Created {
    /// Index of the first component created by us (== number of components if none was).
    pub first_new: usize,
}

/// Makes `root/rel` and any missing parents. Tries the leaf first: with the parent already there
/// (the usual case) that is the only syscall.
pub(super) fn make_dirs(root: &Path, rel: &str) -> Result<Created, CgroupError> {
    let comps: Vec<&str> = rel.split('/').collect();
    let leaf = root.join(rel);
    match std::fs::create_dir(&leaf) {
        Ok(()) => {
            return Ok(Created {
                first_new: comps.len() - 1,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Ok(Created {
                first_new: comps.len(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && comps.len() > 1 => {}
        Err(source) => return Err(CgroupError::CreateDir { dir: leaf, source }),
    }
    let mut first_new = comps.len();
    let mut dir = root.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        dir.push(c);
        match std::fs::create_dir(&dir) {
            Ok(()) => first_new = first_new.min(i),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::CreateDir { dir, source }),
        }
    }
    Ok(Created { first_new })
}

/// A new v1 cpuset cgroup starts with empty cpus/mems, and no task can join it until they are set:
/// fill any empty one on the way from `root` down to `dir` from its parent.
pub(super) fn ensure_cpuset(root: &Path, dir: &Path) -> Result<(), CgroupError> {
    let filled = |d: &Path, f: &str| read(&d.join(f)).map(|s| !s.trim().is_empty());
    if filled(dir, "cpuset.cpus")? && filled(dir, "cpuset.mems")? {
        return Ok(());
    }
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let mut parent: PathBuf = root.to_path_buf();
    for c in rel.components() {
        let child = parent.join(c);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if !filled(&child, f)? {
                let v = read(&parent.join(f))?;
                write(&child.join(f), v.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

/// Enables in `dir`'s children every controller `dir` has (v2). Each one separately, ignoring
/// refusals: a controller that cannot be delegated only matters if a limit needs it, and then the
/// write of that limit reports it.
pub(super) fn delegate_controllers(dir: &Path) -> Result<(), CgroupError> {
    let avail = read(&dir.join("cgroup.controllers"))?;
    for c in avail.split_whitespace() {
        let _ = write(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
    }
    Ok(())
}

/// rmdir with retries while the last tasks exit (EBUSY); a missing directory counts as removed.
pub(super) fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && start.elapsed() < Duration::from_secs(2) =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    dir: dir.to_owned(),
                    source,
                });
            }
        }
    }
}
