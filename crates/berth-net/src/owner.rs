//! Who holds something berth-net hands out (an address lease, a published port, a DNS record): an
//! owner id (a container id), a pid that lives exactly as long as the holder needs it, and that pid's
//! start time, so a pid the kernel has since given to another process is not mistaken for the holder.
//! A holder whose process is gone is dead, and what it held is reclaimed by the next command that
//! looks; that is how a `kill -9` at any point leaves nothing behind once the next command has run.

use serde::{Deserialize, Serialize};

/// The holder of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The owner's id (a container id).
    pub id: String,
    /// The process whose life bounds the lease.
    pub pid: i32,
    /// That process's start time in clock ticks after boot (`/proc/PID/stat`, field 22).
    pub start: u64,
}

impl Owner {
    /// `id`, held by process `pid`; `None` if that process does not exist.
    pub fn of_pid(id: &str, pid: i32) -> Option<Owner> {
        berth_fs::process::start_time(pid).map(|start| Owner {
            id: id.to_owned(),
            pid,
            start,
        })
    }

    /// `id`, held by the calling process (until it hands the lease over to the container's process).
    pub fn current(id: &str) -> Owner {
        let pid = std::process::id() as i32;
        Owner {
            id: id.to_owned(),
            pid,
            start: berth_fs::process::start_time(pid).unwrap_or(0),
        }
    }

    /// Whether the holding process still runs (a zombie counts as gone).
    pub fn is_alive(&self) -> bool {
        berth_fs::process::alive(self.pid, self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calling_process_is_alive_and_a_reaped_child_is_not() {
        assert!(Owner::current("me").is_alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let owner = Owner::of_pid("c", pid).unwrap();
        child.wait().unwrap();
        assert!(!owner.is_alive());
        assert!(Owner::of_pid("c", pid).is_none() || Owner::of_pid("c", pid).unwrap() != owner);
    }

    #[test]
    fn a_pid_with_another_start_time_is_another_process() {
        let mut me = Owner::current("me");
        me.start += 1;
        assert!(!me.is_alive());
        assert!(Owner::of_pid("x", 0).is_none());
    }
}
