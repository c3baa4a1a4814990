//! `exec`: a new process in a running container's namespaces and cgroup, with the container's
//! capabilities, seccomp filter and no-new-privileges; its own user, env, cwd and tty.

use super::Engine;
use super::start::{dup, plain_stdio};
use crate::error::{Error, Result};
use crate::pump::{self, Pump};
use crate::record::Status;
use berth_runtime::Stdio;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// `berth exec` options.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// `-i`: forward stdin.
    pub interactive: bool,
    /// `-t`: allocate a pty.
    pub tty: bool,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// `-e K=V`.
    pub env: Vec<String>,
    /// `-w DIR`.
    pub workdir: Option<String>,
}

impl Engine {
    /// Runs a command in a running container; returns its Docker exit code.
    pub fn exec(&self, what: &str, o: &ExecOptions) -> Result<i32> {
        let id = self.resolve(what)?;
        let st = self.state(&id)?;
        if st.status != Status::Running {
            return Err(Error::NotRunning(what.to_owned()));
        }
        let rec = self.containers.read_config(&id)?;
        let security = crate::options::parse_security(&rec.host_config.security_opt)?;
        // The container's own root, as its init sees it, is the only layer to read users from.
        let user_spec = o.user.clone().unwrap_or_else(|| rec.config.user.clone());
        let user = crate::userdb::resolve(
            &user_spec,
            &[PathBuf::from(format!("/proc/{}/root", st.pid))],
        )?;
        let mut base_env = rec.config.env.clone();
        for e in &o.env {
            let k = e.split_once('=').map(|(k, _)| k).unwrap_or(e);
            base_env.retain(|x| x.split_once('=').map(|(a, _)| a).unwrap_or(x) != k);
            if e.contains('=') {
                base_env.push(e.clone());
            } else if let Ok(v) = std::env::var(e) {
                base_env.push(format!("{e}={v}"));
            }
        }
        let env = crate::spec::process_env(&base_env, &rec.config.hostname, &user.home, o.tty);
        let caps = crate::spec::capability_set(&rec.host_config.cap_add, &rec.host_config.cap_drop)
            .map_err(|source| Error::Spec {
                id: id.clone(),
                cause: source,
            })?;
        let cwd = o
            .workdir
            .clone()
            .unwrap_or_else(|| rec.config.working_dir.clone());
        let process = crate::spec::process(
            o.cmd.clone(),
            env,
            &cwd,
            &user,
            o.tty,
            &caps,
            security.no_new_privileges,
            &rec.host_config.ulimits,
        )
        .map_err(|source| Error::Spec {
            id: id.clone(),
            cause: source,
        })?;
        let seccomp = self.seccomp(&security, &caps)?;
        let stdin = rustix::stdio::stdin();
        let stdout = rustix::stdio::stdout();
        let runtime_err = |source| Error::Runtime(Box::new(source));
        let pump_err = |source| Error::Pump {
            id: id.clone(),
            cause: source,
        };

        if o.tty {
            let pty = pump::open_pty().map_err(pump_err)?;
            let size_from = if rustix::termios::isatty(stdin) {
                stdin
            } else {
                stdout
            };
            pump::copy_winsize(size_from, pty.master.as_fd());
            let mut child = berth_runtime::exec(
                st.pid,
                &process,
                None,
                seccomp.as_ref(),
                Stdio::Pty(pty.slave),
            )
            .map_err(runtime_err)?;
            let _raw = if o.interactive {
                pump::RawMode::enter(stdin)
            } else {
                None
            };
            let sigs = pump::signal_fd(&pump::FORWARDED, true).map_err(pump_err)?;
            let input = if o.interactive {
                Some((stdin, dup(pty.master.as_fd())?))
            } else {
                None
            };
            let mut pm = Pump {
                out: Some(dup(pty.master.as_fd())?),
                err: None,
                input,
                echo: true,
                log: None,
                signals: Some(&sigs),
                resize: Some((size_from, pty.master.as_fd())),
                trim_when_idle: false,
            };
            let r = pm.run(child.pidfd(), &mut |s| {
                let _ = child.signal(s);
            });
            drop(pm);
            r.map_err(pump_err)?;
            return Ok(child.wait().map_err(runtime_err)?.docker_code());
        }
        let plain = plain_stdio(o.interactive, false)?;
        let mut child = berth_runtime::exec(st.pid, &process, None, seccomp.as_ref(), plain.stdio)
            .map_err(runtime_err)?;
        let sigs = pump::signal_fd(&pump::FORWARDED, false).map_err(pump_err)?;
        let mut pm = Pump {
            out: plain.out,
            err: plain.err,
            input: plain.input.map(|w| (stdin, w)),
            echo: true,
            log: None,
            signals: Some(&sigs),
            resize: None,
            trim_when_idle: false,
        };
        let r = pm.run(child.pidfd(), &mut |s| {
            let _ = child.signal(s);
        });
        drop(pm);
        r.map_err(pump_err)?;
        Ok(child.wait().map_err(runtime_err)?.docker_code())
    }
}
