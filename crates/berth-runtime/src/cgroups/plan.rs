//! Pure planning: which cgroup file gets which value, from an OCI `LinuxResources`, for v1 and v2.
//! No I/O here, so all of it is unit-tested without root.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// The cgroup version a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Legacy hierarchies, one per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// One write: `value` into `file`, in the directory of `controller` (v1) or the single directory (v2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The v1 controller whose hierarchy holds `file` (on v2 informational only).
    pub controller: &'static str,
    /// The file name inside the cgroup directory.
    pub file: &'static str,
    /// What is written.
    pub value: String,
    /// Skip silently when the file does not exist (feature not compiled in or not enabled).
    pub optional: bool,
}

fn w(controller: &'static str, file: &'static str, value: impl Into<String>) -> Write {
    Write {
        controller,
        file,
        value: value.into(),
        optional: false,
    }
}

fn opt(controller: &'static str, file: &'static str, value: impl Into<String>) -> Write {
    Write {
        controller,
        file,
        value: value.into(),
        optional: true,
    }
}

/// The writes that apply `res` on cgroup `version`, in the order they must happen.
pub fn plan(version: Version, res: &LinuxResources) -> Vec<Write> {
    match version {
        Version::V1 => plan_v1(res),
        Version::V2 => plan_v2(res),
    }
}

fn limit(v: i64) -> String {
    if v < 0 { "-1".into() } else { v.to_string() }
}

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

fn plan_v1(res: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(cpu) = res.cpu() {
        if let Some(cpus) = cpu.cpus() {
            out.push(w("cpuset", "cpuset.cpus", cpus.as_str()));
        }
        if let Some(mems) = cpu.mems() {
            out.push(w("cpuset", "cpuset.mems", mems.as_str()));
        }
        if let Some(shares) = cpu.shares() {
            out.push(w("cpu", "cpu.shares", shares.to_string()));
        }
        // The period first: the kernel checks quota against the current period.
        if let Some(period) = cpu.period() {
            out.push(w("cpu", "cpu.cfs_period_us", period.to_string()));
        }
        if let Some(quota) = cpu.quota() {
            out.push(w("cpu", "cpu.cfs_quota_us", limit(quota)));
        }
    }
    if let Some(mem) = res.memory() {
        // memsw must stay >= limit: raise memsw to unlimited, set the limit, then memsw.
        if mem.limit().is_some() && mem.swap().is_some() {
            out.push(opt("memory", "memory.memsw.limit_in_bytes", "-1"));
        }
        if let Some(l) = mem.limit() {
            out.push(w("memory", "memory.limit_in_bytes", limit(l)));
        }
        if let Some(s) = mem.swap() {
            out.push(opt("memory", "memory.memsw.limit_in_bytes", limit(s)));
        }
        if let Some(r) = mem.reservation() {
            out.push(w("memory", "memory.soft_limit_in_bytes", limit(r)));
        }
        if let Some(s) = mem.swappiness() {
            out.push(opt("memory", "memory.swappiness", s.to_string()));
        }
        if mem.disable_oom_killer() == Some(true) {
            out.push(w("memory", "memory.oom_control", "1"));
        }
    }
    if let Some(pids) = res.pids() {
        out.push(w("pids", "pids.max", max_or(pids.limit())));
    }
    if let Some(b) = res.block_io()
        && let Some(weight) = b.weight()
    {
        out.push(opt("blkio", "blkio.weight", weight.to_string()));
    }
    if let Some(devices) = res.devices() {
        out.push(w("devices", "devices.deny", "a"));
        for d in devices {
            let file = if d.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            out.push(w("devices", file, device_rule(d)));
        }
    }
    out
}

/// The v1 `devices.allow`/`devices.deny` line for `d`: "c 1:3 rwm", "a *:* rwm".
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => 'p',
        Some(LinuxDeviceType::A) | None => 'a',
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or_else(|| "*".to_owned(), |n| n.to_string())
    };
    let access = d
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!("{t} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// cgroup v1 `cpu.shares` (2..=262144) to v2 `cpu.weight` (1..=10000), as runc and crun convert.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

fn plan_v2(res: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(cpu) = res.cpu() {
        if let Some(cpus) = cpu.cpus() {
            out.push(w("cpuset", "cpuset.cpus", cpus.as_str()));
        }
        if let Some(mems) = cpu.mems() {
            out.push(w("cpuset", "cpuset.mems", mems.as_str()));
        }
        if let Some(shares) = cpu.shares() {
            out.push(w("cpu", "cpu.weight", shares_to_weight(shares).to_string()));
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let quota = cpu.quota().map_or_else(|| "max".to_owned(), max_or);
            let period = cpu.period().unwrap_or(100_000);
            out.push(w("cpu", "cpu.max", format!("{quota} {period}")));
        }
    }
    if let Some(mem) = res.memory() {
        if let Some(l) = mem.limit() {
            out.push(w("memory", "memory.max", max_or(l)));
        }
        // OCI swap is memory+swap; v2 counts swap alone.
        if let Some(s) = mem.swap() {
            let v = match mem.limit() {
                _ if s < 0 => "max".to_owned(),
                Some(l) if l >= 0 => (s.saturating_sub(l)).max(0).to_string(),
                _ => s.to_string(),
            };
            out.push(opt("memory", "memory.swap.max", v));
        }
        if let Some(r) = mem.reservation() {
            out.push(w("memory", "memory.low", max_or(r)));
        }
    }
    if let Some(pids) = res.pids() {
        out.push(w("pids", "pids.max", max_or(pids.limit())));
    }
    if let Some(b) = res.block_io()
        && let Some(weight) = b.weight()
    {
        out.push(opt("io", "io.bfq.weight", weight.to_string()));
    }
    // One OOM kill takes the whole container, as a v1 container's init dying would.
    out.push(opt("memory", "memory.oom.group", "1"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    fn files(ws: &[Write]) -> Vec<(&str, &str)> {
        ws.iter().map(|w| (w.file, w.value.as_str())).collect()
    }

    fn sample() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(128 << 20)
                    .reservation(32 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .period(100_000u64)
                    .shares(512u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
            .devices(vec![
                LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .typ(LinuxDeviceType::C)
                    .major(1)
                    .minor(3)
                    .access("rwm")
                    .build()
                    .unwrap(),
                LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .typ(LinuxDeviceType::B)
                    .build()
                    .unwrap(),
            ])
            .build()
            .unwrap()
    }

    #[test]
    fn v1_plan_orders_and_formats_values() {
        let p = plan(Version::V1, &sample());
        assert_eq!(
            files(&p),
            vec![
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "67108864"),
                ("memory.memsw.limit_in_bytes", "134217728"),
                ("memory.soft_limit_in_bytes", "33554432"),
                ("pids.max", "42"),
                ("devices.deny", "a"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.deny", "b *:* rwm"),
            ]
        );
        assert_eq!(p[0].controller, "cpu");
        assert!(p[3].optional && !p[4].optional);
    }

    #[test]
    fn v2_plan_converts_units() {
        let p = plan(Version::V2, &sample());
        assert_eq!(
            files(&p),
            vec![
                ("cpu.weight", "20"),
                ("cpu.max", "50000 100000"),
                ("memory.max", "67108864"),
                ("memory.swap.max", "67108864"),
                ("memory.low", "33554432"),
                ("pids.max", "42"),
                ("memory.oom.group", "1"),
            ]
        );
    }

    #[test]
    fn unlimited_values() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(-1)
                    .swap(-1)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .cpu(LinuxCpuBuilder::default().quota(-1).build().unwrap())
            .build()
            .unwrap();
        let v1 = plan(Version::V1, &r);
        assert!(files(&v1).contains(&("pids.max", "max")));
        assert!(files(&v1).contains(&("memory.limit_in_bytes", "-1")));
        assert!(files(&v1).contains(&("cpu.cfs_quota_us", "-1")));
        let v2 = plan(Version::V2, &r);
        assert!(files(&v2).contains(&("memory.max", "max")));
        assert!(files(&v2).contains(&("memory.swap.max", "max")));
        assert!(files(&v2).contains(&("cpu.max", "max 100000")));
    }

    #[test]
    fn empty_resources_plan_nothing_on_v1() {
        let r = LinuxResources::default();
        assert!(plan(Version::V1, &r).is_empty());
        assert_eq!(
            files(&plan(Version::V2, &r)),
            vec![("memory.oom.group", "1")]
        );
    }

    #[test]
    fn weight_conversion_matches_known_points() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 100);
    }
}
