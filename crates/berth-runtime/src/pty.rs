//! Pseudo-terminals for containers with `process.terminal`: open a pair, resize it, and put the
//! caller's own terminal in raw mode for the length of an attach.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios, Winsize};

use crate::error::Error;

fn pty_err(action: &'static str) -> impl Fn(rustix::io::Errno) -> Error {
    move |e| Error::Pty {
        action,
        source: io::Error::from_raw_os_error(e.raw_os_error()),
    }
}

/// Opens a new pty pair: `(master, slave)`, both close-on-exec. The slave is opened through the
/// master (`TIOCGPTPEER`), so it works whatever `/dev/pts` the caller sees.
pub fn open() -> Result<(OwnedFd, OwnedFd), Error> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(pty_err("opening /dev/ptmx"))?;
    rustix::pty::unlockpt(&master).map_err(pty_err("unlocking the pty"))?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .map_err(pty_err("opening the pty slave"))?;
    Ok((master, slave))
}

/// Sets the window size of the pty behind `fd` (master or slave); the foreground process gets SIGWINCH.
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Error> {
    rustix::termios::tcsetwinsize(
        fd,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .map_err(pty_err("setting the pty size"))
}

/// The window size of the terminal behind `fd`, as `(rows, cols)`.
pub fn size(fd: BorrowedFd<'_>) -> Result<(u16, u16), Error> {
    let w = rustix::termios::tcgetwinsize(fd).map_err(pty_err("reading the terminal size"))?;
    Ok((w.ws_row, w.ws_col))
}

/// Raw mode on a terminal while this guard lives; the previous settings come back on drop.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal behind `fd` (typically stdin) in raw mode.
    pub fn enable(fd: BorrowedFd<'_>) -> Result<RawMode, Error> {
        let fd = fd.try_clone_to_owned().map_err(|source| Error::Pty {
            action: "duplicating the terminal fd",
            source,
        })?;
        let saved =
            rustix::termios::tcgetattr(&fd).map_err(pty_err("reading terminal attributes"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&fd, OptionalActions::Now, &raw)
            .map_err(pty_err("setting raw mode"))?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(self.fd.as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// True if `fd` is a terminal.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    rustix::termios::isatty(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_resize_and_echo() {
        let (master, slave) = open().unwrap();
        set_size(master.as_fd(), 40, 120).unwrap();
        assert_eq!(size(slave.as_fd()).unwrap(), (40, 120));
        assert!(is_terminal(slave.as_fd()));
        rustix::io::write(&slave, b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&master, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\r\n");
        let guard = RawMode::enable(slave.as_fd()).unwrap();
        rustix::io::write(&slave, b"x\n").unwrap();
        let n = rustix::io::read(&master, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"x\n", "raw mode disables ONLCR");
        drop(guard);
        rustix::io::write(&slave, b"y\n").unwrap();
        let n = rustix::io::read(&master, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"y\r\n", "settings restored");
    }
}
