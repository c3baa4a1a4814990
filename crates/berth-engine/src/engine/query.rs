//! ps, images, inspect and logs: read-only views (through [`Engine::state`], so a dead monitor is
//! noticed).

use super::Engine;
use crate::error::{Error, Result};
use crate::filter::container::Anchors;
use crate::filter::image::ImageAnchors;
use crate::filter::{ContainerFilter, ImageFilter};
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

/// What `ps` (or the API's `GET /containers/json`) asks for.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Stopped containers too (Docker's `all`); `status`, `before`, `since` and `limit` imply it.
    pub all: bool,
    /// Which containers.
    pub filter: ContainerFilter,
    /// At most this many, newest first (`-n`; `--latest` is 1).
    pub limit: Option<usize>,
}

/// One image as `images` lists it.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// The image.
    pub image: berth_store::Image,
    /// Its references the filter kept (all of them without `reference=`).
    pub references: Vec<berth_oci::Reference>,
}

impl Engine {
    /// Containers that pass `opts`, newest first, with Docker's rules: a filter's `ancestor`
    /// values name images (an unknown one matches nothing), `before` and `since` name containers
    /// (an unknown one is an error).
    pub fn list_containers(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        let f = &opts.filter;
        let mut anchors = Anchors::default();
        if !f.ancestors().is_empty() {
            let store = self.image_store()?;
            for a in f.ancestors() {
                match store.image(a) {
                    Ok(img) => {
                        anchors.ancestor_ids.insert(img.id.to_string());
                    }
                    Err(berth_store::Error::ImageNotFound(_)) => {}
                    Err(e) => {
                        return Err(Error::Image {
                            action: "resolving",
                            image: a.clone(),
                            cause: Box::new(e),
                        });
                    }
                }
            }
        }
        let created_of = |what: Option<&str>| -> Result<Option<i128>> {
            let Some(what) = what else { return Ok(None) };
            let rec = self.containers.read_config(&self.resolve(what)?)?;
            Ok(crate::time::parse_rfc3339(&rec.created))
        };
        let (before, since) = f.before_since();
        anchors.before = created_of(before)?;
        anchors.since = created_of(since)?;
        let all = opts.all || opts.limit.is_some() || f.implies_all();
        let mut list = self.list(all)?;
        list.retain(|c| f.matches(c, &anchors));
        if let Some(n) = opts.limit {
            list.truncate(n);
        }
        Ok(list)
    }

    /// Images of the store under this root that pass `filter`, in the store's order. `before` and
    /// `since` name images (an unknown one is an error, as in Docker).
    pub fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageSummary>> {
        let store = self.image_store()?;
        let created_of = |what: Option<&str>| -> Result<Option<i128>> {
            let Some(what) = what else { return Ok(None) };
            let img = store.image(what).map_err(|e| Error::Image {
                action: "resolving",
                image: what.to_owned(),
                cause: Box::new(e),
            })?;
            Ok(img.created.as_deref().and_then(crate::time::parse_rfc3339))
        };
        let (before, since) = filter.before_since();
        let anchors = ImageAnchors {
            before: created_of(before)?,
            since: created_of(since)?,
        };
        let images = store.images().map_err(|e| Error::Image {
            action: "listing",
            image: "images".into(),
            cause: Box::new(e),
        })?;
        Ok(images
            .into_iter()
            .filter_map(|image| {
                let references = filter.keep(&image, &anchors)?;
                Some(ImageSummary { image, references })
            })
            .collect())
    }

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
            "NetworkSettings": network_settings_json(&st.network_settings),
            "GraphDriver": {
                "Name": "overlay",
                "Data": { "UpperDir": path("upper"), "WorkDir": path("work"), "MergedDir": path("rootfs") },
            },
        }))
    }

    /// Docker-shaped `image inspect` JSON of one image of this root's store.
    pub fn inspect_image(&self, name: &str) -> Result<Value> {
        let store = self.image_store()?;
        let failed = |action: &'static str| {
            move |e: berth_store::Error| Error::Image {
                action,
                image: name.to_owned(),
                cause: Box::new(e),
            }
        };
        let img = store.image(name).map_err(failed("resolving"))?;
        let blob = store.blobs().read(&img.id).map_err(failed("reading"))?;
        let raw: Value = serde_json::from_slice(&blob).map_err(|cause| Error::ImageConfig {
            image: name.to_owned(),
            cause,
        })?;
        Ok(image_json(&img, &raw, &store.rootfs_paths(&img)))
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

/// Docker's image inspect JSON from an image, its raw config and its layers' directories.
fn image_json(img: &berth_store::Image, raw: &Value, lowers: &[std::path::PathBuf]) -> Value {
    let mut config = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null,
    });
    if let (Some(dst), Some(src)) = (
        config.as_object_mut(),
        raw.get("config").and_then(Value::as_object),
    ) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    let comment = raw
        .get("history")
        .and_then(Value::as_array)
        .and_then(|h| h.last())
        .and_then(|h| h.get("comment"))
        .cloned()
        .unwrap_or(json!(""));
    let lowers: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut v = json!({
        "Id": img.id.to_string(),
        "RepoTags": img
            .references
            .iter()
            .filter(|r| r.digest().is_none())
            .map(berth_oci::Reference::familiar)
            .collect::<Vec<_>>(),
        "RepoDigests": img.repo_digests(),
        "Parent": "",
        "Comment": comment,
        "Created": img.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": raw.get("author").cloned().unwrap_or(json!("")),
        "Config": config,
        "Architecture": raw.get("architecture").cloned().unwrap_or(json!("")),
        "Os": raw.get("os").cloned().unwrap_or(json!("")),
        "Size": img.size,
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lowers.join(":")}},
        "RootFS": {"Type": "layers", "Layers": img.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": img.added},
    });
    if let Some(variant) = raw.get("variant") {
        v["Variant"] = variant.clone();
    }
    v
}

/// Docker's `NetworkSettings`: the per-network endpoints, the ports, and the first network's
/// address at the top level (as Docker's legacy fields).
fn network_settings_json(ns: &crate::record::NetworkSettings) -> Value {
    let first = ns
        .networks
        .get("bridge")
        .or_else(|| ns.networks.values().next());
    let field =
        |f: fn(&crate::record::EndpointSettings) -> String| first.map(f).unwrap_or_default();
    let ports: serde_json::Map<String, Value> = ns
        .ports
        .iter()
        .map(|(k, b)| {
            let v = if b.is_empty() { Value::Null } else { json!(b) };
            (k.clone(), v)
        })
        .collect();
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": ports,
        "EndpointID": field(|e| e.endpoint_id.clone()),
        "Gateway": field(|e| e.gateway.clone()),
        "IPAddress": field(|e| e.ip_address.clone()),
        "IPPrefixLen": first.map(|e| e.ip_prefix_len).unwrap_or(0),
        "IPv6Gateway": field(|e| e.ipv6_gateway.clone()),
        "GlobalIPv6Address": field(|e| e.global_ipv6_address.clone()),
        "GlobalIPv6PrefixLen": first.map(|e| e.global_ipv6_prefix_len).unwrap_or(0),
        "MacAddress": field(|e| e.mac_address.clone()),
        "Networks": ns.networks,
    })
}
