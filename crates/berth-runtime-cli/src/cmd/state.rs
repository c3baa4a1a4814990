//! `state`: the container's OCI state as JSON.

use anyhow::Result;
use berth_runtime::state::{StateDir, Status};

/// Prints the OCI state of container `id`.
pub fn state(state: &StateDir, id: &str) -> Result<i32> {
    let rec = state.load(id)?;
    let st = state.status(&rec);
    let out = serde_json::json!({
        "ociVersion": "1.2.0",
        "id": rec.id,
        "status": st.as_str(),
        "pid": if st == Status::Stopped { 0 } else { rec.pid },
        "bundle": rec.bundle,
        "rootfs": rec.bundle.join("rootfs"),
        "created": rec.created,
        "annotations": rec.annotations,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}
