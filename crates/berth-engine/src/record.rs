//! What berth records about a container, in Docker's shapes: `config.json` (written once at create:
//! identity, image, `Config`, `HostConfig`, mounts) and `state.json` (rewritten atomically on every
//! state change). `berth inspect` prints both merged, as Docker does.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `ROOT/containers/<id>/config.json`. The store's prune reads `Image` from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    /// Full container id (64 hex).
    pub id: String,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// Executable of the main process.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Image id ("sha256:<hex>").
    pub image: String,
    /// Name with Docker's leading slash ("/quiet_noether").
    pub name: String,
    /// The container's configuration.
    pub config: ContainerConfig,
    /// Host-side configuration.
    pub host_config: HostConfig,
    /// Bind and tmpfs mounts.
    pub mounts: Vec<MountPoint>,
    /// The networks the container joins when it starts (`--network`, `network connect`), in order
    /// (eth0 first), with what it asks of each; empty for `none`, `host` and `container:`.
    #[serde(default)]
    pub networking_config: NetworkingConfig,
}

/// Docker's `NetworkingConfig` as a container records it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    /// One per network, in the order joined.
    pub endpoints_config: Vec<EndpointConfig>,
}

/// One network a container joins.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfig {
    /// The network's name.
    pub network: String,
    /// Further names of the container on this network.
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    /// `--mac-address`.
    pub mac_address: String,
}

/// A published port's host side, in Docker's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// The host address ("" = all).
    pub host_ip: String,
    /// The host port ("" = chosen at start).
    pub host_port: String,
}

/// A container's place on one network while it runs, as `inspect` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// Further names.
    pub aliases: Vec<String>,
    /// Docker's legacy links (`/db:/web/db`).
    pub links: Vec<String>,
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id (the host end of its veth).
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The IPv4 gateway.
    pub gateway: String,
    /// The IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The IPv6 gateway.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// The IPv6 address.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// The MAC address.
    pub mac_address: String,
}

/// What a running container holds of the network (`NetworkSettings` in `inspect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// Per network name.
    pub networks: BTreeMap<String, EndpointSettings>,
    /// Published ports: `80/tcp` → bindings.
    pub ports: BTreeMap<String, Vec<PortBinding>>,
}

impl ContainerRecord {
    /// The name without Docker's leading slash.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix('/').unwrap_or(&self.name)
    }
}

/// Docker's `Config` of a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// Hostname inside the container.
    pub hostname: String,
    /// `-u` value or the image's User.
    pub user: String,
    /// Whether stdin is attached.
    pub attach_stdin: bool,
    /// Whether stdout is attached.
    pub attach_stdout: bool,
    /// Whether stderr is attached.
    pub attach_stderr: bool,
    /// Whether a pty is allocated.
    pub tty: bool,
    /// Whether stdin stays open (`-i`).
    pub open_stdin: bool,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// Command (after the entrypoint).
    pub cmd: Vec<String>,
    /// The image reference the user gave.
    pub image: String,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal `stop` sends first.
    pub stop_signal: Option<String>,
    /// `EXPOSE` and `--expose`: `80/tcp` → {}.
    #[serde(default)]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `--domainname`.
    #[serde(default)]
    pub domainname: String,
}

/// One `--ulimit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// Resource name ("nofile").
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// One `--device` (Docker's `HostConfig.Devices` entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// The device node on the host.
    pub path_on_host: String,
    /// Where it appears in the container.
    pub path_in_container: String,
    /// Cgroup access ("rwm").
    pub cgroup_permissions: String,
}

/// Docker's `HostConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `-v` values.
    pub binds: Vec<String>,
    /// `--tmpfs` targets and options.
    pub tmpfs: BTreeMap<String, String>,
    /// `--network`.
    pub network_mode: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--init`.
    pub init: bool,
    /// `--userns`.
    pub userns_mode: String,
    /// `--memory`, bytes (0 = unlimited).
    pub memory: i64,
    /// `--cpus` × 10⁹.
    pub nano_cpus: i64,
    /// The pids limit: `--pids-limit`, or 2048 when not given (None = unlimited).
    pub pids_limit: Option<i64>,
    /// `--device` mappings.
    #[serde(default)]
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule` values, as given.
    #[serde(default)]
    pub device_cgroup_rules: Vec<String>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// Always false: berth has no privileged mode yet.
    pub privileged: bool,
    /// Log driver (always json-file).
    pub log_config: LogConfig,
    /// `-p`: container port (`80/tcp`) → host bindings.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`.
    #[serde(default)]
    pub publish_all_ports: bool,
    /// `--link NAME[:ALIAS]`, as Docker records them (`/db:/web/db`).
    #[serde(default)]
    pub links: Vec<String>,
    /// `--add-host NAME:IP`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `--dns`.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub dns_options: Vec<String>,
}

/// Docker's `HostConfig.LogConfig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    /// Driver name.
    #[serde(rename = "Type")]
    pub kind: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            kind: "json-file".to_owned(),
        }
    }
}

/// One entry of Docker's `Mounts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// "bind" or "tmpfs".
    #[serde(rename = "Type")]
    pub kind: String,
    /// Host path (empty for tmpfs).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Mount options as given.
    pub mode: String,
    /// Whether writes are allowed.
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// A container's lifecycle status (Docker's `State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// Its process exited.
    Exited,
    /// Being removed.
    Removing,
    /// Removal failed half-way.
    Dead,
}

impl Status {
    /// Docker's lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
            Status::Dead => "dead",
        }
    }
}

/// `ROOT/containers/<id>/state.json`: Docker's `State` plus what berth needs to check liveness.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// Lifecycle status.
    pub status: Status,
    /// Whether the process runs.
    pub running: bool,
    /// Always false (no pause yet).
    pub paused: bool,
    /// Always false (no restart policies yet).
    pub restarting: bool,
    /// Whether the kernel's OOM killer killed it.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Whether removal failed half-way.
    pub dead: bool,
    /// Host pid of the container's init (0 when not running).
    pub pid: i32,
    /// Exit code (Docker's: code, or 128+signal).
    pub exit_code: i32,
    /// Start error, if any.
    pub error: String,
    /// Start time (RFC 3339) or Docker's zero time.
    pub started_at: String,
    /// Exit time (RFC 3339) or Docker's zero time.
    pub finished_at: String,
    /// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22), to detect pid reuse.
    #[serde(default)]
    pub pid_start: u64,
    /// The process that is the container's parent (monitor or foreground CLI).
    #[serde(default)]
    pub monitor_pid: i32,
    /// Its start time, as for `pid_start`.
    #[serde(default)]
    pub monitor_start: u64,
    /// The container's networks and ports while it runs.
    #[serde(default)]
    pub network_settings: NetworkSettings,
}

impl State {
    /// The state of a container that was just created.
    pub fn created() -> State {
        State {
            status: Status::Created,
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: crate::time::ZERO_TIME.to_owned(),
            finished_at: crate::time::ZERO_TIME.to_owned(),
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            network_settings: NetworkSettings::default(),
        }
    }

    /// Docker's `ps` STATUS column: "Up 3 seconds", "Exited (0) 5 seconds ago", "Created".
    pub fn human_status(&self) -> String {
        match self.status {
            Status::Running => format!(
                "Up {}",
                crate::time::human_duration(crate::time::since(&self.started_at))
            ),
            Status::Exited => format!(
                "Exited ({}) {} ago",
                self.exit_code,
                crate::time::human_duration(crate::time::since(&self.finished_at))
            ),
            Status::Created => "Created".to_owned(),
            Status::Removing => "Removal In Progress".to_owned(),
            Status::Dead => "Dead".to_owned(),
        }
    }
}
