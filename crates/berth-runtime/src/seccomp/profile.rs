//! berth's default seccomp profile: Docker's default allowlist for x86_64, stricter on user
//! namespaces. Written from the syscall table; coverage checked against moby's default profile.
//!
//! Differences, all stricter: only the x86_64 ABI is allowed (Docker also allows i386 and x32);
//! io_uring is denied (as in current Docker); clone/unshare with CLONE_NEWUSER are denied and clone3
//! returns ENOSYS even with CAP_SYS_ADMIN; listmount/statmount are not allowed.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Syscalls an unprivileged container may always make.
pub(super) const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
    // Docker allows these on kernels >= 4.8, where ptrace can no longer bypass seccomp.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
];

/// Values `personality(2)` may be called with: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
/// and the 0xffffffff query.
pub(super) const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Namespace flags of clone(2)/unshare(2).
pub(super) const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Address families `socket(2)` may not use: AF_VSOCK reaches the hypervisor.
pub(super) const AF_VSOCK: u64 = libc::AF_VSOCK as u64;

/// Syscalls granted only with a capability, as Docker does (clone/unshare handled separately).
pub(super) const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount2",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Docker's default capability set (the one [`default_profile`] is built for).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    s.set_action(action);
    s.set_errno_ret(errno);
    s.set_args(if args.is_empty() { None } else { Some(args) });
    s
}

fn arg(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    b.build().expect("every field of a seccomp argument is set")
}

/// The capabilities of `caps` ("SYS_ADMIN" or "CAP_SYS_ADMIN") that change the profile, as
/// "CAP_…" names in a fixed order: two capability sets with the same answer get the same profile.
pub fn seccomp_capabilities(caps: &[&str]) -> Vec<&'static str> {
    let has = |c: &str| {
        caps.iter()
            .any(|x| x.eq_ignore_ascii_case(c) || format!("CAP_{x}").eq_ignore_ascii_case(c))
    };
    let mut out: Vec<&'static str> = BY_CAPABILITY
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| has(c))
        .collect();
    out.dedup();
    out
}

/// The default profile for Docker's default capabilities (see [`profile_for_capabilities`]).
pub fn default_profile() -> LinuxSeccomp {
    profile_for_capabilities(DEFAULT_CAPABILITIES)
}

/// The default profile with the syscalls Docker grants for each capability in `caps` ("CAP_SYS_ADMIN"
/// or "SYS_ADMIN"). Unlike Docker, new user namespaces stay denied even with CAP_SYS_ADMIN:
/// clone/unshare with CLONE_NEWUSER get EPERM, clone3 (whose flags BPF cannot read) gets ENOSYS so
/// libc falls back to clone.
pub fn profile_for_capabilities(caps: &[&str]) -> LinuxSeccomp {
    let has = |c: &str| {
        caps.iter()
            .any(|x| x.eq_ignore_ascii_case(c) || format!("CAP_{x}").eq_ignore_ascii_case(c))
    };
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::{ScmpCmpEq as Eq, ScmpCmpMaskedEq as MaskedEq, ScmpCmpNe as Ne};
    let mut rules = vec![rule(ALLOWED, Allow, None, vec![])];
    for p in PERSONALITIES {
        rules.push(rule(
            &["personality"],
            Allow,
            None,
            vec![arg(0, Eq, *p, None)],
        ));
    }
    rules.push(rule(
        &["socket"],
        Allow,
        None,
        vec![arg(0, Ne, AF_VSOCK, None)],
    ));
    let mut granted: Vec<&str> = Vec::new();
    for (cap, calls) in BY_CAPABILITY {
        if has(cap) {
            for c in *calls {
                if !granted.contains(c) {
                    granted.push(c);
                }
            }
        }
    }
    if !granted.is_empty() {
        rules.push(rule(&granted, Allow, None, vec![]));
    }
    let ns_mask = if has("CAP_SYS_ADMIN") {
        libc::CLONE_NEWUSER as u64
    } else {
        CLONE_NS_FLAGS
    };
    rules.push(rule(
        &["clone"],
        Allow,
        None,
        vec![arg(0, MaskedEq, ns_mask, Some(0))],
    ));
    if has("CAP_SYS_ADMIN") {
        rules.push(rule(
            &["unshare"],
            Allow,
            None,
            vec![arg(0, MaskedEq, libc::CLONE_NEWUSER as u64, Some(0))],
        ));
    }
    rules.push(rule(&["clone3"], Errno, Some(libc::ENOSYS as u32), vec![]));

    let mut p = LinuxSeccomp::default();
    p.set_default_action(Errno);
    p.set_default_errno_ret(Some(libc::EPERM as u32));
    p.set_architectures(Some(vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
    ]));
    p.set_syscalls(Some(rules));
    p
}
