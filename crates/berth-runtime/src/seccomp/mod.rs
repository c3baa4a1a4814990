//! seccomp: berth's default profile, OCI profiles compiled to classic BPF, a digest-keyed cache
//! of compiled programs, and an allocation-free install for the child.
//!
//! Only x86_64 (64-bit ABI) is filtered in; i386 and x32 calls get the default action, which is
//! stricter than Docker (it allows the i386 table too). NOTIFY is not supported.

mod bpf;
mod cache;
mod profile;
mod table;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{SeccompAction, sock_filter};

pub use profile::{
    DEFAULT_CAPABILITIES, default_profile, profile_for_capabilities, seccomp_capabilities,
};

/// What went wrong compiling, caching or loading a seccomp program.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile uses an action berth does not implement.
    #[error("compiling seccomp profile: action {action} is not supported")]
    UnsupportedAction {
        /// The action, as named in the OCI spec.
        action: String,
    },
    /// The profile needs a feature berth does not implement.
    #[error("compiling seccomp profile: {feature} is not supported")]
    Unsupported {
        /// The feature.
        feature: &'static str,
    },
    /// The profile lists architectures, none of them x86_64.
    #[error("compiling seccomp profile: architectures {archs:?} do not include x86_64")]
    NoX86_64 {
        /// The listed architectures.
        archs: Vec<String>,
    },
    /// A rule compares an argument that does not exist (syscalls have 6).
    #[error("compiling seccomp rule for {syscall}: argument index {index} is out of range 0..=5")]
    ArgIndex {
        /// The first syscall the rule names.
        syscall: String,
        /// The bad index.
        index: usize,
    },
    /// The program exceeds the kernel's 4096-instruction limit.
    #[error(
        "compiling seccomp profile: {insns} BPF instructions exceed the kernel's limit of 4096"
    )]
    TooLong {
        /// The program's length.
        insns: usize,
    },
    /// One syscall has so many rules that a BPF jump cannot cross them.
    #[error(
        "compiling seccomp profile: a jump at instruction {at} spans more than 255 instructions"
    )]
    JumpTooFar {
        /// Where.
        at: usize,
    },
    /// Serialising the profile to compute its cache key failed.
    #[error("serialising seccomp profile for its cache key: {0}")]
    Key(#[source] serde_json::Error),
    /// Reading or writing the program cache failed.
    #[error("{action} seccomp cache file {path}: {source}")]
    Cache {
        /// "reading", "writing", "creating directory for"...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A compiled seccomp filter for x86_64, ready for [`Program::install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    filter: Vec<sock_filter>,
    /// SECCOMP_FILTER_FLAG_* passed to seccomp(2).
    flags: u32,
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    use LinuxSeccompAction as A;
    let act = match a {
        A::ScmpActAllow => SeccompAction::Allow,
        // OCI and runc: ERRNO without a value means EPERM.
        A::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        A::ScmpActNotify => {
            return Err(SeccompError::UnsupportedAction {
                action: a.to_string(),
            });
        }
    };
    Ok(act.into())
}

fn cmp(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> bpf::Cmp {
    use LinuxSeccompOperator as O;
    match op {
        O::ScmpCmpEq => bpf::Cmp::Eq(value),
        O::ScmpCmpNe => bpf::Cmp::Ne(value),
        O::ScmpCmpGt => bpf::Cmp::Gt(value),
        O::ScmpCmpGe => bpf::Cmp::Ge(value),
        O::ScmpCmpLt => bpf::Cmp::Lt(value),
        O::ScmpCmpLe => bpf::Cmp::Le(value),
        // OCI: value is the mask, valueTwo the datum, as libseccomp's SCMP_CMP_MASKED_EQ.
        O::ScmpCmpMaskedEq => bpf::Cmp::MaskedEq {
            mask: value,
            value: value_two.unwrap_or(0),
        },
    }
}

fn syscall_number(name: &str) -> Option<u32> {
    table::X86_64
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

impl Program {
    /// Compiles an OCI profile. Names unknown on x86_64 are skipped, as runc and crun do (profiles
    /// list i386/arm-only calls). NOTIFY, a listener socket and non-x86_64-only profiles are refused.
    pub fn compile(profile: &LinuxSeccomp) -> Result<Program, SeccompError> {
        if profile.listener_path().is_some() {
            return Err(SeccompError::Unsupported {
                feature: "a seccomp notify listener (listenerPath)",
            });
        }
        if let Some(archs) = profile.architectures()
            && !archs.is_empty()
            && !archs
                .iter()
                .any(|a| matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative))
        {
            return Err(SeccompError::NoX86_64 {
                archs: archs.iter().map(|a| format!("{a:?}")).collect(),
            });
        }
        let mut flags = 0;
        for f in profile.flags().iter().flatten() {
            match f {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags |= SECCOMP_FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW
                }
                // The child is single-threaded when it installs: nothing to synchronise.
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    return Err(SeccompError::Unsupported {
                        feature: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                    });
                }
            }
        }
        let default = action(profile.default_action(), profile.default_errno_ret())?;
        let mut syscalls: Vec<(u32, Vec<bpf::Rule>)> = Vec::new();
        for s in profile.syscalls().iter().flatten() {
            let act = action(s.action(), s.errno_ret())?;
            let mut conds = Vec::new();
            for a in s.args().iter().flatten() {
                let index = u8::try_from(a.index())
                    .ok()
                    .filter(|i| *i <= 5)
                    .ok_or_else(|| SeccompError::ArgIndex {
                        syscall: s.names().first().cloned().unwrap_or_default(),
                        index: a.index(),
                    })?;
                conds.push((index, cmp(a.op(), a.value(), a.value_two())));
            }
            for name in s.names() {
                let Some(nr) = syscall_number(name) else {
                    continue;
                };
                let rule = bpf::Rule {
                    conds: conds.clone(),
                    action: act,
                };
                match syscalls.iter_mut().find(|(n, _)| *n == nr) {
                    Some((_, rules)) => rules.push(rule),
                    None => syscalls.push((nr, vec![rule])),
                }
            }
        }
        Ok(Program {
            filter: bpf::generate(&syscalls, default)?,
            flags,
        })
    }

    /// The compiled program for `profile` from `cache_dir/<sha256>.bpf`, compiling and caching it
    /// (atomically) on a miss or when the file is damaged.
    pub fn cached(cache_dir: &Path, profile: &LinuxSeccomp) -> Result<Program, SeccompError> {
        let key = cache::profile_key(profile)?;
        cache::get_or_compile(cache_dir, &key, || Program::compile(profile))
    }

    /// The compiled [`default_profile`], read from the cache without building the profile when
    /// present; the key covers the crate version and the sources that define the profile.
    pub fn default_cached(cache_dir: &Path) -> Result<Program, SeccompError> {
        cache::get_or_compile(cache_dir, cache::default_key(), || {
            Program::compile(&default_profile())
        })
    }

    /// The compiled [`profile_for_capabilities`] of a container's final capability set, from the
    /// cache: the default program when the set opens what Docker's default set opens (CAP_NET_ADMIN
    /// changes no syscall), else the program of its own profile, keyed by that profile's digest.
    pub fn for_capabilities_cached(
        cache_dir: &Path,
        caps: &[&str],
    ) -> Result<Program, SeccompError> {
        if seccomp_capabilities(caps) == seccomp_capabilities(DEFAULT_CAPABILITIES) {
            return Program::default_cached(cache_dir);
        }
        Program::cached(cache_dir, &profile_for_capabilities(caps))
    }

    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    /// Whether the program is empty (never true for a compiled one).
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// Installs the filter on the calling thread with seccomp(2). Async-signal-safe: no allocation.
    /// Needs no_new_privs set before (or CAP_SYS_ADMIN).
    pub fn install(&self) -> Result<(), rustix::io::Errno> {
        let prog = libc::sock_fprog {
            len: self.filter.len() as libc::c_ushort,
            // seccompiler's sock_filter is #[repr(C)] with the kernel's layout, as libc's is.
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `self.filter`, alive and unmodified for the duration of the
        // call; the kernel copies the program and keeps no pointer to it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(rustix::io::Errno::from_raw_os_error(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EINVAL),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
