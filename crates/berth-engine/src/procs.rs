//! Process identity without races on pid reuse: a pid plus its start time (field 22 of
//! `/proc/<pid>/stat`) names one process for as long as the machine runs.

/// The start time of `pid` in clock ticks since boot, or None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    berth_fs::process::start_time(pid)
}

/// Whether `pid` is a live (not zombie) process with the recorded start time (0: a record from
/// before start times were kept, which any start time matches).
pub fn alive(pid: i32, start: u64) -> bool {
    berth_fs::process::stat(pid)
        .is_some_and(|(state, t)| state != 'Z' && state != 'X' && (start == 0 || t == start))
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
