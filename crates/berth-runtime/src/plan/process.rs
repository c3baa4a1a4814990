//! Planning of the user's process: argv/envp as C strings, the `$PATH` candidates for `args[0]`, the
//! user and groups, capability masks, clamped rlimits. Shared by `spawn` and `exec`.

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

use super::{PlanError, cstring};
use crate::seccomp::Program;

/// Capability masks (bit n = capability n) to apply before `execve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CapsPlan {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// Highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
}

/// One resource limit, already clamped to the host's hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RlimitPlan {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
    /// Index into the spec's rlimit list, for error messages.
    pub index: usize,
}

/// Everything the child needs to become the user's process, precomputed.
pub(crate) struct ProcessPlan<'a> {
    /// `args[0]` as the user wrote it, for error messages.
    pub command: String,
    _args: Vec<CString>,
    /// NULL-terminated argv pointing into `_args` (heap data; stays valid when the plan moves).
    pub argv: Vec<*const c_char>,
    _env: Vec<CString>,
    /// NULL-terminated envp.
    pub envp: Vec<*const c_char>,
    /// Paths to try with `execve`, in order (one if `args[0]` has a `/`).
    pub candidates: Vec<CString>,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: CapsPlan,
    pub rlimits: Vec<RlimitPlan>,
    pub no_new_privs: bool,
    pub seccomp: Option<&'a Program>,
    pub oom_score_adj: Option<CString>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl<'a> ProcessPlan<'a> {
    /// Plans `process`; `seccomp` is the compiled filter to install last, if any.
    pub(crate) fn build(
        process: &Process,
        seccomp: Option<&'a Program>,
    ) -> Result<ProcessPlan<'a>, PlanError> {
        let args_s = process.args().as_deref().unwrap_or_default();
        let Some(arg0) = args_s.first().filter(|a| !a.is_empty()) else {
            return Err(PlanError::NoArgs);
        };
        let args = args_s
            .iter()
            .map(|a| cstring(a, "process argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let env_s = process.env().as_deref().unwrap_or_default();
        let env = env_s
            .iter()
            .map(|e| cstring(e, "environment entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let argv = null_terminated(&args);
        let envp = null_terminated(&env);

        let candidates = if arg0.contains('/') {
            vec![cstring(arg0, "process argument")?]
        } else {
            let path = env_s
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or(DEFAULT_PATH);
            path.split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    cstring(
                        &format!("{}/{arg0}", dir.trim_end_matches('/')),
                        "PATH entry",
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        };

        let cwd = process.cwd().to_str().unwrap_or("/");
        let cwd = cstring(if cwd.is_empty() { "/" } else { cwd }, "cwd")?;
        let user = process.user();
        let mut groups = user.additional_gids().clone().unwrap_or_default();
        groups.dedup();

        let caps = match process.capabilities() {
            Some(c) => CapsPlan {
                bounding: mask(c.bounding().as_ref())?,
                effective: mask(c.effective().as_ref())?,
                permitted: mask(c.permitted().as_ref())?,
                inheritable: mask(c.inheritable().as_ref())?,
                ambient: mask(c.ambient().as_ref())?,
                last_cap: last_cap(),
            },
            None => CapsPlan {
                bounding: 0,
                effective: 0,
                permitted: 0,
                inheritable: 0,
                ambient: 0,
                last_cap: last_cap(),
            },
        };
        let mut rlimits = Vec::new();
        for (index, r) in process
            .rlimits()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let resource = rlimit_resource(r.typ());
            rlimits.push(clamp_rlimit(
                resource,
                r.soft(),
                r.hard(),
                crate::sys::hard_limit(resource),
                index,
            ));
        }
        Ok(ProcessPlan {
            command: arg0.clone(),
            _args: args,
            argv,
            _env: env,
            envp,
            candidates,
            cwd,
            uid: user.uid(),
            gid: user.gid(),
            groups,
            umask: user.umask(),
            caps,
            rlimits,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            seccomp,
            oom_score_adj: process
                .oom_score_adj()
                .map(|v| cstring(&v.to_string(), "oom_score_adj"))
                .transpose()?,
        })
    }
}

fn null_terminated(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Bit mask of a capability set; unknown names are an error, not silently dropped.
pub(crate) fn mask(set: Option<&Capabilities>) -> Result<u64, PlanError> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: caps::Capability = name
            .parse()
            .map_err(|_| PlanError::UnknownCapability(name.clone()))?;
        m |= 1u64 << cap.index();
    }
    Ok(m)
}

/// The kernel's highest capability number, read once.
pub(crate) fn last_cap() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
    })
}

fn rlimit_resource(t: PosixRlimitType) -> i32 {
    use PosixRlimitType as T;
    (match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as i32
}

/// Without CAP_SYS_RESOURCE in the host's user namespace a hard limit cannot rise above the host's:
/// lower it, and keep soft ≤ hard.
pub(crate) fn clamp_rlimit(
    resource: i32,
    soft: u64,
    hard: u64,
    host_hard: u64,
    index: usize,
) -> RlimitPlan {
    let hard = hard.min(host_hard);
    RlimitPlan {
        resource,
        soft: soft.min(hard),
        hard,
        index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, ProcessBuilder, UserBuilder};

    #[test]
    fn docker_default_caps_mask() {
        let set: Capabilities = crate::defaults::docker_capabilities().into_iter().collect();
        assert_eq!(mask(Some(&set)).unwrap(), 0x00000000a80425fb);
    }

    #[test]
    fn path_candidates_from_env() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string(), "-c".into(), "true".into()])
            .env(vec!["PATH=/bin::/usr/bin/".to_string()])
            .cwd("/")
            .user(
                UserBuilder::default()
                    .uid(1u32)
                    .gid(2u32)
                    .additional_gids(vec![3u32, 3])
                    .build()
                    .unwrap(),
            )
            .capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding([Capability::Kill].into_iter().collect::<Capabilities>())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let plan = ProcessPlan::build(&p, None).unwrap();
        let c: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap())
            .collect();
        assert_eq!(c, ["/bin/sh", "./sh", "/usr/bin/sh"]);
        assert_eq!(plan.argv.len(), 4);
        assert!(plan.argv[3].is_null());
        assert_eq!(plan.envp.len(), 2);
        assert_eq!(
            (plan.uid, plan.gid, plan.groups.as_slice()),
            (1, 2, &[3][..])
        );
        assert_eq!(plan.caps.bounding, 1 << 5);
    }

    #[test]
    fn slash_command_is_used_as_is_and_empty_args_rejected() {
        let p = ProcessBuilder::default()
            .args(vec!["./x".to_string()])
            .build()
            .unwrap();
        let plan = ProcessPlan::build(&p, None).unwrap();
        assert_eq!(plan.candidates, vec![CString::new("./x").unwrap()]);
        let p = ProcessBuilder::default()
            .args(Vec::<String>::new())
            .build()
            .unwrap();
        assert!(matches!(
            ProcessPlan::build(&p, None),
            Err(PlanError::NoArgs)
        ));
    }

    #[test]
    fn rlimits_clamped_to_host_hard() {
        let r = clamp_rlimit(libc::RLIMIT_NOFILE as i32, 1_048_576, 1_048_576, 20_000, 0);
        assert_eq!((r.soft, r.hard), (20_000, 20_000));
        let r = clamp_rlimit(libc::RLIMIT_NOFILE as i32, 1024, 4096, 20_000, 0);
        assert_eq!((r.soft, r.hard), (1024, 4096));
    }
}
