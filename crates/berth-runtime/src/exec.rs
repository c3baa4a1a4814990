//! `exec`: a new process in a running container. The target's namespaces are opened first; a first
//! child joins them all (user first, mount last) and confines itself completely while it is still
//! invisible from inside the container; only then is the user's process forked into the container's
//! pid namespace (see [`exec`]).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use oci_spec::runtime::Process;
use rustix::pipe::PipeFlags;

use crate::cgjoin::Join;
use crate::cgroups::Cgroup;
use crate::child::{self, ChildStdio, FORKED, Fail, at_raw};
use crate::error::Error;
use crate::handle::{Child, read_report, record_error};
use crate::plan::ProcessPlan;
use crate::seccomp::Program;
use crate::spawn::Stdio;
use crate::stage::Stage;
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
    // On a v2 host the unified line ("0::/path") is the container's: a hybrid kernel still lists
    // its v1 hierarchies, at "/", for a process placed only in v2.
    let unified = matches!(
        crate::cgroups::Hierarchy::host(),
        Ok(crate::cgroups::Hierarchy::V2 { .. })
    );
    let mut fallback = unified
        .then(|| text.lines().find_map(|l| l.strip_prefix("0::")))
        .flatten()
        .map(str::to_owned);
    if fallback.is_none() {
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
///
/// Two processes, as runc's `nsexec` does, so that nothing of berth is ever visible inside the
/// container before it is confined: the first child stays in the host's pid namespace (the container
/// cannot see it), becomes non-dumpable, closes every descriptor it inherited, joins the cgroup and
/// every namespace (mount last, then the pid namespace for its children), resolves the working
/// directory inside the root and drops to the final ids, capabilities, no_new_privs and seccomp
/// filter. Only then does it fork the process that enters the container's pid namespace — as our
/// sibling (`CLONE_PARENT`), so the caller waits for it as for its own child — which only starts a
/// session and `execve`s. Without a pid namespace of its own the first child `execve`s itself.
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
    let child_stdio = stdio.for_child();
    let mut keep = vec![err_w.as_raw_fd()];
    keep.extend(ns.fds.iter().map(|(fd, _, _)| fd.as_raw_fd()));
    keep.extend(ns.pid_ns.as_ref().map(|fd| fd.as_raw_fd()));
    keep.extend(join.iter().flat_map(|j| j.raw_fds()));
    keep.extend(child_stdio.raw_fds());
    keep.sort_unstable();

    let (first, first_pidfd) = match sys::clone3(0, into.as_ref().map(|f| f.as_fd())) {
        Ok(Forked::Child) => {
            let errfd = err_w.as_raw_fd();
            let f = match confine(&ns, join.as_ref(), &child_stdio, &keep)
                .and_then(|()| child::process::prepare(&plan, in_userns, errfd, false))
            {
                Ok(()) if ns.pid_ns.is_some() => fork_into_pid_ns(&plan, &child_stdio, errfd),
                Ok(()) => match child::session(&child_stdio) {
                    Ok(()) => child::process::exec(&plan),
                    Err(f) => f,
                },
                Err(f) => f,
            };
            child::die(errfd, f)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => {
            return Err(Error::sys(
                format!("forking to join the container of pid {target_pid}"),
                e,
            ));
        }
    };
    drop(err_w);
    drop(stdio);
    let describe = |s: Stage, i: usize| match s {
        Stage::Join => ns
            .fds
            .get(i)
            .map(|(_, _, n)| format!("{n} of pid {target_pid}"))
            .unwrap_or_else(|| format!("pid of pid {target_pid}")),
        Stage::Chdir => plan.cwd.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    // The final process and a pidfd for it, once the first child has reported forking it. It is
    // our own unreaped child (CLONE_PARENT), so its pid cannot have been reused meanwhile.
    let mut last: Option<(i32, OwnedFd)> = None;
    let outcome = loop {
        match read_report(&err_r) {
            Ok(Some(rec)) if rec.stage == FORKED && last.is_none() => {
                let pid = rec.index as i32;
                match rustix::process::Pid::from_raw(pid)
                    .ok_or(rustix::io::Errno::INVAL)
                    .and_then(|p| {
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                    }) {
                    Ok(fd) => last = Some((pid, fd)),
                    Err(e) => {
                        let _ = sys::waitpid(pid);
                        break Err(Error::sys(
                            "opening a pidfd for the exec'd process",
                            e.raw_os_error(),
                        ));
                    }
                }
            }
            Ok(None) => break Ok(()),
            Ok(Some(rec)) => break Err(record_error(&rec, &plan.command, describe)),
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = outcome {
        let _ = sys::pidfd_send_signal(first_pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::waitpid(first);
        if let Some((pid, fd)) = &last {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = sys::waitpid(*pid);
        }
        return Err(e);
    }
    if ns.pid_ns.is_none() {
        // The first child exec'd the user's program itself.
        return Ok(Child::new(first, first_pidfd, own, None));
    }
    // It has forked the process and exited (or died trying).
    let first_status = sys::waitpid(first);
    match last {
        Some((pid, pidfd)) => Ok(Child::new(pid, pidfd, own, None)),
        None => {
            let code = first_status
                .map(|raw| crate::handle::ExitStatus::from_raw(raw).docker_code())
                .unwrap_or(-1);
            Err(Error::sys(
                format!("the process joining the container died before forking (exit code {code})"),
                libc::ECHILD,
            ))
        }
    }
}

/// In the first child: everything up to the user's process, in the order the kernel requires
/// (cgroup while our ids are the host's, user namespace first so the rest are permitted, mount
/// last, then the pid namespace, which only our children enter).
fn confine(
    ns: &Joined,
    join: Option<&Join>,
    stdio: &ChildStdio<'_>,
    keep: &[RawFd],
) -> Result<(), Fail> {
    child::birth(keep)?;
    if let Some(join) = join {
        join.join_self().map_err(child::at(Stage::CgroupJoin, 0))?;
    }
    for (i, (fd, flag, _)) in ns.fds.iter().enumerate() {
        sys::setns(fd.as_fd(), *flag).map_err(at_raw(Stage::Join, i))?;
    }
    if let Some(pid_ns) = &ns.pid_ns {
        sys::setns(pid_ns.as_fd(), libc::CLONE_NEWPID)
            .map_err(at_raw(Stage::Join, ns.fds.len()))?;
    }
    sys::reset_signals();
    child::install_stdio(stdio)
}

/// In the confined first child: forks the process that is born in the container's pid namespace,
/// reports its pid, and exits. That process only starts its session and `execve`s.
fn fork_into_pid_ns(plan: &ProcessPlan<'_>, stdio: &ChildStdio<'_>, errfd: RawFd) -> Fail {
    match sys::fork_sibling() {
        Ok(0) => {
            let f = match child::session(stdio) {
                Ok(()) => child::process::exec(plan),
                Err(f) => f,
            };
            child::die(errfd, f)
        }
        Ok(pid) => {
            let rec = child::Record {
                stage: FORKED,
                errno: 0,
                index: pid as u32,
                msg: [0; child::MSG_LEN],
            };
            match sys::write_all(errfd, &rec.to_bytes()) {
                Ok(()) => sys::exit(0),
                Err(e) => Fail::new(Stage::Fork, 0, e),
            }
        }
        Err(e) => Fail::new(Stage::Fork, 0, e),
    }
}
