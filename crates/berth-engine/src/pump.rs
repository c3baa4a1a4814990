//! The single-threaded I/O loop of a container's parent (foreground CLI, monitor or exec): copies the
//! container's stdout/stderr (pipes or a pty master) to the terminal and/or the JSON log, forwards the
//! caller's stdin, forwards signals (and SIGWINCH as a pty resize), and returns when the container
//! has exited and its output is drained. No threads: `poll` over fds, a pidfd and a signalfd.

use crate::logs::{LogWriter, Stream};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::{PollFd, PollFlags};
use rustix::termios::{OptionalActions, Termios};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Errors of the I/O loop.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// A syscall of the loop failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// Cause.
        source: std::io::Error,
    },
}

fn sys(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> PumpError {
    move |e| PumpError::Sys {
        op,
        source: e.into(),
    }
}

/// Signals a foreground parent forwards to the container.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Blocks `signals` (+ SIGWINCH when `winch`) and returns a signalfd that receives them. Call after the
/// container is spawned, so the child does not inherit the mask.
pub fn signal_fd(signals: &[Signal], winch: bool) -> Result<SignalFd, PumpError> {
    let mut set = SigSet::empty();
    for s in signals {
        set.add(*s);
    }
    if winch {
        set.add(Signal::SIGWINCH);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| {
        PumpError::Sys {
            op: "block signals",
            source: std::io::Error::from_raw_os_error(e as i32),
        }
    })?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(|e| {
        PumpError::Sys {
            op: "signalfd",
            source: std::io::Error::from_raw_os_error(e as i32),
        }
    })
}

/// A pty pair for a container: the master stays with us, the slave goes to the runtime.
pub struct Pty {
    /// Master side.
    pub master: OwnedFd,
    /// Slave side.
    pub slave: OwnedFd,
}

/// Opens a new pty pair (the container's console).
pub fn open_pty() -> Result<Pty, PumpError> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(sys("open /dev/ptmx"))?;
    rustix::pty::grantpt(&master).map_err(sys("grantpt"))?;
    rustix::pty::unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(sys("ptsname"))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(sys("open pty slave"))?;
    Ok(Pty { master, slave })
}

/// Copies the terminal size of `from` (our stdin/stdout) to the pty `master`.
pub fn copy_winsize(from: BorrowedFd<'_>, master: BorrowedFd<'_>) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(from) {
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
}

/// Puts a terminal in raw mode; restores the previous mode on drop.
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// Raw mode on `fd` if it is a terminal.
    pub fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

/// What the loop copies where.
pub struct Pump<'a> {
    /// Container stdout (pipe read end or pty master).
    pub out: Option<OwnedFd>,
    /// Container stderr (pipe read end); None with a pty.
    pub err: Option<OwnedFd>,
    /// Our input to forward (stdin), and where it goes (pipe write end or a dup of the pty master).
    /// A non-blocking destination is fed as it drains, so a container that does not read its stdin
    /// never stops the copying of its output.
    pub input: Option<(BorrowedFd<'a>, OwnedFd)>,
    /// Copy output to our stdout/stderr.
    pub echo: bool,
    /// Also write the JSON log.
    pub log: Option<&'a mut LogWriter>,
    /// Forwarded signals (and SIGWINCH).
    pub signals: Option<&'a SignalFd>,
    /// The pty master to resize on SIGWINCH, and the terminal whose size it follows.
    pub resize: Option<(BorrowedFd<'a>, BorrowedFd<'a>)>,
    /// Shed clean pages after a second without activity (the monitor, which lives long).
    pub trim_when_idle: bool,
}

/// Writes as much of `data` as `fd` takes now; None when it can take nothing more (EOF, error).
fn write_some(fd: BorrowedFd<'_>, data: &[u8]) -> Option<usize> {
    let mut done = 0;
    while done < data.len() {
        match rustix::io::write(fd, &data[done..]) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(_) => return None,
        }
    }
    Some(done)
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                let mut p = [PollFd::new(&fd, PollFlags::OUT)];
                let _ = rustix::event::poll(&mut p, None);
            }
            Err(_) => return false,
        }
    }
    true
}

impl Pump<'_> {
    /// Runs until the process behind `pidfd` exits and its output is drained. `forward` receives
    /// every forwarded signal number.
    pub fn run(
        &mut self,
        pidfd: BorrowedFd<'_>,
        forward: &mut dyn FnMut(i32),
    ) -> Result<(), PumpError> {
        let mut buf = vec![0u8; 32 * 1024];
        // Input read from our stdin that its destination has not taken yet.
        let mut pending: Vec<u8> = Vec::new();
        let mut exited = false;
        let mut active = self.trim_when_idle;
        let mut trim_now = false;
        let stdout = rustix::stdio::stdout();
        let stderr = rustix::stdio::stderr();
        loop {
            let out_fd = self.out.as_ref().map(|f| f.as_fd());
            let err_fd = self.err.as_ref().map(|f| f.as_fd());
            if exited && out_fd.is_none() && err_fd.is_none() {
                break;
            }
            // Slot order: out, err, input, signals, pidfd, input's destination.
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(6);
            let mut slots = [usize::MAX; 6];
            if let Some(fd) = &out_fd {
                slots[0] = fds.len();
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(fd) = &err_fd {
                slots[1] = fds.len();
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some((src, dst)) = &self.input
                && !exited
            {
                // Read more only once the destination has taken what was read before.
                if pending.is_empty() {
                    slots[2] = fds.len();
                    fds.push(PollFd::new(src, PollFlags::IN));
                } else {
                    slots[5] = fds.len();
                    fds.push(PollFd::new(dst, PollFlags::OUT));
                }
            }
            let sigfd_raw = self.signals.map(|s| s.as_fd());
            if let Some(s) = &sigfd_raw {
                slots[3] = fds.len();
                fds.push(PollFd::new(s, PollFlags::IN));
            }
            if !exited {
                slots[4] = fds.len();
                fds.push(PollFd::new(&pidfd, PollFlags::IN));
            }
            // After the exit, keep draining until EOF, but do not hang on output held open by a
            // process that escaped (give it 200 ms of silence).
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            let idle = rustix::event::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let wait = if exited {
                Some(&timeout)
            } else if active {
                Some(&idle)
            } else {
                None
            };
            if trim_now {
                // A quiet second passed: drop the code pages the last burst faulted in, right
                // before sleeping, so that almost nothing is touched between the trim and the poll.
                crate::trim::drop_clean_pages();
                trim_now = false;
            }
            let n = match rustix::event::poll(&mut fds, wait) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(sys("poll")(e)),
            };
            if n == 0 && exited {
                break;
            }
            if n == 0 {
                trim_now = true;
                active = false;
                continue;
            }
            active = self.trim_when_idle;
            let ready = |slot: usize, fds: &[PollFd<'_>]| {
                slot != usize::MAX && !fds[slot].revents().is_empty()
            };
            let (r_out, r_err, r_in, r_sig, r_pid, r_dst) = (
                ready(slots[0], &fds),
                ready(slots[1], &fds),
                ready(slots[2], &fds),
                ready(slots[3], &fds),
                ready(slots[4], &fds),
                ready(slots[5], &fds),
            );
            drop(fds);
            if r_out && !self.copy_out(Stream::Stdout, &mut buf, stdout) {
                self.out = None;
            }
            if r_err && !self.copy_out(Stream::Stderr, &mut buf, stderr) {
                self.err = None;
            }
            if r_in && let Some((src, dst)) = self.input.as_ref().map(|(s, d)| (*s, d.as_fd())) {
                let ok = match rustix::io::read(src, &mut buf) {
                    Ok(0) => false,
                    Ok(n) => match write_some(dst, &buf[..n]) {
                        Some(k) => {
                            pending.extend_from_slice(&buf[k..n]);
                            true
                        }
                        None => false,
                    },
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => true,
                    Err(_) => false,
                };
                if !ok {
                    self.input = None; // closes the container's stdin
                }
            }
            if r_dst && let Some((_, dst)) = self.input.as_ref() {
                match write_some(dst.as_fd(), &pending) {
                    Some(k) => drop(pending.drain(..k)),
                    None => {
                        pending.clear();
                        self.input = None;
                    }
                }
            }
            if r_sig && let Some(sfd) = self.signals {
                while let Ok(Some(info)) = sfd.read_signal() {
                    let signo = info.ssi_signo as i32;
                    if signo == Signal::SIGWINCH as i32 {
                        if let Some((term, master)) = self.resize {
                            copy_winsize(term, master);
                        }
                    } else {
                        forward(signo);
                    }
                }
            }
            if r_pid {
                exited = true;
            }
        }
        if let Some(log) = self.log.as_deref_mut() {
            log.finish();
        }
        Ok(())
    }

    /// Reads once from a container output; false at EOF (or EIO from a pty whose slave closed).
    fn copy_out(&mut self, stream: Stream, buf: &mut [u8], term: BorrowedFd<'_>) -> bool {
        let fd = match stream {
            Stream::Stdout => self.out.as_ref(),
            Stream::Stderr => self.err.as_ref(),
        };
        let Some(fd) = fd else { return false };
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => false,
            Ok(n) => {
                if self.echo {
                    write_all(term, &buf[..n]);
                }
                if let Some(log) = self.log.as_deref_mut() {
                    log.write(stream, &buf[..n]);
                }
                true
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => true,
            Err(_) => false,
        }
    }
}
