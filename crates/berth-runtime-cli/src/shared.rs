//! What several commands share: the container's stdio (a pty handed over runc's console socket)
//! and pid files.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use berth_fs::Durability;
use berth_runtime::Stdio;

/// The container's stdio: the caller's own, or a new pty whose master goes to `console_socket`.
pub fn stdio_for(terminal: bool, console_socket: Option<&Path>) -> Result<Stdio> {
    if !terminal {
        return Ok(Stdio::Inherit);
    }
    let sock = console_socket.ok_or_else(|| anyhow!("process.terminal needs --console-socket"))?;
    let (master, slave) = berth_runtime::pty::open()?;
    send_fd(sock, &master)?;
    Ok(Stdio::Pty(slave))
}

/// Sends the pty master over the console socket (SCM_RIGHTS), as runc does.
fn send_fd(sock: &Path, fd: &OwnedFd) -> Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let stream = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("connecting to {}", sock.display()))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut buf = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    buf.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(b"/dev/ptmx")],
        &mut buf,
        SendFlags::empty(),
    )
    .context("sending the pty master")?;
    Ok(())
}

/// Writes `pid` to the `--pid-file` a caller waits on: atomically, so it never reads half a pid.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    berth_fs::write_atomic(path, pid.to_string().as_bytes(), Durability::Durable)?;
    Ok(())
}
