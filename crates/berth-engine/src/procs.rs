//! Process identity without races on pid reuse: a pid plus its start time (field 22 of
//! `/proc/<pid>/stat`) names one process for as long as the machine runs.

/// The start time of `pid` in clock ticks since boot, or None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); start time is field 22.
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is a live (not zombie) process with the recorded start time.
pub fn alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat[close + 2..].split(' ');
    let state = fields.next().unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    match fields.nth(18).and_then(|s| s.parse::<u64>().ok()) {
        Some(t) => start == 0 || t == start,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_start_time_is_checked() {
        let me = std::process::id() as i32;
        let st = start_time(me).expect("own start time");
        assert!(alive(me, st));
        assert!(!alive(me, st + 1));
        assert!(!alive(0, 0));
        assert_eq!(start_time(-5), None);
    }
}
