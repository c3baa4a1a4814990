//! `create`: set a container up, its process stopped before exec until `start`.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use berth_runtime::state::{self, Record, StateDir};
use berth_runtime::{Child, LaunchConfig};
use oci_spec::runtime::Spec;

use crate::shared;

/// What `create` and `run` are given.
pub struct Options<'a> {
    /// Container id.
    pub id: &'a str,
    /// Bundle directory.
    pub bundle: &'a Path,
    /// Where the pty master goes when `process.terminal` is true.
    pub console_socket: Option<&'a Path>,
    /// Where the container's pid goes.
    pub pid_file: Option<&'a Path>,
}

/// `create`: the container waits on its start gate; this process returns at once.
pub fn create(state: &StateDir, o: &Options<'_>) -> Result<i32> {
    let (child, _) = launch(state, o, true)?;
    drop(child);
    Ok(0)
}

/// Sets the container up and records its state; `gated` stops it before exec until `start`.
pub fn launch(state: &StateDir, o: &Options<'_>, gated: bool) -> Result<(Child, Record)> {
    state::validate_id(o.id)?;
    let bundle = std::fs::canonicalize(o.bundle)
        .with_context(|| format!("bundle {}", o.bundle.display()))?;
    let mut spec = Spec::load(bundle.join("config.json")).context("loading config.json")?;
    let mut r = spec
        .root()
        .clone()
        .ok_or_else(|| anyhow!("config.json has no root"))?;
    if r.path().is_relative() {
        r.set_path(bundle.join(r.path()));
    }
    spec.set_root(Some(r));
    state.create(o.id)?;
    let result = (|| -> Result<(Child, Record)> {
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let stdio = shared::stdio_for(terminal, o.console_socket)?;
        let cfg = LaunchConfig {
            id: o.id,
            spec: &spec,
            overlay: None,
            stdio,
            seccomp: None,
            die_with_parent: false,
            signals_blocked: false,
        };
        let child = if gated {
            berth_runtime::create(cfg, &state.fifo(o.id))?
        } else {
            berth_runtime::spawn(cfg)?
        };
        let rec = Record {
            id: o.id.to_owned(),
            pid: child.pid(),
            start_time: state::start_time(child.pid()).unwrap_or(0),
            bundle: bundle.clone(),
            cgroups_path: berth_runtime::cgroups_path(&spec, o.id),
            created: berth_oci::time::rfc3339_secs(now_secs()),
            annotations: spec.annotations().clone().unwrap_or_default(),
        };
        state.save(&rec)?;
        if let Some(f) = o.pid_file {
            shared::write_pid_file(f, rec.pid)?;
        }
        Ok((child, rec))
    })();
    if result.is_err() {
        let _ = state.remove(o.id);
    }
    result
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
