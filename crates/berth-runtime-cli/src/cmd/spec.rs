//! `spec`: write a default config.json into a bundle.

use std::path::Path;

use anyhow::{Result, bail};
use berth_fs::Durability;

/// Writes `berth_runtime::defaults::spec()` as `bundle/config.json`; refuses to overwrite one.
pub fn spec(bundle: &Path) -> Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    let json = serde_json::to_string_pretty(&berth_runtime::defaults::spec())?;
    berth_fs::write_atomic(&path, json.as_bytes(), Durability::Durable)?;
    Ok(0)
}
