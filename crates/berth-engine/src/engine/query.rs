//! ps, inspect and logs: read-only views (through [`Engine::state`], so a dead monitor is noticed).

use super::Engine;
use crate::error::Result;
use crate::logs::{LogsOptions, print_log};
use crate::record::{ContainerRecord, State, Status};
use serde_json::{Value, json};
use std::io::Write;

/// One container as `ps` lists it.
#[derive(Debug, Clone)]
pub struct ContainerSummary {
    /// The container's record.
    pub record: ContainerRecord,
    /// Its current state.
    pub state: State,
}

impl ContainerSummary {
    /// Docker's COMMAND value: path and args joined, quoted.
    pub fn command(&self) -> String {
        let mut parts = vec![self.record.path.clone()];
        parts.extend(self.record.args.iter().cloned());
        parts.join(" ")
    }
}

impl Engine {
    /// Containers, newest first; only running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<ContainerSummary>> {
        self.containers.sweep();
        let mut out = Vec::new();
        for id in self.containers.ids()? {
            let (Ok(record), Ok(state)) = (self.containers.read_config(&id), self.state(&id))
            else {
                continue; // removed while we listed
            };
            if all || state.status == Status::Running {
                out.push(ContainerSummary { record, state });
            }
        }
        out.sort_by(|a, b| b.record.created.cmp(&a.record.created));
        Ok(out)
    }

    /// Docker-shaped `inspect` JSON of one container.
    pub fn inspect(&self, what: &str) -> Result<Value> {
        let id = self.resolve(what)?;
        let rec = self.containers.read_config(&id)?;
        let st = self.state(&id)?;
        let dir = self.containers.dir(&id);
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        Ok(json!({
            "Id": rec.id,
            "Created": rec.created,
            "Path": rec.path,
            "Args": rec.args,
            "State": {
                "Status": st.status.as_str(),
                "Running": st.running,
                "Paused": st.paused,
                "Restarting": st.restarting,
                "OOMKilled": st.oom_killed,
                "Dead": st.dead,
                "Pid": st.pid,
                "ExitCode": st.exit_code,
                "Error": st.error,
                "StartedAt": st.started_at,
                "FinishedAt": st.finished_at,
            },
            "Image": rec.image,
            "ResolvConfPath": path("resolv.conf"),
            "HostnamePath": path("hostname"),
            "HostsPath": path("hosts"),
            "LogPath": path(&format!("{id}-json.log")),
            "Name": rec.name,
            "RestartCount": 0,
            "Driver": "overlay",
            "Platform": "linux",
            "HostConfig": rec.host_config,
            "Mounts": rec.mounts,
            "Config": rec.config,
            "GraphDriver": {
                "Name": "overlay",
                "Data": { "UpperDir": path("upper"), "WorkDir": path("work"), "MergedDir": path("rootfs") },
            },
        }))
    }

    /// `berth logs`: prints the container's log; with `follow`, until it stops.
    pub fn logs(
        &self,
        what: &str,
        opts: &LogsOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let id = self.resolve(what)?;
        let path = self.containers.dir(&id).join(format!("{id}-json.log"));
        let mut running = || matches!(self.state(&id), Ok(st) if st.status == Status::Running);
        print_log(&path, opts, out, err, &mut running)?;
        Ok(())
    }
}
