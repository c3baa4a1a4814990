//! `RUN/net/dns/<network-id>.json`: `{ "listen": [addr…], "records": [Record…] }`, replaced whole by
//! an atomic rename (no fsync: the run root does not outlive a reboot). Writers serialise on
//! `RUN/net/dns/records.lock` (an flock), so two commands changing one network lose nothing.

use super::{DnsError, io};
use crate::owner::Owner;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One endpoint's names on a network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Record {
    /// Container name, aliases and short id (12 hex); matched case-insensitively.
    pub names: Vec<String>,
    /// Its addresses on the network (A and AAAA answers).
    pub addrs: Vec<IpAddr>,
    /// Who holds it: a dead owner's record is not answered.
    pub owner: Owner,
}

/// A network's file.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub(crate) struct NetworkFile {
    pub listen: Vec<IpAddr>,
    pub records: Vec<Record>,
}

/// The records of every network, under `RUN/net/dns/`.
pub struct Records {
    dir: PathBuf,
}

/// The directory of the records and the server's files.
pub(crate) fn dir(run_root: &Path) -> PathBuf {
    run_root.join("net").join("dns")
}

/// Whether a directory entry is a network's record file (not a temp file or the server's).
pub(crate) fn is_network_file(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.')
}

pub(crate) fn read(path: &Path) -> Result<Option<NetworkFile>, DnsError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| DnsError::Corrupt {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", path)(e)),
    }
}

impl Records {
    /// Opens (creating) `RUN/net/dns/`.
    pub fn open(run_root: &Path) -> Result<Records, DnsError> {
        let dir = dir(run_root);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Records { dir })
    }

    fn path(&self, network_id: &str) -> PathBuf {
        self.dir.join(format!("{network_id}.json"))
    }

    fn lock(&self) -> Result<File, DnsError> {
        let path = self.dir.join("records.lock");
        berth_fs::lock_exclusive(&path).map_err(|e| io(e.op, &path)(e.source))
    }

    fn write(&self, network_id: &str, file: &NetworkFile) -> Result<(), DnsError> {
        let path = self.path(network_id);
        let bytes = serde_json::to_vec(file).expect("records serialise");
        berth_fs::write_atomic(&path, &bytes, berth_fs::Durability::Volatile).map_err(|e| {
            DnsError::Io {
                what: "writing",
                path: path.clone(),
                source: std::io::Error::other(e),
            }
        })
    }

    /// Sets `rec` on the network (replacing the record of the same owner id); `listen` = the
    /// network's gateway addresses, where the server answers for it.
    pub fn set(&self, network_id: &str, listen: &[IpAddr], rec: Record) -> Result<(), DnsError> {
        let _lock = self.lock()?;
        let mut file = read(&self.path(network_id))?.unwrap_or_default();
        file.listen = listen.to_vec();
        file.records
            .retain(|r| r.owner.id != rec.owner.id && r.owner.is_alive());
        file.records.push(rec);
        self.write(network_id, &file)
    }

    /// Removes the owner's record from the network (absent = Ok). The network's file stays, so the
    /// server keeps answering (and forwarding) on it.
    pub fn remove(&self, network_id: &str, owner_id: &str) -> Result<(), DnsError> {
        let _lock = self.lock()?;
        let Some(mut file) = read(&self.path(network_id))? else {
            return Ok(());
        };
        let before = file.records.len();
        file.records.retain(|r| r.owner.id != owner_id);
        if file.records.len() == before {
            return Ok(());
        }
        self.write(network_id, &file)
    }

    /// Removes the network's file: the server stops listening for it (and exits if it was the last).
    pub fn remove_network(&self, network_id: &str) -> Result<(), DnsError> {
        let _lock = self.lock()?;
        let path = self.path(network_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &path)(e)),
            _ => Ok(()),
        }
    }
}
