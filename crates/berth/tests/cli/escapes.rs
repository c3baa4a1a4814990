//! Container escapes replayed through the `berth` binary, judged from the host: a secret file on the host
//! that no container may read or write next to, the berth binary's identity and hash, the host's mounts and
//! cgroups. One test per attack form of each runtime CVE class that berth's features can express; the list
//! with today's results is docs/security.md.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{TestRoot, ok, ok_sh, run, run_sh, scratch_dir, sh_args, stderr, stdout};
use sha2::Digest;

/// The descriptor numbers an attacker tries: every slot a leaked runtime descriptor could land in.
const FDS: std::ops::RangeInclusive<u32> = 3..=20;

/// `../` repeated often enough to climb from any host directory to `/`.
fn climb() -> String {
    "../".repeat(32)
}

/// A scratch directory on the host named `PREFIX…`, removed on drop.
fn host_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_dir())
        .unwrap_or_else(|e| panic!("temp dir {prefix}: {e}"))
}

/// `p` relative to `/`, to append to [`climb`].
fn rel(p: &Path) -> String {
    p.to_string_lossy().trim_start_matches('/').to_owned()
}

/// How many entries directory `p` holds.
fn entries(p: &Path) -> usize {
    std::fs::read_dir(p).unwrap().count()
}

/// A file on the host, outside every container, with random content, and a directory next to it where a
/// container's writes would show.
struct HostSecret {
    dir: tempfile::TempDir,
    content: String,
}

impl HostSecret {
    fn new() -> HostSecret {
        let dir = host_dir("secret-");
        let content = format!("host-secret-{:032x}", rand::random::<u128>());
        std::fs::write(dir.path().join("secret"), &content).expect("write secret");
        HostSecret { dir, content }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// The secret's path relative to `/`, to append to [`climb`].
    fn rel(&self) -> String {
        rel(&self.path())
    }

    /// A shell line that reads the secret and writes `written-TAG` next to it, both from the working
    /// directory upwards: what a process whose cwd is a host directory can do.
    fn attack(&self, tag: &str) -> String {
        let up = climb();
        let dir = rel(self.dir.path());
        format!(
            "cat {up}{}; echo; echo pwned > {up}{dir}/written-{tag}; true",
            self.rel()
        )
    }

    /// Files a container created next to the secret.
    fn written(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "secret")
            .collect()
    }

    /// Fails if `out` shows the secret or a container wrote next to it.
    fn assert_untouched(&self, case: &str, out: &Output) {
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(
            !all.contains(&self.content),
            "{case}: the container read the host file {}:\n{all}",
            self.path().display()
        );
        assert_eq!(
            self.written(),
            Vec::<String>::new(),
            "{case}: the container wrote into the host directory {}",
            self.dir.path().display()
        );
    }
}

/// A fresh root with the busybox image `bb`, and a fresh host secret: where most attacks start.
fn bb_and_secret() -> (TestRoot, HostSecret) {
    let t = TestRoot::new();
    t.busybox_image("bb");
    (t, HostSecret::new())
}

/// A failed run that names the working directory it refused (a clear error), or a run that stayed inside.
fn assert_refused_or_inside(case: &str, out: &Output, workdir: &str) {
    if !out.status.success() {
        let err = stderr(out);
        assert!(
            err.contains(workdir) || err.contains("working directory"),
            "{case}: failed without naming the working directory: {err}"
        );
    }
}

/// One descriptor a CVE-2024-21626 attack names as the working directory.
struct WorkdirAttack<'a> {
    s: &'a HostSecret,
    /// The descriptor number, also the attack's tag.
    n: u32,
    /// `/proc/self/fd/N`.
    wd: String,
    /// The shell line to run there ([`HostSecret::attack`]).
    attack: String,
    /// `FORM WD`, for the assertion messages.
    case: String,
}

impl WorkdirAttack<'_> {
    /// Fails if `out` shows the secret or a write next to it, or refuses without naming the directory.
    fn judge(&self, out: &Output) {
        self.s.assert_untouched(&self.case, out);
        assert_refused_or_inside(&self.case, out, &self.wd);
    }
}

/// The attack through every descriptor of [`FDS`]; `form` says how the working directory is given
/// (`run --rm -w`).
fn workdir_attacks<'a>(
    s: &'a HostSecret,
    form: &'a str,
) -> impl Iterator<Item = WorkdirAttack<'a>> {
    FDS.map(move |n| {
        let wd = format!("/proc/self/fd/{n}");
        WorkdirAttack {
            s,
            n,
            attack: s.attack(&n.to_string()),
            case: format!("{form} {wd}"),
            wd,
        }
    })
}

/// The C helpers of tests/escape_helpers, built once per test run with `gcc -static` into one scratch dir
/// (reused, like busybox.tar, so runs leave no litter) that containers get read-only at /h.
fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir().join("escape-helpers");
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/escape_helpers");
        for name in ["watch", "shocker"] {
            // Built under a private name and renamed, so a concurrent run never executes half a file.
            let tmp = dir.join(format!(".{name}-{}", std::process::id()));
            let out = Command::new("gcc")
                .args(["-static", "-O2", "-o"])
                .arg(&tmp)
                .arg(src.join(format!("{name}.c")))
                .output()
                .expect("run gcc");
            assert!(
                out.status.success(),
                "gcc {name}.c: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
        dir
    })
}

/// `-v HELPERS:/h:ro`.
fn helpers_volume() -> String {
    format!("{}:/h:ro", helpers().display())
}

/// The berth binary under test.
fn berth_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("berth")
}

fn sha256(p: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// Starts `bb sleep 120` detached through `ok` (plain `berth` or [`ok_v2`]) and returns its id.
fn sleeper(t: &TestRoot, ok: fn(&TestRoot, &[&str]) -> String) -> String {
    ok(t, &["run", "-d", "bb", "sleep", "120"])
        .trim()
        .to_owned()
}

/// Removes every container of `t` through `ok` (plain `berth` or [`ok_v2`]: the way they were made),
/// so none outlives the test.
fn rm_all(t: &TestRoot, ok: fn(&TestRoot, &[&str]) -> String) {
    let ids = t.container_ids();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        ok(t, &args);
    }
}

/// Waits (bounded) until container `c` has stopped.
fn wait_stopped(t: &TestRoot, c: &str) {
    let o = t
        .berth()
        .args(["wait", c])
        .timeout(Duration::from_secs(30))
        .output()
        .expect("berth wait");
    assert!(o.status.success(), "berth wait {c}: {}", stderr(&o));
}

// ---- CVE-2024-21626: a host directory descriptor open while the container's init changes directory ----

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_run_workdir_proc_self_fd_stays_inside() {
    let (t, s) = bb_and_secret();
    for a in workdir_attacks(&s, "run --rm -w") {
        a.judge(&run_sh(&t, &["-w", &a.wd], &a.attack));
    }
    assert_eq!(
        t.container_ids(),
        Vec::<String>::new(),
        "--rm left containers"
    );
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_detached_run_workdir_stays_inside() {
    let (t, s) = bb_and_secret();
    for a in workdir_attacks(&s, "run -d -w") {
        let o = run(&t, &["run", "-d", "-w", &a.wd, "bb", "sh", "-c", &a.attack]);
        a.judge(&o);
        if o.status.success() {
            let c = stdout(&o).trim().to_owned();
            wait_stopped(&t, &c);
            let logs = run(&t, &["logs", &c]);
            s.assert_untouched(&format!("{} (logs)", a.case), &logs);
        }
    }
    rm_all(&t, ok);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_image_workdir_stays_inside() {
    let t = TestRoot::new();
    let s = HostSecret::new();
    for a in workdir_attacks(&s, "image WORKDIR") {
        let img = format!("wd{}", a.n);
        let o = t
            .berth()
            .arg("import")
            .arg("--change")
            .arg(format!("WORKDIR {}", a.wd))
            .arg(crate::common::busybox_tar())
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "import WORKDIR {}: {}",
            a.wd,
            stderr(&o)
        );
        a.judge(&run(&t, &["run", "--rm", &img, "sh", "-c", &a.attack]));
    }
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_exec_workdir_stays_inside() {
    let (t, s) = bb_and_secret();
    let c = sleeper(&t, ok);
    for a in workdir_attacks(&s, "exec -w") {
        a.judge(&run(&t, &["exec", "-w", &a.wd, &c, "sh", "-c", &a.attack]));
    }
    ok(&t, &["rm", "-f", &c]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_userns_auto_workdir_stays_inside() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // With a user namespace only world-readable host files are in reach: make the secret one.
    let s = HostSecret::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for a in workdir_attacks(&s, "run --userns auto -w") {
        a.judge(&run_sh(&t, &["--userns", "auto", "-w", &a.wd], &a.attack));
    }
    t.assert_clean();
}

/// `berth ARGS` with a host directory open, without close-on-exec, as descriptor 9: what a careless caller
/// (a shell's `9</dir`, a supervisor) hands down.
fn berth_with_leaked_dir(t: &TestRoot, dir: &Path, args: &[&str]) -> Output {
    let leak = std::fs::File::open(dir).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    let mut c = t.berth_std();
    c.args(args).stdin(Stdio::null());
    // SAFETY: dup2 and fcntl are async-signal-safe; they run in the forked child before exec and touch no
    // memory. dup2 onto itself keeps close-on-exec, so that case clears the flag instead.
    unsafe {
        c.pre_exec(move || {
            let r = if raw == 9 {
                libc::fcntl(9, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 9)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output().unwrap();
    drop(leak);
    out
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_descriptor_leaked_by_the_caller_is_not_inherited() {
    let (t, s) = bb_and_secret();
    let attack = s.attack("fd9");
    let leaked = |args: &[&str]| berth_with_leaked_dir(&t, s.dir.path(), args);
    let read_fd9 = "cat /proc/self/fd/9/secret; ls -l /proc/self/fd";
    // Through the working directory...
    let o = leaked(&sh_args(&["-w", "/proc/self/fd/9"], &attack));
    s.assert_untouched("run -w /proc/self/fd/9 with fd 9 leaked by the caller", &o);
    assert_refused_or_inside("leaked fd 9 as -w", &o, "/proc/self/fd/9");
    // ...and straight through the descriptor in the container's process.
    let o = leaked(&sh_args(&[], read_fd9));
    s.assert_untouched(
        "cat /proc/self/fd/9/secret with fd 9 leaked by the caller",
        &o,
    );
    let c = sleeper(&t, ok);
    let o = leaked(&["exec", &c, "sh", "-c", read_fd9]);
    s.assert_untouched(
        "exec: cat /proc/self/fd/9/secret with fd 9 leaked by the caller",
        &o,
    );
    let o = leaked(&["exec", "-w", "/proc/self/fd/9", &c, "sh", "-c", &attack]);
    s.assert_untouched("exec -w /proc/self/fd/9 with fd 9 leaked by the caller", &o);
    ok(&t, &["rm", "-f", &c]);
    t.assert_clean();
}

// ---- cgroup v2: the CLONE_INTO_CGROUP directory descriptor ----

/// A shell script that gives the command after it a private mount namespace in which /sys/fs/cgroup is the
/// unified (v2) hierarchy, as on a v2-only host. The host's own mounts are not touched.
fn v2_wrapper() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = scratch_dir().join("cgroup-v2.sh");
        let tmp = scratch_dir().join(format!(".cgroup-v2-{}.sh", std::process::id()));
        std::fs::write(
            &tmp,
            "set -e\nmount --make-rprivate /\numount -l /sys/fs/cgroup\n\
             mount -t cgroup2 none /sys/fs/cgroup\nexec \"$@\"\n",
        )
        .unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    })
}

/// `berth --root .. ARGS` as seen on a cgroup v2 host.
fn berth_v2(t: &TestRoot, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .args(["unshare", "-m", "sh"])
        .arg(v2_wrapper())
        .arg(berth_bin())
        .arg("--root")
        .arg(t.root())
        .arg("--run-root")
        .arg(t.run_root())
        .args(args)
        .env_remove("BERTH_ROOT")
        .env_remove("BERTH_RUN_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok_v2(t: &TestRoot, args: &[&str]) -> String {
    let o = berth_v2(t, args);
    assert!(
        o.status.success(),
        "(cgroup v2) berth {args:?}: {}",
        stderr(&o)
    );
    stdout(&o)
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_cgroup_v2_run_workdir_stays_inside() {
    let (t, s) = bb_and_secret();
    // berth runs on such a host at all: the container lands in a v2 cgroup.
    let cg = ok_v2(&t, &["run", "--rm", "bb", "cat", "/proc/self/cgroup"]);
    assert!(cg.lines().any(|l| l.starts_with("0::")), "{cg}");
    for a in workdir_attacks(&s, "(cgroup v2) run --rm -w") {
        a.judge(&berth_v2(&t, &sh_args(&["-w", &a.wd], &a.attack)));
    }
    rm_all(&t, ok_v2);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2024_21626_cgroup_v2_exec_workdir_stays_inside() {
    let (t, s) = bb_and_secret();
    let c = sleeper(&t, ok_v2);
    // exec works on a v2 host (it has to find the container's v2 cgroup to join it).
    let o = berth_v2(&t, &["exec", &c, "cat", "/proc/self/cgroup"]);
    let result = std::panic::catch_unwind(|| {
        assert!(o.status.success(), "(cgroup v2) exec: {}", stderr(&o));
        for a in workdir_attacks(&s, "(cgroup v2) exec -w") {
            a.judge(&berth_v2(
                &t,
                &["exec", "-w", &a.wd, &c, "sh", "-c", &a.attack],
            ));
        }
    });
    rm_all(&t, ok_v2);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    t.assert_clean();
}

// ---- CVE-2019-5736 / CVE-2016-9962: the exec child before execve ----

/// Starts the watcher (escape_helpers/watch.c) detached from `image` with run options `extra`, on the
/// lookout for the berth binary and the secret; returns the container and when it started, once the
/// watcher is ready.
/// How a test runs berth: on this host ([`plain`]) or on a simulated cgroup v2 host ([`berth_v2`]).
type Berth = fn(&TestRoot, &[&str]) -> Output;

/// `berth ARGS` on this host, bounded.
fn plain(t: &TestRoot, args: &[&str]) -> Output {
    t.berth()
        .args(args)
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap()
}

/// Runs `berth ARGS` through `b`, asserts success and returns standard output.
fn ok_with(b: Berth, t: &TestRoot, args: &[&str]) -> String {
    let o = b(t, args);
    assert!(o.status.success(), "berth {args:?}: {}", stderr(&o));
    stdout(&o)
}

fn start_watcher(
    b: Berth,
    t: &TestRoot,
    extra: &[&str],
    image: &str,
    s: &HostSecret,
) -> (String, Instant) {
    let meta = std::fs::metadata(berth_bin()).unwrap();
    let (dev, ino) = (meta.dev().to_string(), meta.ino().to_string());
    let secret = s.path().to_string_lossy().into_owned();
    let vol = helpers_volume();
    let mut args = vec!["run", "-d", "-v", &vol];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "/h/watch", &dev, &ino, &secret, "20"]);
    let c = ok_with(b, t, &args).trim().to_owned();
    let start = Instant::now();
    while !stdout(&b(t, &["logs", &c])).contains("READY") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the watcher did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (c, start)
}

/// Stops watcher `c`, removes it and returns what it saw.
fn stop_watcher(b: Berth, t: &TestRoot, c: &str) -> String {
    ok_with(b, t, &["kill", "-s", "TERM", c]);
    wait_stopped(t, c);
    let logs = stdout(&b(t, &["logs", c]));
    ok_with(b, t, &["rm", "-f", c]);
    logs
}

/// What the watcher running as the container's process saw while the host ran `berth exec CTR PROG..`
/// repeatedly; `extra` are run options (e.g. `--cap-add SYS_PTRACE`).
fn watch_execs(b: Berth, t: &TestRoot, extra: &[&str], prog: &[&str], s: &HostSecret) -> String {
    let (c, start) = start_watcher(b, t, extra, "bb", s);
    let mut exec = vec!["exec", c.as_str()];
    exec.extend_from_slice(prog);
    let (mut execs, mut failure) = (0, None);
    for _ in 0..200 {
        if start.elapsed() > Duration::from_secs(15) {
            break;
        }
        let o = b(t, &exec);
        if o.status.success() {
            execs += 1;
        } else if failure.is_none() {
            failure = Some(stderr(&o));
        }
        if stderr(&o).contains("is not running") {
            break;
        }
    }
    let logs = stop_watcher(b, t, &c);
    assert!(execs > 0, "no `berth exec` succeeded: {failure:?}\n{logs}");
    logs
}

/// The namespaces of the host (this test process), as `/proc/PID/fd` shows them (`pid:[4026531836]`).
fn host_namespaces() -> Vec<String> {
    ["pid", "mnt", "net", "ipc", "uts", "cgroup", "user"]
        .iter()
        .filter_map(|n| std::fs::read_link(format!("/proc/self/ns/{n}")).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Fails on anything in the watcher's report that reached the host.
fn assert_nothing_reached(case: &str, logs: &str, t: &TestRoot, s: &HostSecret) {
    let host_ns = host_namespaces();
    let host_paths = [
        t.root().to_string_lossy().into_owned(),
        t.run_root().to_string_lossy().into_owned(),
        "/sys/fs/cgroup".to_owned(),
        scratch_dir().to_string_lossy().into_owned(),
    ];
    let mut bad = Vec::new();
    for l in logs.lines() {
        let hit = l.contains("HOST-EXE")
            || (l.starts_with("WRITE ") && l.ends_with(" opened"))
            || l.starts_with("ATTACH ") && l.contains(" attached HOST-EXE")
            || l.starts_with("SECRET ")
            || l.contains(&s.content)
            || (l.starts_with("FD ")
                && l.split(" -> ").nth(1).is_some_and(|target| {
                    host_ns.iter().any(|n| n == target)
                        || host_paths.iter().any(|p| target.starts_with(p.as_str()))
                }));
        if hit {
            bad.push(l);
        }
    }
    assert!(
        bad.is_empty(),
        "{case}: the container reached the host:\n{}",
        bad.join("\n")
    );
    let seen: u32 = logs
        .lines()
        .find_map(|l| l.strip_prefix("DONE seen="))
        .unwrap_or_else(|| panic!("{case}: the watcher did not finish:\n{logs}"))
        .parse()
        .unwrap();
    assert!(
        seen > 0,
        "{case}: the watcher saw no exec'd process:\n{logs}"
    );
}

/// Watches `berth exec CTR /bin/true` in a container run with `extra`: nothing may reach the host, the
/// berth binary must not change.
fn assert_exec_child_contained(b: Berth, extra: &[&str], case: &str) {
    let (t, s) = bb_and_secret();
    let before = sha256(&berth_bin());
    let logs = watch_execs(b, &t, extra, &["/bin/true"], &s);
    assert_nothing_reached(case, &logs, &t, &s);
    assert_eq!(sha256(&berth_bin()), before, "the berth binary changed");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2019_5736_exec_child_gives_no_handle_on_the_host_binary() {
    assert_exec_child_contained(plain, &[], "default capabilities");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2019_5736_exec_child_gives_no_handle_with_sys_ptrace() {
    assert_exec_child_contained(plain, &["--cap-add", "SYS_PTRACE"], "--cap-add SYS_PTRACE");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2019_5736_exec_child_on_cgroup_v2_holds_no_cgroup_directory() {
    // On v2 the exec child is born in its cgroup through a directory descriptor (CLONE_INTO_CGROUP):
    // that descriptor, a host directory, must be closed before the container can look.
    assert_exec_child_contained(
        berth_v2,
        &["--cap-add", "SYS_PTRACE"],
        "(cgroup v2) --cap-add SYS_PTRACE",
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2019_5736_proc_self_exe_script_does_not_run_the_host_binary() {
    let (t, s) = bb_and_secret();
    let before = sha256(&berth_bin());
    // The image carries a script whose interpreter is /proc/self/exe: if execve runs it from a process
    // whose executable is the host's berth, the interpreter is the host's berth binary.
    image_with(&t, "evil", |rootfs| {
        std::fs::write(rootfs.join("bin/evil"), "#!/proc/self/exe\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            rootfs.join("bin/evil"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    });
    // Run directly, berth's version string would come out; watched, the watcher would hold its binary.
    let c = ok(&t, &["run", "-d", "evil", "sleep", "120"])
        .trim()
        .to_owned();
    let o = run(&t, &["exec", &c, "/bin/evil", "--version"]);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        !all.contains(env!("CARGO_PKG_VERSION")) && !all.contains("Usage: berth"),
        "the host's berth ran as the script's interpreter:\n{all}"
    );
    ok(&t, &["rm", "-f", &c]);
    // Build a second container from the image holding the watcher and run the script under its eyes.
    let (c, _) = start_watcher(plain, &t, &[], "evil", &s);
    for _ in 0..20 {
        let _ = t
            .berth()
            .args(["exec", &c, "/bin/evil", "exec", &c, "sleep", "1"])
            .timeout(Duration::from_secs(10))
            .output();
    }
    let logs = stop_watcher(plain, &t, &c);
    assert_nothing_reached("#!/proc/self/exe through exec", &logs, &t, &s);
    assert_eq!(sha256(&berth_bin()), before, "the berth binary changed");
    t.assert_clean();
}

// ---- The rest of the runtime CVE history ----

/// A busybox image named `name` with `tweak` applied to its root filesystem first.
fn image_with(t: &TestRoot, name: &str, tweak: impl FnOnce(&Path)) {
    let work = host_dir("img-");
    let rootfs = work.path().join("rootfs");
    crate::common::make_busybox_rootfs(&rootfs);
    tweak(&rootfs);
    let tar = work.path().join("img.tar");
    let st = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of {name}");
    let o = t
        .berth()
        .arg("import")
        .arg(&tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(o.status.success(), "import {name}: {}", stderr(&o));
}

/// The host's mount points (field 5 of mountinfo).
fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2022_29162_no_inheritable_or_ambient_capabilities() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    for extra in [
        &[][..],
        &["-u", "1000"],
        &["--cap-add", "SYS_ADMIN"],
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "SYS_PTRACE",
        ],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["bb", "grep", "-E", "^Cap(Inh|Amb):", "/proc/self/status"]);
        let out = ok(&t, &args);
        for l in out.lines() {
            let v = l.split_whitespace().nth(1).unwrap();
            assert_eq!(v, "0000000000000000", "{extra:?}: {l}");
        }
        assert_eq!(out.lines().count(), 2, "{out}");
    }
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2023_27561_symlinked_proc_in_the_image_gets_no_unmasked_procfs() {
    let t = TestRoot::new();
    let host = host_dir("hostdir-");
    let host_rel = rel(host.path());
    // /proc pointing at a directory of the image (the AppArmor-bypass form) and at a host directory.
    image_with(&t, "proc-in-image", |r| {
        std::fs::remove_dir(r.join("proc")).unwrap();
        std::fs::create_dir(r.join("fakeproc")).unwrap();
        std::os::unix::fs::symlink("/fakeproc", r.join("proc")).unwrap();
    });
    let up = climb();
    image_with(&t, "proc-to-host", |r| {
        std::fs::remove_dir(r.join("proc")).unwrap();
        std::os::unix::fs::symlink(format!("{up}{host_rel}"), r.join("proc")).unwrap();
    });
    let before = host_mounts();
    for img in ["proc-in-image", "proc-to-host"] {
        let o = run(
            &t,
            &[
                "run",
                "--rm",
                img,
                "sh",
                "-c",
                "readlink /proc && echo PROC-IS-LINK; grep -c . /fakeproc/kcore 2>/dev/null && echo FAKE-PROC; \
                 head -c 1 /proc/kcore >/dev/null 2>&1 && echo KCORE-READ; \
                 grep -q ' /proc/kcore \\| /proc/keys ' /proc/self/mountinfo && echo MASKED; true",
            ],
        );
        let out = stdout(&o);
        if o.status.success() {
            // Accepted only with procfs at the real /proc and Docker's masks over it.
            for bad in ["PROC-IS-LINK", "FAKE-PROC", "KCORE-READ"] {
                assert!(!out.contains(bad), "{img}: {bad}:\n{out}{}", stderr(&o));
            }
            assert!(
                out.contains("MASKED"),
                "{img}: masked paths missing:\n{out}{}",
                stderr(&o)
            );
        } else {
            assert!(
                stderr(&o).contains("/proc"),
                "{img}: unclear error: {}",
                stderr(&o)
            );
        }
        assert_eq!(entries(host.path()), 0, "{img}: wrote into the host dir");
    }
    assert_eq!(host_mounts(), before, "a mount appeared on the host");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2021_30465_mount_targets_are_resolved_inside_the_root() {
    let t = TestRoot::new();
    let host = host_dir("hostdir-");
    let host_rel = rel(host.path());
    let vol = host_dir("vol-");
    let up = climb();
    // Mount targets that are symlinks climbing out of the root, absolute and relative.
    image_with(&t, "links", |r| {
        std::os::unix::fs::symlink(format!("{up}{host_rel}"), r.join("rel")).unwrap();
        std::os::unix::fs::symlink(format!("/{host_rel}"), r.join("abs")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/../../..", r.join("magic")).unwrap();
    });
    let v = |target: &str| format!("{}:{target}", vol.path().display());
    let cases: Vec<Vec<String>> = ["/rel", "/abs", "/magic"]
        .iter()
        .flat_map(|m| {
            [
                vec!["-v".to_owned(), v(m)],
                vec!["--tmpfs".to_owned(), (*m).to_owned()],
            ]
        })
        .collect();
    let before = host_mounts();
    for case in &cases {
        let mut args: Vec<&str> = vec!["run", "--rm"];
        args.extend(case.iter().map(String::as_str));
        let target = case[1].rsplit(':').next().unwrap().to_owned();
        let script = format!(
            "touch {target}/planted; grep ' {} ' /proc/self/mountinfo",
            host.path().display()
        );
        args.extend_from_slice(&["links", "sh", "-c", &script]);
        let o = run(&t, &args);
        assert_eq!(
            entries(host.path()),
            0,
            "{case:?}: the mount or the write landed on the host dir: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    assert_eq!(host_mounts(), before, "a mount appeared on the host");
    t.assert_clean();
}

/// Every cgroup v1 hierarchy's release_agent on the host.
fn release_agents() -> Vec<(PathBuf, String)> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("release_agent"))
                .filter_map(|p| std::fs::read_to_string(&p).ok().map(|s| (p, s)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn cve_2022_0492_no_cgroup_v1_mount_or_release_agent() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let before = release_agents();
    let script = "mkdir -p /cg; \
        for c in rdma memory pids; do \
          if mount -t cgroup -o $c cgroup /cg 2>/dev/null; then echo MOUNTED $c; \
            echo /evil > /cg/release_agent && echo WROTE $c; umount /cg; fi; \
          if unshare -Urmc sh -c \"mount -t cgroup -o $c cgroup /cg && echo /evil > /cg/release_agent\" 2>/dev/null; \
          then echo USERNS-WROTE $c; fi; \
        done; true";
    for extra in [&[][..], &["--cap-add", "SYS_ADMIN"]] {
        let out = ok_sh(&t, extra, script);
        // With SYS_ADMIN added the mount itself is allowed, as under Docker; in the container's
        // cgroup namespace it shows only the container's own cgroup, where no release_agent exists.
        let mounted_ok = !extra.is_empty() || !out.contains("MOUNTED");
        assert!(
            mounted_ok && !out.contains("WROTE"),
            "{extra:?}: a cgroup v1 hierarchy was mounted or its release_agent written:\n{out}"
        );
    }
    assert_eq!(release_agents(), before, "a host release_agent changed");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn shocker_open_by_handle_at_cannot_reach_the_host_root() {
    let (t, s) = bb_and_secret();
    let secret = s.path().to_string_lossy().into_owned();
    let vol = helpers_volume();
    // /h is a bind of a host ext4 directory: a descriptor on the host's filesystem. By default the
    // call is refused (no DAC_READ_SEARCH, and seccomp). An administrator who adds DAC_READ_SEARCH
    // gets open_by_handle_at as under Docker — with a host bind mount that is read access to the
    // whole host filesystem (docs/security.md) — unless the container has a user namespace, where the
    // kernel only decodes handles below the mount the caller passes.
    for extra in [
        &[][..],
        &["--cap-add", "DAC_READ_SEARCH", "--userns", "auto"],
    ] {
        let mut args = vec!["run", "--rm", "-v", &vol];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["bb", "/h/shocker", "/h/shocker", &secret]);
        let o = run(&t, &args);
        s.assert_untouched(&format!("shocker {extra:?}"), &o);
        assert!(
            !stdout(&o).contains("ROOT opened"),
            "{extra:?}: {}",
            stdout(&o)
        );
    }
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn masked_paths_stay_masked_through_proc_pid_root() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let script = "for p in /proc/kcore /proc/1/root/proc/kcore /proc/self/root/proc/kcore \
                  /proc/1/root/proc/keys /proc/self/root/proc/timer_list; do \
          n=$(head -c 64 $p 2>/dev/null | wc -c); [ \"$n\" = 0 ] || echo READ $p $n; done; \
        for d in /sys/firmware /proc/1/root/sys/firmware /proc/self/root/sys/firmware /proc/1/root/proc/acpi; do \
          [ -z \"$(ls -A $d 2>/dev/null)\" ] || echo LISTED $d; done; \
        for w in /proc/1/root/proc/sysrq-trigger /proc/self/root/proc/sys/kernel/hostname; do \
          (printf '' > $w) 2>/dev/null && echo WRITABLE $w; done; true";
    let out = ok_sh(&t, &[], script);
    assert_eq!(out, "", "masked or read-only paths reached:\n{out}");
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn mounts_made_in_a_container_do_not_propagate_to_the_host() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let vol = host_dir("vol-");
    let v = format!("{}:/vol", vol.path().display());
    let before = host_mounts();
    // Give the container what mounting needs, then mount over its volume, its /tmp and its root's parent.
    let out = ok_sh(
        &t,
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            &v,
        ],
        "mount -t tmpfs none /vol && echo MOUNTED-VOL; mount -t tmpfs none /tmp && echo MOUNTED-TMP; \
             mount --make-rshared / 2>/dev/null; mkdir -p /vol/sub && mount -t tmpfs none /vol/sub; \
             grep -c . /proc/self/mountinfo >/dev/null; sleep 0.2",
    );
    assert!(
        out.contains("MOUNTED-VOL"),
        "the container could not mount at all: {out}"
    );
    assert_eq!(
        host_mounts(),
        before,
        "a container's mount reached the host"
    );
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn device_nodes_of_the_host_disk_are_not_readable() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    // The host's root filesystem's device: major:minor from mountinfo's third field.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let devno = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .to_owned();
    let (maj, min) = devno.split_once(':').unwrap();
    let script = format!(
        "mknod /tmp/disk b {maj} {min} && echo MADE; n=$(head -c 512 /tmp/disk 2>/dev/null | wc -c); \
         [ \"$n\" = 0 ] || echo READ-DISK $n; mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem >/dev/null 2>&1 && echo READ-MEM); true"
    );
    let out = ok_sh(&t, &[], &script);
    assert!(!out.contains("READ-"), "a host device was readable:\n{out}");
    t.assert_clean();
}

/// The libc this test runs on (the one `--init` brings along from the host).
fn host_libc() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so"))
        .map(PathBuf::from)
        .expect("libc in /proc/self/maps")
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn init_files_cannot_be_opened_for_writing_even_with_sys_admin() {
    // `--init` runs berth (through the host's loader and libraries) as pid 1. Mapped by the loader,
    // not exec'd, the binary has no "text busy" guard; a container that may mount could remount a
    // read-only bind of the host files read-write. Opened for writing only, never written.
    let t = TestRoot::new();
    t.busybox_image("bb");
    let (exe, libc) = (berth_bin(), host_libc());
    let before = (sha256(&exe), sha256(&libc));
    let script = "cd /dev/.berth-init || exit 9; for f in *; do \
          mount -o remount,rw,bind /dev/.berth-init/$f 2>/dev/null; \
          mount -o remount,rw /dev/.berth-init 2>/dev/null; \
          (: >> $f) 2>/dev/null && echo OPENED $f; done; true";
    for extra in [
        &["--init"][..],
        &["--init", "--cap-add", "SYS_ADMIN"],
        &["--init", "--cap-add", "SYS_ADMIN", "--userns", "auto"],
    ] {
        let out = ok_sh(&t, extra, script);
        assert!(
            !out.contains("OPENED"),
            "{extra:?}: the init's files opened for writing:\n{out}"
        );
    }
    assert_eq!((sha256(&exe), sha256(&libc)), before, "a host file changed");
    t.assert_clean();
}
