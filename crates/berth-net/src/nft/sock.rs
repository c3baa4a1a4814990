//! A NETLINK_NETFILTER socket: send a batch or a request, read the kernel's answers.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::error::NftError;
use super::wire::{self, Reply};

pub(super) struct Socket {
    fd: OwnedFd,
}

fn os(what: &'static str) -> NftError {
    NftError::Socket {
        what,
        source: io::Error::last_os_error(),
    }
}

impl Socket {
    pub(super) fn open() -> Result<Socket, NftError> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(os("socket"));
        }
        // SAFETY: fd is a fresh descriptor this function owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (pid 0: the kernel picks one).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr lives across the call and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os("bind"));
        }
        Ok(Socket { fd })
    }

    pub(super) fn send(&self, buf: &[u8]) -> Result<(), NftError> {
        // SAFETY: sockaddr_nl all-zero is the kernel's address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf and addr are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(os("sendto"));
        }
        if n as usize != buf.len() {
            return Err(NftError::Socket {
                what: "sendto",
                source: io::Error::other("short send"),
            });
        }
        Ok(())
    }

    /// Reads datagrams, handing each message to `f`, until `f` says it has seen the last one.
    pub(super) fn recv_until(&self, mut f: impl FnMut(&Reply<'_>) -> bool) -> Result<(), NftError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NftError::Socket {
                    what: "recv",
                    source: e,
                });
            }
            for r in wire::replies(&buf[..n as usize]) {
                if f(&r) {
                    return Ok(());
                }
            }
        }
    }
}
