//! `start`: let a created container's process exec.

use anyhow::{Result, bail};
use berth_runtime::state::{StateDir, Status};

/// Opens the start gate of container `id`, which must be created and not yet started.
pub fn start(state: &StateDir, id: &str) -> Result<i32> {
    let rec = state.load(id)?;
    match state.status(&rec) {
        Status::Created => {}
        s => bail!("container {id} is {s}, not created"),
    }
    berth_runtime::start(&state.fifo(id))?;
    Ok(0)
}
