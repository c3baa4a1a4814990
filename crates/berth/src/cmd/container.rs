//! Container commands: run, create, start, ps, logs, exec, stop, kill, wait, rm, inspect (Docker's
//! flags and output), and the hidden `__monitor` that watches a detached container.

use crate::Globals;
use anyhow::Context;
use berth_engine::filter::ContainerFilter;
use berth_engine::logs::LogsOptions;
use berth_engine::{ContainerSummary, CreateOptions, Engine, ExecOptions, ListOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Flags shared by `run` and `create`.
#[derive(clap::Args, Debug, Clone)]
pub struct CreateFlags {
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Container name.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (K=V, or K to copy from this environment).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Bind mount HOST:CONTAINER[:ro].
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs: DIR[:options].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the image's ENTRYPOINT.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Limit the number of processes (default 2048; 0 or -1 = unlimited).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Add a host device: HOST[:CONTAINER][:PERMISSIONS] (permissions some of rwm).
    #[arg(long)]
    pub device: Vec<String>,
    /// Allow devices in the device cgroup: "TYPE MAJOR:MINOR ACCESS" (e.g. 'c 5:1 rw').
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Ulimit options (name=soft[:hard]).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Connect to networks: bridge (the default), NAME, none, host, or container:NAME (repeatable).
    #[arg(long, visible_alias = "net")]
    pub network: Vec<String>,
    /// Add network-scoped aliases for the container (on its first network).
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address on the first network (e.g. 172.30.100.104).
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address on the first network.
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33).
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip, ip may be host-gateway).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", visible_alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Publish a container's port(s) to the host: [IP:][HOSTPORT:]CPORT[/PROTO], ranges allowed.
    #[arg(short = 'p', long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random host ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Add a link to another container (NAME[:ALIAS]).
    #[arg(long)]
    pub link: Vec<String>,
    /// Container NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security options (no-new-privileges=false, seccomp=unconfined|FILE).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Run an init inside the container.
    #[arg(long)]
    pub init: bool,
    /// User namespace mode: host (default), or auto (root maps to a host id range of its own).
    #[arg(long)]
    pub userns: Option<String>,
    /// Set metadata (K=V).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Logging driver: json-file (the default), local, none, journald or syslog.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (K=V): max-size, max-file, compress, tag, labels, env, …
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Pull the image before creating: missing (when not in the store), always, or never.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: super::dist::PullPolicy,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, num_args = 1.., value_name = "IMAGE [COMMAND [ARG...]]")]
    pub args: Vec<String>,
}

impl CreateFlags {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            image: self.args[0].clone(),
            cmd: self.args[1..].to_vec(),
            name: self.name.clone(),
            interactive: self.interactive,
            tty: self.tty,
            auto_remove: self.rm,
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            volumes: self.volume.clone(),
            tmpfs: self.tmpfs.clone(),
            read_only: self.read_only,
            hostname: self.hostname.clone(),
            entrypoint: self.entrypoint.clone(),
            memory: self.memory.clone(),
            cpus: self.cpus.clone(),
            pids_limit: self.pids_limit,
            devices: self.device.clone(),
            device_cgroup_rules: self.device_cgroup_rule.clone(),
            ulimits: self.ulimit.clone(),
            networks: self.network.clone(),
            network_aliases: self.network_alias.clone(),
            ip: self.ip.clone(),
            ip6: self.ip6.clone(),
            mac_address: self.mac_address.clone(),
            add_hosts: self.add_host.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            links: self.link.clone(),
            domainname: self.domainname.clone(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            security_opt: self.security_opt.clone(),
            init: self.init,
            userns: self.userns.clone(),
            labels: self.label.clone(),
            log_driver: self.log_driver.clone(),
            log_opts: self.log_opt.clone(),
        }
    }
}

/// Container subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a new container from an image.
    Run {
        /// Run in the background and print the container id.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Create flags, image and command.
        #[command(flatten)]
        flags: Box<CreateFlags>,
    },
    /// Create a new container.
    Create {
        /// Create flags, image and command.
        #[command(flatten)]
        flags: Box<CreateFlags>,
    },
    /// Start stopped containers.
    Start {
        /// Attach stdout/stderr and forward signals.
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach stdin.
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps {
        /// Show all containers (default shows just running).
        #[arg(short = 'a', long)]
        all: bool,
        /// Only display container ids.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Don't truncate output.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Format: table (default), json, or a template ({{.Names}}, table {{.ID}}\t{{.Status}}).
        #[arg(long)]
        format: Option<String>,
        /// Filter (Docker's keys): id, name, label=KEY[=VALUE], status, exited, ancestor, before, since,
        /// volume, network.
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Show the n last created containers (includes all states).
        #[arg(short = 'n', long = "last")]
        last: Option<usize>,
        /// Show the latest created container (includes all states).
        #[arg(short = 'l', long)]
        latest: bool,
    },
    /// Fetch the logs of a container.
    Logs {
        /// Follow log output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Number of lines to show from the end ("all" for all).
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show timestamps.
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Container.
        container: String,
    },
    /// Run a command in a running container.
    Exec {
        /// Keep STDIN open.
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Allocate a pseudo-TTY.
        #[arg(short = 't', long)]
        tty: bool,
        /// User (name|uid[:group|gid]).
        #[arg(short = 'u', long)]
        user: Option<String>,
        /// Set environment variables.
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// Working directory inside the container.
        #[arg(short = 'w', long = "workdir")]
        workdir: Option<String>,
        /// CONTAINER COMMAND [ARG...]
        #[arg(required = true, trailing_var_arg = true, num_args = 2.., value_name = "CONTAINER COMMAND [ARG...]")]
        args: Vec<String>,
    },
    /// Stop running containers (stop signal, then SIGKILL after a grace period).
    Stop {
        /// Seconds to wait before killing.
        #[arg(
            short = 't',
            long = "time",
            visible_alias = "timeout",
            default_value_t = 10
        )]
        time: u64,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers.
    Kill {
        /// Signal to send (name or number).
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until containers stop, then print their exit codes.
    Wait {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Force the removal of a running container (uses SIGKILL).
        #[arg(short = 'f', long)]
        force: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display detailed information on containers.
    Inspect {
        /// Format the output using a Go template subset ({{.State.Status}}, {{json .Config}}).
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// The container's pid 1 under `--init` (internal).
    #[command(name = "__init", hide = true)]
    Init {
        /// The command to run as pid 2.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List port mappings of a container.
    Port {
        /// Container.
        container: String,
        /// PRIVATE_PORT[/PROTO]: only this port.
        port: Option<String>,
    },
    /// Watches a detached container (internal).
    #[command(name = "__monitor", hide = true)]
    Monitor {
        /// Container id.
        id: String,
    },
}

/// Runs a container command.
pub fn run(g: &Globals, c: ContainerCommand) -> anyhow::Result<u8> {
    if let ContainerCommand::Init { args } = &c {
        // Inside the container: touch nothing of the host's state root.
        let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
        return Ok(exit_byte(berth_engine::init::run(args)));
    }
    let engine = Engine::open(&g.root, &g.run_root)
        .with_context(|| format!("opening state root {}", g.root.display()))?;
    match c {
        ContainerCommand::Run { detach, flags } => {
            let opts = flags.options();
            let create = |durable| {
                super::dist::create_pulling(g, &opts.image, flags.pull, || {
                    engine.create(&opts, durable)
                })
            };
            if detach {
                let p = create(true)?;
                let id = p.record.id.clone();
                drop(p);
                engine.start_detached(&id)?;
                println!("{id}");
                Ok(0)
            } else {
                let p = create(!opts.auto_remove)?;
                let code = engine.run_foreground(p)?;
                Ok(exit_byte(code))
            }
        }
        ContainerCommand::Create { flags } => {
            let opts = flags.options();
            let p = super::dist::create_pulling(g, &opts.image, flags.pull, || {
                engine.create(&opts, true)
            })?;
            println!("{}", p.record.id);
            Ok(0)
        }
        ContainerCommand::Start {
            attach,
            interactive,
            containers,
        } => {
            if attach || interactive {
                anyhow::ensure!(
                    containers.len() == 1,
                    "you cannot start and attach multiple containers at once"
                );
                let id = engine.resolve(&containers[0])?;
                let code = engine.start_attached(&id, interactive)?;
                return Ok(exit_byte(code));
            }
            each(&containers, |c| {
                let id = engine.resolve(c)?;
                engine.start_detached(&id)?;
                println!("{c}");
                Ok(())
            })
        }
        ContainerCommand::Ps {
            all,
            quiet,
            no_trunc,
            format,
            filter,
            last,
            latest,
        } => {
            let opts = ListOptions {
                all,
                filter: ContainerFilter::from_args(&filter)?,
                limit: if latest { Some(1) } else { last },
            };
            ps(&engine, &opts, quiet, no_trunc, format.as_deref())
        }
        ContainerCommand::Logs {
            follow,
            tail,
            timestamps,
            container,
        } => {
            let tail = if tail == "all" || tail == "-1" {
                None
            } else {
                Some(
                    tail.parse::<usize>()
                        .with_context(|| format!("invalid --tail value {tail:?}"))?,
                )
            };
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            engine.logs(
                &container,
                &LogsOptions {
                    follow,
                    tail,
                    timestamps,
                },
                &mut stdout.lock(),
                &mut stderr.lock(),
            )?;
            Ok(0)
        }
        ContainerCommand::Exec {
            interactive,
            tty,
            user,
            env,
            workdir,
            args,
        } => {
            // The process that enters the container is a fork of this one: let it be a fork of a
            // sealed copy of berth, never of the host's binary (CVE-2019-5736).
            berth_runtime::exe::run_from_sealed_copy()?;
            let code = engine.exec(
                &args[0],
                &ExecOptions {
                    cmd: args[1..].to_vec(),
                    interactive,
                    tty,
                    user,
                    env,
                    workdir,
                },
            )?;
            Ok(exit_byte(code))
        }
        ContainerCommand::Stop { time, containers } => each(&containers, |c| {
            engine.stop(c, Duration::from_secs(time))?;
            println!("{c}");
            Ok(())
        }),
        ContainerCommand::Kill { signal, containers } => each(&containers, |c| {
            engine.kill(c, &signal)?;
            println!("{c}");
            Ok(())
        }),
        ContainerCommand::Wait { containers } => each(&containers, |c| {
            println!("{}", engine.wait(c)?);
            Ok(())
        }),
        ContainerCommand::Rm { force, containers } => each(&containers, |c| {
            engine.remove(c, force)?;
            println!("{c}");
            Ok(())
        }),
        ContainerCommand::Inspect { format, containers } => {
            let mut out = Vec::new();
            let mut failed = false;
            for c in &containers {
                match engine.inspect(c) {
                    Ok(v) => out.push(v),
                    // Like `docker inspect`, a name that is no container may be an image.
                    Err(_) if engine.resolve(c).is_err() => match engine.inspect_image(c) {
                        Ok(v) => out.push(v),
                        Err(_) => {
                            eprintln!("Error: no such object: {c}");
                            failed = true;
                        }
                    },
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            let mut so = std::io::stdout().lock();
            if let Some(f) = format {
                let f = super::format::unescape(&f);
                for v in &out {
                    writeln!(so, "{}", super::format::render(&f, v)?)?;
                }
                return Ok(if failed { 1 } else { 0 });
            }
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&out, &mut ser)?;
            so.write_all(&buf)?;
            so.write_all(b"\n")?;
            Ok(if failed { 1 } else { 0 })
        }
        ContainerCommand::Init { .. } => anyhow::bail!("__init runs only as a container's pid 1"),
        ContainerCommand::Port { container, port } => {
            let ports = engine.ports(&container)?;
            let want = port.map(|p| {
                if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                }
            });
            let mut out = std::io::stdout().lock();
            let mut found = false;
            for (key, bindings) in &ports {
                if want.as_ref().is_some_and(|w| w != key) {
                    continue;
                }
                for b in bindings {
                    found = true;
                    let ip = if b.host_ip.contains(':') {
                        format!("[{}]", b.host_ip)
                    } else {
                        b.host_ip.clone()
                    };
                    if want.is_some() {
                        writeln!(out, "{ip}:{}", b.host_port)?;
                    } else {
                        writeln!(out, "{key} -> {ip}:{}", b.host_port)?;
                    }
                }
            }
            if let (Some(w), false) = (&want, found) {
                anyhow::bail!("no public port '{w}' published for {container}");
            }
            Ok(0)
        }

        ContainerCommand::Monitor { id } => {
            let code = engine.monitor(&id)?;
            Ok(exit_byte(code))
        }
    }
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// Runs `f` for each container; like Docker, reports each failure and exits 1 if any failed.
fn each(
    containers: &[String],
    mut f: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    let mut failed = false;
    for c in containers {
        if let Err(e) = f(c) {
            eprintln!("Error response from daemon: {e:#}");
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn created_at(rfc: &str) -> String {
    // "2026-11-28T09:30:00.123Z" → "2026-11-28 09:30:00 +0000 UTC", as Docker's ps json prints.
    let base = rfc.split('.').next().unwrap_or(rfc).trim_end_matches('Z');
    format!("{} +0000 UTC", base.replacen('T', " ", 1))
}

fn ps(
    engine: &Engine,
    opts: &ListOptions,
    quiet: bool,
    no_trunc: bool,
    format: Option<&str>,
) -> anyhow::Result<u8> {
    let list = engine.list_containers(opts)?;
    let short = |id: &str| {
        if no_trunc {
            id.to_owned()
        } else {
            id[..12].to_owned()
        }
    };
    let mut out = std::io::stdout().lock();
    if quiet {
        for c in &list {
            writeln!(out, "{}", short(&c.record.id))?;
        }
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = list.iter().map(|c| ps_row(c, no_trunc)).collect();
    super::format::write_rows(
        &mut out,
        format.unwrap_or("table"),
        PS_TABLE,
        &rows,
        ps_header,
    )?;
    Ok(0)
}

/// Docker's default `ps` table.
const PS_TABLE: &str =
    "{{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}";

fn ps_header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".to_owned(),
        "RunningFor" => "CREATED".to_owned(),
        "CreatedAt" => "CREATED AT".to_owned(),
        "LocalVolumes" => "LOCAL VOLUMES".to_owned(),
        other => other.to_ascii_uppercase(),
    }
}

/// One container as `ps --format` sees it (Docker's field names).
fn ps_row(c: &ContainerSummary, no_trunc: bool) -> serde_json::Value {
    let cmd = c.command();
    let ago = format!(
        "{} ago",
        berth_engine::time::human_duration(berth_engine::time::since(&c.record.created))
    );
    serde_json::json!({
        "Command": format!("\"{}\"", if no_trunc { cmd } else { ellipsis(&cmd, 20) }),
        "CreatedAt": created_at(&c.record.created),
        "ID": if no_trunc { c.record.id.clone() } else { c.record.id[..12].to_owned() },
        "Image": c.record.config.image,
        "Labels": c.record.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": c.record.short_name(),
        "Networks": c.record.host_config.network_mode,
        "Ports": ports_column(&c.state.network_settings.ports),
        "RunningFor": ago,
        "Size": "0B",
        "State": c.state.status.as_str(),
        "Status": c.state.human_status(),
    })
}

/// Docker's `ps` PORTS column: `0.0.0.0:8080->80/tcp, 53/udp`.
pub(crate) fn ports_column(
    ports: &std::collections::BTreeMap<String, Vec<berth_engine::record::PortBinding>>,
) -> String {
    let mut out = Vec::new();
    for (key, bindings) in ports {
        if bindings.is_empty() {
            out.push(key.clone());
        }
        for b in bindings {
            let ip = if b.host_ip.contains(':') {
                format!("[{}]", b.host_ip)
            } else {
                b.host_ip.clone()
            };
            out.push(format!("{ip}:{}->{key}", b.host_port));
        }
    }
    out.join(", ")
}

/// A container-specific exit code carried by an error (126, 127), if any.
pub fn exit_code_of(e: &(dyn std::error::Error + 'static)) -> Option<u8> {
    let code = e.downcast_ref::<berth_engine::Error>()?.exit_code();
    (code != 125).then(|| exit_byte(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_helpers() {
        assert_eq!(ellipsis("sleep 100", 20), "sleep 100");
        assert_eq!(
            ellipsis("sh -c 'while true; do sleep 1; done'", 20)
                .chars()
                .count(),
            20
        );
        assert_eq!(
            created_at("2026-11-28T09:30:00.123456789Z"),
            "2026-11-28 09:30:00 +0000 UTC"
        );
    }
}
