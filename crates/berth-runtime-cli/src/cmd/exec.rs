//! `exec`: a new process inside a running container.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_runtime::cgroups::Cgroup;
use berth_runtime::state::{StateDir, Status};
use oci_spec::runtime::{Process, Spec};

use crate::shared;

/// What `exec` is given.
pub struct Options<'a> {
    /// Container id.
    pub id: &'a str,
    /// A process.json to run instead of `command`.
    pub process: Option<&'a Path>,
    /// The command and its arguments (on the container's own process settings).
    pub command: Vec<String>,
    /// Allocate a pty (with `command`).
    pub tty: bool,
    /// Where the pty master goes.
    pub console_socket: Option<&'a Path>,
    /// Where the new process's pid goes.
    pub pid_file: Option<&'a Path>,
    /// Return once started.
    pub detach: bool,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment (KEY=VALUE).
    pub env: Vec<String>,
    /// uid[:gid].
    pub user: Option<&'a str>,
}

/// Runs the process; in the foreground the exit code is the process's.
pub fn exec(state: &StateDir, o: Options<'_>) -> Result<i32> {
    // What enters the container is a fork of this process: a fork of a sealed copy.
    berth_runtime::exe::run_from_sealed_copy()?;
    let id = o.id;
    let rec = state.load(id)?;
    if state.status(&rec) != Status::Running {
        bail!("container {id} is not running");
    }
    let spec = Spec::load(rec.bundle.join("config.json")).context("loading config.json")?;
    let p = process(&spec, &o)?;
    let stdio = shared::stdio_for(p.terminal().unwrap_or(false), o.console_socket)?;
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(berth_runtime::seccomp::Program::compile)
        .transpose()?;
    let cg = Cgroup::open(&rec.cgroups_path)?;
    let mut child = berth_runtime::exec(rec.pid, &p, Some(&cg), seccomp.as_ref(), stdio)?;
    if let Some(f) = o.pid_file {
        shared::write_pid_file(f, child.pid())?;
    }
    if o.detach {
        return Ok(0);
    }
    Ok(child.wait()?.docker_code())
}

/// The process to run: `--process`, or the container's own with `command`; then `--cwd`, `--env`
/// and `--user` on top.
fn process(spec: &Spec, o: &Options<'_>) -> Result<Process> {
    let mut p: Process = match o.process {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?,
        None => {
            if o.command.is_empty() {
                bail!("exec needs a command or --process");
            }
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(o.command.clone()));
            p.set_terminal(Some(o.tty));
            p
        }
    };
    if let Some(c) = &o.cwd {
        p.set_cwd(c.clone());
    }
    if !o.env.is_empty() {
        let mut e = p.env().clone().unwrap_or_default();
        e.extend(o.env.iter().cloned());
        p.set_env(Some(e));
    }
    if let Some(u) = o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let mut usr = p.user().clone();
        usr.set_uid(uid.parse().context("--user uid")?);
        usr.set_gid(gid.parse().context("--user gid")?);
        p.set_user(usr);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(command: &[&str]) -> Options<'static> {
        Options {
            id: "c",
            process: None,
            command: command.iter().map(|s| s.to_string()).collect(),
            tty: false,
            console_socket: None,
            pid_file: None,
            detach: false,
            cwd: None,
            env: vec![],
            user: None,
        }
    }

    #[test]
    fn the_command_runs_on_the_containers_process_settings() {
        let spec = berth_runtime::defaults::spec();
        let mut o = options(&["ls", "-l"]);
        o.cwd = Some("/tmp".into());
        o.env = vec!["A=1".into()];
        o.user = Some("1000:100");
        let p = process(&spec, &o).unwrap();
        assert_eq!(p.args().as_deref(), Some(&["ls".into(), "-l".into()][..]));
        assert_eq!(
            p.terminal(),
            Some(false),
            "the spec's terminal is not inherited"
        );
        assert_eq!(p.cwd(), Path::new("/tmp"));
        let env = p.env().as_ref().unwrap();
        assert_eq!(env.last().map(String::as_str), Some("A=1"));
        assert_eq!(
            env.len(),
            spec.process()
                .as_ref()
                .unwrap()
                .env()
                .as_ref()
                .unwrap()
                .len()
                + 1
        );
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(
            p.capabilities(),
            spec.process().as_ref().unwrap().capabilities()
        );

        o.user = Some("7");
        let p = process(&spec, &o).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (7, 0));
        o.user = Some("nobody");
        assert!(process(&spec, &o).is_err());
        assert!(
            process(&spec, &options(&[])).is_err(),
            "no command, no --process"
        );
    }

    #[test]
    fn a_process_file_replaces_the_containers_process() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("process.json");
        let mut given = Process::default();
        given.set_args(Some(vec!["/bin/echo".into(), "hi".into()]));
        given.set_terminal(Some(true));
        std::fs::write(&path, serde_json::to_vec(&given).unwrap()).unwrap();
        let mut o = options(&[]);
        o.process = Some(&path);
        let p = process(&berth_runtime::defaults::spec(), &o).unwrap();
        assert_eq!(p, given);
        std::fs::write(&path, b"{").unwrap();
        let e = process(&berth_runtime::defaults::spec(), &o).unwrap_err();
        assert!(e.to_string().starts_with("parsing "), "{e}");
    }
}
