//! Docker credential helpers: `docker-credential-<name> get|store|erase`, the server URL or a
//! JSON credential on stdin, JSON out.

use super::{Credential, server_key};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The helper program: in `dir` when given, else looked up on `PATH` by the OS.
fn program(dir: Option<&Path>, name: &str) -> PathBuf {
    let file = format!("docker-credential-{name}");
    match dir {
        Some(d) => d.join(file),
        None => PathBuf::from(file),
    }
}

/// Runs the helper with `input` on stdin; returns (success, stdout, stderr).
fn run(
    dir: Option<&Path>,
    name: &str,
    action: &'static str,
    registry: &str,
    input: &[u8],
) -> Result<(bool, String, String)> {
    let fail = |message: String| Error::CredentialHelper {
        helper: name.to_owned(),
        action,
        registry: registry.to_owned(),
        message,
    };
    if name.contains('/') {
        return Err(fail("helper names may not contain `/`".into()));
    }
    let mut child = Command::new(program(dir, name))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}

/// Whether a helper's output says it has nothing for this server.
fn not_found(stdout: &str, stderr: &str) -> bool {
    let nf = |s: &str| s.to_ascii_lowercase().contains("credentials not found");
    nf(stdout) || nf(stderr)
}

/// `get`: the credential, or `None` when the helper has none.
pub(super) fn get(dir: Option<&Path>, name: &str, registry: &str) -> Result<Option<Credential>> {
    let (ok, out, err) = run(dir, name, "get", registry, server_key(registry).as_bytes())?;
    if !ok {
        if not_found(&out, &err) {
            return Ok(None);
        }
        return Err(Error::CredentialHelper {
            helper: name.to_owned(),
            action: "get",
            registry: registry.to_owned(),
            message: if err.is_empty() { out } else { err },
        });
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let r: Reply = serde_json::from_str(&out).map_err(|e| Error::CredentialHelper {
        helper: name.to_owned(),
        action: "get",
        registry: registry.to_owned(),
        message: format!("unreadable answer: {e}"),
    })?;
    if r.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: r.username,
        secret: r.secret,
    }))
}

/// `store`: hands the credential to the helper; returns the helper program.
pub(super) fn store(
    dir: Option<&Path>,
    name: &str,
    registry: &str,
    cred: &Credential,
) -> Result<PathBuf> {
    let input = serde_json::json!({
        "ServerURL": server_key(registry),
        "Username": cred.username,
        "Secret": cred.secret,
    });
    let (ok, out, err) = run(dir, name, "store", registry, input.to_string().as_bytes())?;
    if !ok {
        return Err(Error::CredentialHelper {
            helper: name.to_owned(),
            action: "store",
            registry: registry.to_owned(),
            message: if err.is_empty() { out } else { err },
        });
    }
    Ok(program(dir, name))
}

/// `erase`: whether the helper had something to forget.
pub(super) fn erase(dir: Option<&Path>, name: &str, registry: &str) -> Result<bool> {
    let (ok, out, err) = run(
        dir,
        name,
        "erase",
        registry,
        server_key(registry).as_bytes(),
    )?;
    if ok {
        return Ok(true);
    }
    if not_found(&out, &err) {
        return Ok(false);
    }
    Err(Error::CredentialHelper {
        helper: name.to_owned(),
        action: "erase",
        registry: registry.to_owned(),
        message: if err.is_empty() { out } else { err },
    })
}
