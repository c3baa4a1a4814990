//! `exec`: a new process in a running container. The namespaces are opened first; the pid namespace
//! only applies to children, so the caller switches its own `pid_for_children` for one `clone3` and
//! switches back; the child joins the rest (user first, mount last), the cgroup, then runs the same
//! user/capability/seccomp path as `spawn`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use oci_spec::runtime::Process;
use rustix::pipe::PipeFlags;

use crate::cgjoin::Join;
use crate::cgroups::Cgroup;
use crate::child::{self, ChildStdio, Fail, Stage, at_raw};
use crate::error::Error;
use crate::handle::{Child, read_report, record_error};
use crate::plan::ProcessPlan;
use crate::seccomp::Program;
use crate::spawn::Stdio;
use crate::sys::{self, Forked};

/// Namespaces joined by `exec`, in order (user first so the rest are permitted; mnt last).
const NAMESPACES: &[(&str, i32)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

struct Joined {
    fds: Vec<(OwnedFd, i32, &'static str)>,
    pid_ns: Option<OwnedFd>,
}

fn same_ns(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Opens the target's namespaces that differ from ours.
fn open_namespaces(pid: i32) -> Result<Joined, Error> {
    let open = |name: &str| -> Result<Option<OwnedFd>, Error> {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let f = std::fs::File::open(&theirs).map_err(|source| Error::Sys {
            action: format!("opening {theirs}"),
            source,
        })?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
        let meta = f.metadata().map_err(|source| Error::Sys {
            action: format!("inspecting {theirs}"),
            source,
        })?;
        Ok(match ours {
            Some(o) if same_ns(&o, &meta) => None,
            _ => Some(f.into()),
        })
    };
    let mut fds = Vec::new();
    for (name, flag) in NAMESPACES {
        if let Some(fd) = open(name)? {
            fds.push((fd, *flag, *name));
        }
    }
    Ok(Joined {
        fds,
        pid_ns: open("pid")?,
    })
}

/// The cgroup `pid` is in, as a path usable with [`Cgroup::open`] (from `/proc/<pid>/cgroup`).
fn cgroup_of(pid: i32) -> Result<String, Error> {
    let p = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&p).map_err(|source| Error::Sys {
        action: format!("reading {p}"),
        source,
    })?;
    let mut fallback = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if ctrls.split(',').any(|c| c == "memory" || c == "pids") {
            fallback = Some(path.to_owned());
            break;
        }
        if fallback.is_none() && (ctrls.is_empty() || !ctrls.starts_with("name=")) {
            fallback = Some(path.to_owned());
        }
    }
    match fallback {
        // Never hand out the root cgroup as "the container's": kill_all on it would hit the host.
        Some(path) if path.trim_matches('/').is_empty() => Err(Error::sys(
            format!("pid {pid} is in the root cgroup ({p})"),
            libc::EINVAL,
        )),
        Some(path) => Ok(path),
        None => Err(Error::sys(
            format!("finding the cgroup in {p}"),
            libc::ENOENT,
        )),
    }
}

/// Starts `process` inside the running container whose first process is `target_pid`.
pub fn exec(
    target_pid: i32,
    process: &Process,
    cgroup: Option<&Cgroup>,
    seccomp: Option<&Program>,
    stdio: Stdio,
) -> Result<Child, Error> {
    let plan = ProcessPlan::build(process, seccomp)?;
    let ns = open_namespaces(target_pid)?;
    let path = cgroup_of(target_pid)?;
    let own = Cgroup::open(&path).map_err(|source| Error::Cgroup {
        action: "opening",
        path: path.clone(),
        source,
    })?;
    let target = cgroup.unwrap_or(&own);
    let (join, into) = crate::spawn::cgroup_placement(target, &path)?;
    let in_userns = ns.fds.iter().any(|(_, f, _)| *f == libc::CLONE_NEWUSER);
    let (err_r, err_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating the error pipe", e.raw_os_error()))?;

    let self_pid_ns = match &ns.pid_ns {
        Some(target) => {
            let ours = std::fs::File::open("/proc/self/ns/pid").map_err(|source| Error::Sys {
                action: "opening /proc/self/ns/pid".into(),
                source,
            })?;
            sys::setns(target.as_fd(), libc::CLONE_NEWPID).map_err(|e| {
                Error::sys(format!("entering the pid namespace of {target_pid}"), e)
            })?;
            Some(OwnedFd::from(ours))
        }
        None => None,
    };
    let restore = || -> Result<(), Error> {
        match &self_pid_ns {
            // Back to our own pid namespace for later children.
            Some(ours) => sys::setns(ours.as_fd(), libc::CLONE_NEWPID)
                .map_err(|e| Error::sys("returning to our pid namespace", e)),
            None => Ok(()),
        }
    };
    let (pid, pidfd) = match sys::clone3(0, into.as_ref().map(|f| f.as_fd())) {
        Ok(Forked::Child) => {
            let f = match enter(&ns, join.as_ref(), stdio.for_child()) {
                Ok(()) => child::process::finish(&plan, in_userns),
                Err(f) => f,
            };
            child::die(err_w.as_raw_fd(), f)
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            restore()?;
            (pid, pidfd)
        }
        Err(e) => {
            restore()?;
            return Err(Error::sys(
                format!("forking into the pid namespace of {target_pid}"),
                e,
            ));
        }
    };
    drop(err_w);
    drop(stdio);
    match read_report(&err_r) {
        Ok(None) => Ok(Child::new(pid, pidfd, own, None)),
        Ok(Some(rec)) => {
            let _ = sys::waitpid(pid);
            Err(record_error(&rec, &plan.command, |s, i| match s {
                Stage::Join => ns
                    .fds
                    .get(i)
                    .map(|(_, _, n)| format!("{n} of pid {target_pid}"))
                    .unwrap_or_default(),
                Stage::Chdir => plan.cwd.to_string_lossy().into_owned(),
                _ => String::new(),
            }))
        }
        Err(e) => {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::waitpid(pid);
            Err(e)
        }
    }
}

fn enter(ns: &Joined, join: Option<&Join>, stdio: ChildStdio<'_>) -> Result<(), Fail> {
    if let Some(join) = join {
        join.join_self().map_err(child::at(Stage::CgroupJoin, 0))?;
    }
    for (i, (fd, flag, _)) in ns.fds.iter().enumerate() {
        sys::setns(fd.as_fd(), *flag).map_err(at_raw(Stage::Join, i))?;
    }
    sys::reset_signals();
    child::setup_stdio(&stdio)
}
