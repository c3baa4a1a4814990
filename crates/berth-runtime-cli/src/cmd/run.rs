//! `run`: create and start a container, then wait for it (unless `--detach`).

use anyhow::Result;
use berth_runtime::state::StateDir;

use super::create::{self, Options};

/// Runs the container; in the foreground the exit code is the container's.
pub fn run(state: &StateDir, o: &Options<'_>, detach: bool) -> Result<i32> {
    if detach {
        create::launch(state, o, true)?;
        berth_runtime::start(&state.fifo(o.id))?;
        return Ok(0);
    }
    // Foreground: no start gate, so exec failures come back as errors (exit 126/127).
    let (mut child, rec) = create::launch(state, o, false)?;
    let status = child.wait();
    state.delete(&rec)?;
    Ok(status?.docker_code())
}
