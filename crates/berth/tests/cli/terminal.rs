//! End-to-end tests of how `berth run`/`exec` without `-t` treat a caller whose stdio is a terminal
//! (root required). The test is the user: it opens a pty, makes it berth's controlling terminal and
//! stdio, types on the master, and judges from outside. The container must never hold the terminal
//! itself (it could read what the user types, change the terminal's modes, or push input into the
//! user's shell with TIOCSTI): berth relays through pipes, as Docker and Podman do.

use crate::common::{TestRoot, ok, sh_args};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::pty::OpenptFlags;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Probes fds 0–2 from inside: is it a terminal, and can the container change its modes?
const PROBE: &str = r#"for f in 0 1 2; do
  if [ -t $f ]; then echo "fd$f: tty"; else echo "fd$f: no tty"; fi
  if stty -F /proc/self/fd/$f raw -echo 2>/dev/null; then echo "stty$f: changed"; else echo "stty$f: refused"; fi
done
"#;

/// Without `-i`: tries to read what the user typed through fd 1 (busybox `read` polls fd 1, which
/// never becomes readable if it is a pipe's write end: hence the timeout), writes to both streams, then
/// waits for the user's ^C (forwarded by berth) to exit 7.
fn plain_script() -> String {
    format!(
        r#"{PROBE}if read -t 1 -r x <&1; then echo "read: $x"; else echo "read: nothing"; fi
echo one; echo two >&2; echo three
trap 'echo interrupted; exit 7' INT
echo ready
while :; do sleep 0.1; done"#
    )
}

/// With `-i`: reads a line the user types, then the rest of stdin up to the user's EOF (^D).
fn interactive_script() -> String {
    format!(
        r#"{PROBE}echo ready
read -r x; echo "got: $x"
echo "rest: $(cat | wc -c)"
exit 3"#
    )
}

/// What the user typed before berth started: only a container reading the terminal can get it.
const TYPED_AHEAD: &[u8] = b"secret\n";

/// The user's side of an interactive session: a line, then another and ^D (EOF).
const INTERACTIVE_STEPS: &[(&str, &[u8])] = &[("ready\n", b"hello\n"), ("got: ", b"abc\n\x04")];

/// The user's side of a plain session: ^C once the container waits.
const PLAIN_STEPS: &[(&str, &[u8])] = &[("ready\n", b"\x03")];

/// A pty pair: the master is the test's side, the slave becomes berth's terminal.
struct Term {
    master: OwnedFd,
    slave: File,
}

impl Term {
    fn open() -> Term {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .expect("open /dev/ptmx");
        rustix::pty::grantpt(&master).expect("grantpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("pts name"))
            .expect("open pty slave");
        Term { master, slave }
    }

    /// The terminal's modes (termios), comparable before and after.
    fn modes(&self) -> String {
        format!(
            "{:?}",
            rustix::termios::tcgetattr(&self.slave).expect("tcgetattr")
        )
    }

    fn type_in(&self, bytes: &[u8]) {
        assert_eq!(
            rustix::io::write(&self.master, bytes).expect("write to pty master"),
            bytes.len()
        );
    }
}

/// What the user saw.
struct Session {
    /// Everything berth wrote on the terminal (echo included), without the tty's `\r`.
    screen: String,
    /// berth's exit code; None if it had to be killed after the deadline.
    code: Option<i32>,
    /// The terminal's modes before berth started and after it exited.
    modes_before: String,
    modes_after: String,
}

/// Runs `berth ARGS` with the terminal as its controlling terminal and stdin/stdout, and stderr on
/// the terminal too unless `stderr_file` is given. Types `ahead` first, then each step's bytes once
/// its marker has appeared on the screen.
fn session(
    t: &TestRoot,
    args: &[&str],
    stderr_file: Option<&std::path::Path>,
    ahead: &[u8],
    steps: &[(&str, &[u8])],
) -> Session {
    let term = Term::open();
    let modes_before = term.modes();
    term.type_in(ahead);
    let mut cmd = t.berth_std();
    cmd.args(args)
        .stdin(term.slave.try_clone().unwrap())
        .stdout(term.slave.try_clone().unwrap());
    match stderr_file {
        Some(p) => cmd.stderr(File::create(p).expect("create stderr file")),
        None => cmd.stderr(term.slave.try_clone().unwrap()),
    };
    let ctty = term.slave.as_raw_fd();
    // SAFETY: setsid and ioctl are async-signal-safe; `ctty` is open in the child until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(ctty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn berth");
    drop(cmd);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        let mut fds = [PollFd::new(&term.master, PollFlags::IN)];
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // Other tests in this binary install signal handlers: a signal may interrupt the poll.
        let n = match rustix::event::poll(&mut fds, Some(&tick)) {
            Err(rustix::io::Errno::INTR) => continue,
            r => r.expect("poll pty master"),
        };
        if n > 0 {
            let k = match rustix::io::read(&term.master, &mut buf) {
                Err(rustix::io::Errno::INTR) => continue,
                r => r.expect("read pty master"),
            };
            raw.extend_from_slice(&buf[..k]);
        }
        if let Some((marker, bytes)) = steps.get(next)
            && String::from_utf8_lossy(&raw)
                .replace('\r', "")
                .contains(marker)
        {
            term.type_in(bytes);
            next += 1;
        }
        if n == 0
            && let Some(st) = child.try_wait().expect("wait for berth")
        {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
    };
    Session {
        screen: String::from_utf8_lossy(&raw).replace('\r', ""),
        code,
        modes_before,
        modes_after: term.modes(),
    }
}

/// Asserts that no fd of the container was the terminal and its modes did not change.
fn assert_terminal_kept(s: &Session) {
    for f in 0..3 {
        assert!(
            s.screen.contains(&format!("fd{f}: no tty\n")),
            "fd {f} was a terminal: {}",
            s.screen
        );
        assert!(
            s.screen.contains(&format!("stty{f}: refused\n")),
            "the container changed the terminal through fd {f}: {}",
            s.screen
        );
    }
    assert_eq!(
        s.modes_before, s.modes_after,
        "terminal modes changed: {}",
        s.screen
    );
}

/// A plain session's outcome: nothing read from the terminal, output complete, ^C forwarded.
fn assert_plain(s: &Session, ordered: bool) {
    assert_terminal_kept(s);
    assert!(
        s.screen.contains("read: nothing\n"),
        "the container read the terminal: {}",
        s.screen
    );
    if ordered {
        assert!(
            s.screen.contains("one\ntwo\nthree\nready\n"),
            "{}",
            s.screen
        );
    } else {
        for l in ["one\n", "two\n", "three\n", "ready\n"] {
            assert!(s.screen.contains(l), "{l:?} missing: {}", s.screen);
        }
    }
    assert!(s.screen.contains("interrupted\n"), "{}", s.screen);
    assert_eq!(s.code, Some(7), "{}", s.screen);
}

/// An interactive session's outcome: stdin relayed, EOF passed on, exit code kept.
fn assert_interactive(s: &Session) {
    assert_terminal_kept(s);
    assert!(s.screen.contains("got: hello\n"), "{}", s.screen);
    assert!(s.screen.contains("rest: 4\n"), "{}", s.screen);
    assert_eq!(s.code, Some(3), "{}", s.screen);
}

/// No process still runs with this root on its command line.
fn assert_no_processes(t: &TestRoot) {
    crate::common::assert_no_processes_within(t, Duration::from_secs(5));
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn run_rm_relays_a_terminal_and_passes_files_through() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let script = plain_script();
    let s = session(&t, &sh_args(&[], &script), None, TYPED_AHEAD, PLAIN_STEPS);
    assert_plain(&s, true);
    // stderr on a regular file: the container writes that file itself (no relay, no copy).
    let dir = tempfile::tempdir_in(crate::common::scratch_dir()).unwrap();
    let errf = dir.path().join("stderr");
    let s = session(
        &t,
        &sh_args(
            &[],
            "[ -f /proc/self/fd/2 ] && echo fd2: file; [ -t 1 ] && echo fd1: tty; echo to-err >&2; exit 5",
        ),
        Some(&errf),
        b"",
        &[],
    );
    assert_eq!(s.code, Some(5), "{}", s.screen);
    assert_eq!(s.screen, "fd2: file\n");
    assert_eq!(std::fs::read_to_string(&errf).unwrap(), "to-err\n");
    assert!(t.container_ids().is_empty());
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn run_rm_interactive_relays_stdin_and_its_eof() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let script = interactive_script();
    let s = session(&t, &sh_args(&["-i"], &script), None, b"", INTERACTIVE_STEPS);
    assert_interactive(&s);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn logged_run_and_start_attach_never_get_the_terminal() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let plain = plain_script();
    let s = session(
        &t,
        &["run", "--name", "plain", "bb", "sh", "-c", &plain],
        None,
        TYPED_AHEAD,
        PLAIN_STEPS,
    );
    assert_plain(&s, false);
    assert!(ok(&t, &["logs", "plain"]).contains("three\n"));
    let script = interactive_script();
    let s = session(
        &t,
        &["run", "-i", "--name", "inter", "bb", "sh", "-c", &script],
        None,
        b"",
        INTERACTIVE_STEPS,
    );
    assert_interactive(&s);
    let logs = ok(&t, &["logs", "inter"]);
    assert!(
        logs.contains("got: hello\n") && logs.contains("rest: 4\n"),
        "{logs}"
    );
    let s = session(
        &t,
        &["start", "-a", "-i", "inter"],
        None,
        b"",
        INTERACTIVE_STEPS,
    );
    assert_interactive(&s);
    ok(&t, &["rm", "plain", "inter"]);
    t.assert_clean();
    assert_no_processes(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn exec_relays_a_terminal() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    ok(&t, &["run", "-d", "--name", "box", "bb", "sleep", "1000"]);
    let plain = plain_script();
    let s = session(
        &t,
        &["exec", "box", "sh", "-c", &plain],
        None,
        TYPED_AHEAD,
        PLAIN_STEPS,
    );
    assert_plain(&s, true);
    let script = interactive_script();
    let s = session(
        &t,
        &["exec", "-i", "box", "sh", "-c", &script],
        None,
        b"",
        INTERACTIVE_STEPS,
    );
    assert_interactive(&s);
    ok(&t, &["rm", "-f", "box"]);
    t.assert_clean();
    assert_no_processes(&t);
}
