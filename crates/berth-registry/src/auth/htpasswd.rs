//! The htpasswd file: `user:bcrypt-hash` lines, and password checks with a short-lived cache
//! (bcrypt is deliberately slow, and clients send credentials with every request).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::AuthError;

/// How long a successful check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Entries kept at most; stale ones are dropped first, then everything.
const CACHE_MAX: usize = 4096;

/// The users of an htpasswd file.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// A real hash from the file, checked against for unknown users so that they take as long
    /// as known ones.
    decoy: String,
    /// `(user, sha256(password))` → when it was last verified.
    cache: Mutex<HashMap<Key, Instant>>,
    /// One gate per key being verified, so a burst of requests with the same new credentials
    /// (a client's parallel layer uploads) runs bcrypt once, not once per request.
    gates: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// bcrypt runs so far.
    checks: AtomicU64,
}

/// A cache key: the user and the SHA-256 of the password (never the password itself).
type Key = (String, [u8; 32]);

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Htpasswd {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Htpasswd, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadHtpasswd {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of `path`. Blank lines and `#` comments are skipped; every other line
    /// must be `user:$2y$…` (or `$2b$`, `$2a$`): other hash kinds (MD5 `$apr1$`, `{SHA}`, crypt)
    /// are refused.
    pub fn parse(path: &Path, text: &str) -> Result<Htpasswd, AuthError> {
        let bad = |line: usize, why: String| AuthError::HtpasswdLine {
            path: path.to_path_buf(),
            line,
            why,
        };
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let Some((user, hash)) = line.split_once(':') else {
                return Err(bad(n, "expected user:hash".into()));
            };
            if user.is_empty() {
                return Err(bad(n, "empty user name".into()));
            }
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                let kind = if hash.starts_with("$apr1$") {
                    "an MD5 ($apr1$) hash"
                } else if hash.starts_with("{SHA}") {
                    "a SHA-1 ({SHA}) hash"
                } else {
                    "not a bcrypt hash"
                };
                return Err(bad(
                    n,
                    format!("user {user:?} has {kind}; only bcrypt is accepted (htpasswd -B)"),
                ));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(bad(n, format!("user {user:?} has a malformed bcrypt hash")));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(bad(n, format!("user {user:?} appears twice")));
            }
        }
        let Some(decoy) = users.values().next().cloned() else {
            return Err(AuthError::NoHtpasswdUsers {
                path: path.to_path_buf(),
            });
        };
        Ok(Htpasswd {
            users,
            decoy,
            cache: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        })
    }

    /// Whether the file names this user.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Checks a password, off the async threads when bcrypt has to run.
    pub async fn verify(self: &Arc<Self>, user: &str, password: &str) -> bool {
        let key: Key = (user.to_string(), Sha256::digest(password.as_bytes()).into());
        if self.cached(&key) {
            return true;
        }
        let gate = lock(&self.gates).entry(key.clone()).or_default().clone();
        let held = gate.lock().await;
        let ok = if self.cached(&key) {
            true
        } else {
            let me = self.clone();
            let password = password.to_string();
            let user = user.to_string();
            let ok = tokio::task::spawn_blocking(move || me.check(&user, &password))
                .await
                .unwrap_or(false);
            if ok {
                self.remember(key.clone());
            }
            ok
        };
        drop(held);
        let mut gates = lock(&self.gates);
        // Only the map and this task hold the gate: nobody waits on it any more.
        if Arc::strong_count(&gate) == 2 {
            gates.remove(&key);
        }
        ok
    }

    /// The bcrypt check itself.
    fn check(&self, user: &str, password: &str) -> bool {
        self.checks.fetch_add(1, Ordering::Relaxed);
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.decoy);
                false
            }
        }
    }

    fn cached(&self, key: &Key) -> bool {
        let cache = lock(&self.cache);
        cache.get(key).is_some_and(|t| t.elapsed() < CACHE_TTL)
    }

    fn remember(&self, key: Key) {
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, t| t.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, Instant::now());
    }
}

/// Locks a std mutex, ignoring poisoning (the maps stay consistent at every step).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lines: &[String]) -> String {
        lines.join("\n")
    }

    #[tokio::test]
    async fn bcrypt_entries_verify_and_are_cached() {
        let h = bcrypt::hash("s3cret", 4).unwrap();
        let text = file(&[
            "# users".into(),
            String::new(),
            format!("alice:{h}"),
            format!("bob:{}", h.replacen("$2b$", "$2y$", 1)),
        ]);
        let hp = Arc::new(Htpasswd::parse(Path::new("f"), &text).unwrap());
        assert!(hp.contains("alice") && hp.contains("bob") && !hp.contains("carol"));
        assert!(hp.verify("alice", "s3cret").await);
        assert!(hp.verify("bob", "s3cret").await, "$2y$ is bcrypt too");
        assert!(!hp.verify("alice", "wrong").await);
        assert!(!hp.verify("carol", "s3cret").await);
        let key = ("alice".to_string(), Sha256::digest(b"s3cret").into());
        assert!(hp.cached(&key));
        let wrong = ("alice".to_string(), Sha256::digest(b"wrong").into());
        assert!(!hp.cached(&wrong), "failures are not cached");
        assert!(lock(&hp.gates).is_empty(), "gates are dropped once unused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_new_credentials_runs_bcrypt_once() {
        let h = bcrypt::hash("pw", 8).unwrap();
        let hp = Arc::new(Htpasswd::parse(Path::new("f"), &format!("u:{h}")).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let hp = hp.clone();
                tokio::spawn(async move { hp.verify("u", "pw").await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(hp.checks.load(Ordering::Relaxed), 1);
        assert!(lock(&hp.gates).is_empty());
    }

    #[test]
    fn other_hash_kinds_are_refused_naming_the_line() {
        let h = bcrypt::hash("x", 4).unwrap();
        for (entry, word) in [
            ("bob:$apr1$abc$def", "MD5"),
            ("bob:{SHA}abc=", "SHA-1"),
            ("bob:plaintext", "not a bcrypt"),
        ] {
            let text = file(&[format!("alice:{h}"), entry.into()]);
            let e = Htpasswd::parse(Path::new("/etc/reg.htpasswd"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/etc/reg.htpasswd") && e.contains("line 2") && e.contains(word),
                "{e}"
            );
        }
    }

    #[test]
    fn malformed_duplicate_and_empty_files_are_refused() {
        let h = bcrypt::hash("x", 4).unwrap();
        let p = Path::new("f");
        assert!(Htpasswd::parse(p, "alice").is_err());
        assert!(Htpasswd::parse(p, "alice:$2y$05$short").is_err());
        assert!(Htpasswd::parse(p, &file(&[format!("a:{h}"), format!("a:{h}")])).is_err());
        let e = Htpasswd::parse(p, "# nobody\n").unwrap_err().to_string();
        assert!(e.contains("no users"), "{e}");
    }
}
