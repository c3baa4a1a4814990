//! `berth network …` (Docker's flags and output) and the hidden `__dns` that serves names on
//! user-defined networks.

use crate::Globals;
use anyhow::Context;
use berth_engine::Engine;
use berth_net::config::{NetworkSpec, SubnetSpec};
use std::collections::BTreeMap;
use std::io::Write;

/// Network subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network.
    Create {
        /// Driver to manage the network (bridge).
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format (repeatable: one IPv4 and one IPv6).
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway for the subnet at the same position.
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container addresses from a sub-range of the subnet at the same position.
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        /// Enable IPv6 networking.
        #[arg(long)]
        ipv6: bool,
        /// Set metadata on a network (K=V).
        #[arg(long)]
        label: Vec<String>,
        /// Driver options (com.docker.network.bridge.name=NAME, com.docker.network.bridge.enable_icc=false).
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Network name.
        name: String,
    },
    /// List networks.
    #[command(visible_alias = "list")]
    Ls {
        /// Filter: driver=, id=, label=KEY[=VALUE], name=, type=custom|builtin.
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Format: table (default), json, or a template ({{.Name}}).
        #[arg(long)]
        format: Option<String>,
        /// Only display network ids.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Do not truncate the output.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Display detailed information on networks.
    Inspect {
        /// Format the output using a template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm {
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        /// Add a network-scoped alias for the container.
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Force the container to disconnect from a network.
        #[arg(short = 'f', long)]
        force: bool,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
}

fn kv(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn subnets(
    subnet: &[String],
    gateway: &[String],
    ip_range: &[String],
) -> anyhow::Result<Vec<SubnetSpec>> {
    anyhow::ensure!(
        gateway.len() <= subnet.len().max(1) && ip_range.len() <= subnet.len().max(1),
        "every --gateway and --ip-range needs a --subnet"
    );
    if subnet.is_empty() {
        anyhow::ensure!(
            gateway.is_empty() && ip_range.is_empty(),
            "--gateway and --ip-range need a --subnet"
        );
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, s) in subnet.iter().enumerate() {
        out.push(SubnetSpec {
            subnet: Some(s.parse().with_context(|| {
                format!("invalid subnet {s:?}: expected CIDR such as 10.1.0.0/16")
            })?),
            gateway: gateway
                .get(i)
                .map(|g| {
                    g.parse()
                        .with_context(|| format!("invalid gateway {g:?}: not an IP address"))
                })
                .transpose()?,
            ip_range: ip_range
                .get(i)
                .map(|r| {
                    r.parse()
                        .with_context(|| format!("invalid ip-range {r:?}: expected CIDR"))
                })
                .transpose()?,
        });
    }
    Ok(out)
}

/// Runs a network command.
pub fn run(g: &Globals, c: NetworkCommand) -> anyhow::Result<u8> {
    let engine = Engine::open(&g.root, &g.run_root)
        .with_context(|| format!("opening state root {}", g.root.display()))?;
    let mut out = std::io::stdout().lock();
    match c {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            ipv6,
            label,
            opt,
            name,
        } => {
            let spec = NetworkSpec {
                name,
                driver: Some(driver),
                subnets: subnets(&subnet, &gateway, &ip_range)?,
                internal,
                ipv6,
                labels: kv(&label),
                options: kv(&opt),
            };
            let n = engine.network_create(spec)?;
            writeln!(out, "{}", n.id)?;
            Ok(0)
        }
        NetworkCommand::Ls {
            filter,
            format,
            quiet,
            no_trunc,
        } => {
            let mut rows = Vec::new();
            for n in engine.network_list()? {
                if !matches(&n, &filter)? {
                    continue;
                }
                if quiet {
                    writeln!(out, "{}", if no_trunc { &n.id } else { &n.id[..12] })?;
                    continue;
                }
                rows.push(serde_json::json!({
                    "ID": if no_trunc { n.id.clone() } else { n.id[..12].to_owned() },
                    "Name": n.name,
                    "Driver": n.driver,
                    "Scope": "local",
                    "IPv6": n.ipv6,
                    "Internal": n.internal,
                    "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                    "CreatedAt": n.created,
                }));
            }
            if !quiet {
                super::format::write_rows(
                    &mut out,
                    format.as_deref().unwrap_or("table"),
                    "{{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}",
                    &rows,
                    |f| match f {
                        "ID" => "NETWORK ID".to_owned(),
                        other => other.to_ascii_uppercase(),
                    },
                )?;
            }
            Ok(0)
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut vals = Vec::new();
            let mut failed = false;
            for n in &networks {
                match engine.network_inspect(n) {
                    Ok(v) => vals.push(v),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            if let Some(f) = format {
                let f = super::format::unescape(&f);
                for v in &vals {
                    writeln!(out, "{}", super::format::render(&f, v)?)?;
                }
            } else {
                let mut buf = Vec::new();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
                serde::Serialize::serialize(&vals, &mut ser)?;
                out.write_all(&buf)?;
                out.write_all(b"\n")?;
            }
            Ok(if failed { 1 } else { 0 })
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = false;
            for n in &networks {
                match engine.network_remove(n) {
                    Ok(_) => writeln!(out, "{n}")?,
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        NetworkCommand::Prune { force: _ } => {
            let removed = engine.network_prune()?;
            if !removed.is_empty() {
                writeln!(out, "Deleted Networks:")?;
                for n in removed {
                    writeln!(out, "{n}")?;
                }
            }
            Ok(0)
        }
        NetworkCommand::Connect {
            alias,
            ip,
            ip6,
            network,
            container,
        } => {
            engine.network_connect(&network, &container, &alias, ip.as_deref(), ip6.as_deref())?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => {
            engine.network_disconnect(&network, &container, force)?;
            Ok(0)
        }
    }
}

/// `network ls --filter`: every filter must match (values of one key: any of them).
fn matches(n: &berth_net::config::Network, filters: &[String]) -> anyhow::Result<bool> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        anyhow::ensure!(
            matches!(k, "driver" | "id" | "label" | "name" | "type" | "scope"),
            "invalid filter '{k}'"
        );
        by_key.entry(k).or_default().push(v);
    }
    Ok(by_key.iter().all(|(k, vals)| {
        vals.iter().any(|v| match *k {
            "driver" => n.driver == *v,
            "id" => n.id.starts_with(v),
            "name" => n.name.contains(v),
            "scope" => *v == "local",
            "type" => match *v {
                "builtin" => n.is_default(),
                "custom" => !n.is_default(),
                _ => false,
            },
            _ => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(*v),
            },
        })
    }))
}

/// `__dns`: the DNS server of berth's networks (started on demand; exits when no network is left).
pub fn serve_dns(g: &Globals) -> anyhow::Result<u8> {
    berth_net::dns::serve(&g.run_root)?;
    Ok(0)
}
