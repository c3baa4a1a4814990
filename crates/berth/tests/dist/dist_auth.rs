//! Token auth through the CLI against `berth registry serve` in bearer-token mode: push and pull
//! refused without login, `berth login` (--password-stdin, -p, stored credentials), a user with
//! pull rights only refused on push with a clear message, the credentials file kept at mode 0600,
//! and `berth logout`.

use crate::dist_util::{Env, busybox_image};
use crate::registry_util::{Registry, Store};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

const USERS: [(&str, &str); 2] = [("alice", "alice-secret"), ("bob", "bob-secret")];

/// A registry in token mode: alice pushes and pulls `team/*`, bob only pulls it, anonymous
/// nothing.
fn token_registry(dir: &Path) -> (Registry, Store) {
    let htpasswd = dir.join("htpasswd");
    berth_testkit::registry::write_htpasswd(&htpasswd, &USERS, false);
    let secret = dir.join("token.key");
    std::fs::write(&secret, hex::encode(rand::random::<[u8; 32]>())).unwrap();
    let conf = dir.join("registry.toml");
    std::fs::write(
        &conf,
        format!(
            r#"[auth]
htpasswd = "{}"
anonymous_pull = false
token_secret_file = "{}"
[[auth.access]]
user = "alice"
repositories = ["team/*"]
actions = ["pull", "push"]
[[auth.access]]
user = "bob"
repositories = ["team/*"]
actions = ["pull"]
"#,
            htpasswd.display(),
            secret.display()
        ),
    )
    .unwrap();
    let store = Store::local();
    let reg = Registry::start(&store, &["--config", conf.to_str().unwrap()]);
    (reg, store)
}

/// `berth login -u USER --password-stdin SERVER` with the password on stdin.
fn login(env: &Env, user: &str, password: &str, server: &str) -> (Option<i32>, String, String) {
    let mut c = env.cmd();
    c.args(["login", "-u", user, "--password-stdin", server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn berth login");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stored_servers(env: &Env) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(env.auth_file()) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("auth file is JSON");
    v["auths"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn token_auth_login_push_pull_denied_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _store) = token_registry(dir.path());
    let img = busybox_image("localhost/test/auth:1", "auth");
    let name = format!("{}/team/app:1", reg.addr);

    let alice = Env::new();
    alice.load(&img, &name);
    // No login: the registry's 401 becomes a clear message pointing at `berth login`.
    let msg = alice.fails(&["push", &name]);
    assert!(
        msg.contains("authentication required") && msg.contains("berth login"),
        "{msg}"
    );

    // A wrong password is refused and nothing is stored.
    let (code, _, err) = login(&alice, "alice", "wrong", &reg.addr);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.starts_with("berth: "), "{err}");
    assert!(stored_servers(&alice).is_empty());

    // Without a terminal and without -u, there is nobody to ask.
    let msg = alice.fails(&["login", &reg.addr]);
    assert!(msg.contains("non TTY"), "{msg}");

    let (code, out, err) = login(&alice, "alice", "alice-secret", &reg.addr);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "Login Succeeded\n");
    let mode = std::fs::metadata(alice.auth_file())
        .expect("credentials file written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    assert_eq!(stored_servers(&alice), vec![reg.addr.clone()]);
    let text = std::fs::read_to_string(alice.auth_file()).unwrap();
    assert!(
        !text.contains("alice-secret"),
        "Docker's format keeps the password base64-encoded in `auth`"
    );

    // Logged in again without arguments: the stored credential is checked and used.
    let out = alice.ok(&["login", &reg.addr]).stdout;
    assert!(out.ends_with("Login Succeeded\n"), "{out}");

    let out = alice.ok(&["push", &name]).stdout;
    assert!(out.contains("Pushed"), "{out}");

    // bob: anonymous pull is refused; after login he pulls and runs, but may not push.
    let bob = Env::new();
    let before = bob.listing();
    let msg = bob.fails(&["pull", &name]);
    assert!(msg.contains("authentication required"), "{msg}");
    assert_eq!(
        crate::dist_util::listing_diff(&before, &bob.listing()),
        "",
        "a refused pull leaves the store as it was"
    );
    // -p works too, with Docker's warning.
    let f = bob.ok(&["login", "-u", "bob", "-p", "bob-secret", &reg.addr]);
    assert!(f.stderr.contains("--password-stdin"), "{}", f.stderr);
    bob.ok(&["pull", &name]);
    assert_eq!(
        bob.ok(&["run", "--rm", &name, "cat", "/hello.txt"]).stdout,
        "hello from auth\n"
    );
    let other = format!("{}/team/bobs:1", reg.addr);
    bob.ok(&["tag", &name, &other]);
    let msg = bob.fails(&["push", &other]);
    assert!(
        msg.contains("denied") || msg.contains("authentication required"),
        "a pull-only user's push names the refusal: {msg}"
    );
    assert!(msg.contains("team/bobs"), "{msg}");

    // Logout removes the credential; the next push is refused again.
    let out = alice.ok(&["logout", &reg.addr]).stdout;
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    assert!(stored_servers(&alice).is_empty());
    let out = alice.ok(&["logout", &reg.addr]).stdout;
    assert_eq!(out, format!("Not logged in to {}\n", reg.addr));
    let msg = alice.fails(&["push", &name]);
    assert!(msg.contains("authentication required"), "{msg}");
    bob.t.assert_clean();
}

/// Reads `out` into `seen` until it holds `want` (or 60 s pass).
fn wait_for(
    rx: &std::sync::mpsc::Receiver<Vec<u8>>,
    seen: &mut String,
    want: &str,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
            Err(_) => return Err(format!("no {want:?} in {seen:?}")),
        }
    }
    Ok(())
}

#[test]
fn login_prompts_on_a_terminal_without_echoing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _store) = token_registry(dir.path());
    let env = Env::new();
    // `script` gives berth a terminal; the test types only once each prompt is shown.
    let line = format!(
        "{} --root {} --run-root {} login {}",
        assert_cmd::cargo::cargo_bin("berth").display(),
        env.root().display(),
        env.t.run_root().display(),
        reg.addr
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", env.home.path())
        .env("BERTH_REGISTRIES_CONF", env.conf())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = String::new();
    let typed = (|| {
        wait_for(&rx, &mut seen, "Username: ")?;
        stdin.write_all(b"alice\n").map_err(|e| e.to_string())?;
        wait_for(&rx, &mut seen, "Password: ")?;
        stdin
            .write_all(b"alice-secret\n")
            .map_err(|e| e.to_string())?;
        wait_for(&rx, &mut seen, "Login Succeeded")
    })();
    drop(stdin);
    let status = child.wait().unwrap();
    while let Ok(b) = rx.try_recv() {
        seen.push_str(&String::from_utf8_lossy(&b));
    }
    typed.unwrap();
    assert!(status.success(), "{seen}");
    assert!(seen.contains("alice"), "the user name is echoed: {seen:?}");
    assert!(
        !seen.contains("alice-secret"),
        "the password was echoed: {seen:?}"
    );
    assert_eq!(stored_servers(&env), vec![reg.addr.clone()]);
}
