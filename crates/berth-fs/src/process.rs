//! Process identity without races on pid reuse: a pid and its start time (field 22 of
//! `/proc/PID/stat`, clock ticks after boot) name one process for as long as the machine runs.
//! Whoever records "this process holds it" (a lease, a container's monitor, a temporary) checks
//! liveness here.

/// The state letter (field 3) and start time (field 22) of `pid`; `None` if there is no such
/// process. The command name (field 2) may hold spaces and parentheses, so the fields are
/// counted from its last `)`.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the state; field 22 is the start time, 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start time of `pid`, or `None` if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` runs (a zombie counts as gone) and started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    stat(pid).is_some_and(|(state, t)| t == start && state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calling_process_is_alive_and_a_reaped_child_is_not() {
        let me = std::process::id() as i32;
        let st = start_time(me).expect("own start time");
        assert!(alive(me, st));
        assert!(!alive(me, st + 1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        child.wait().unwrap();
        assert!(!alive(pid, start));
        assert!(!alive(0, 0));
        assert_eq!(start_time(-5), None);
    }
}
