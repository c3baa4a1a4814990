//! `delete`: remove a stopped container (or any, with `--force`).

use anyhow::{Result, bail};
use berth_runtime::state::{StateDir, Status};

/// Removes container `id`; `force` kills it first, and clears what a killed create left.
pub fn delete(state: &StateDir, id: &str, force: bool) -> Result<i32> {
    let rec = match state.load(id) {
        Ok(r) => r,
        Err(_) if force => {
            // A create killed before state.json was written: drop what it left.
            state.remove_leftovers(id)?;
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    if state.status(&rec) == Status::Running && !force {
        bail!("container {id} is running: stop it first or use --force");
    }
    state.delete(&rec)?;
    Ok(0)
}
