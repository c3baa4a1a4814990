//! `kill`: a signal to the container's process, or to every process in its cgroup.

use anyhow::{Result, bail};
use berth_runtime::cgroups::Cgroup;
use berth_runtime::state::StateDir;

/// Sends `signal` (a name or a number) to container `id`.
pub fn kill(state: &StateDir, id: &str, signal: &str, all: bool) -> Result<i32> {
    let rec = state.load(id)?;
    let sig = parse_signal(signal)?;
    if all {
        Cgroup::open(&rec.cgroups_path)?.kill_all(sig)?;
    } else {
        state.signal(&rec, sig)?;
    }
    Ok(0)
}

/// `TERM`, `SIGTERM`, `term` or `15`.
fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let n = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "PIPE" => libc::SIGPIPE,
        _ => bail!("unknown signal {s:?}"),
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("winch").unwrap(), libc::SIGWINCH);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("SIGNOPE").is_err());
    }
}
