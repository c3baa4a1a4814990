//! `list`: the recorded containers as a table.

use anyhow::Result;
use berth_runtime::state::StateDir;

/// Prints one line per container: id, pid, status, bundle.
pub fn list(state: &StateDir) -> Result<i32> {
    println!("{:<24} {:<8} {:<10} BUNDLE", "ID", "PID", "STATUS");
    for rec in state.list()? {
        println!(
            "{:<24} {:<8} {:<10} {}",
            rec.id,
            rec.pid,
            state.status(&rec),
            rec.bundle.display()
        );
    }
    Ok(0)
}
