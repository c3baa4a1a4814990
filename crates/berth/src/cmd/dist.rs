//! Registry commands: pull, push, login, logout (Docker's flags and output), and the pull that
//! `run`/`create` do for an image the store lacks. The work is `berth-dist`'s; this file turns its
//! events into Docker's progress lines, bars on a terminal, or a JSON stream.

use crate::Globals;
use anyhow::{Context, bail};
use berth_dist::{Client, Config, Event, EventSink, LayerStatus, PullOptions, PushOptions};
use berth_oci::{Digest, Reference};
use berth_store::Store;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::image::human_size;

/// Registry subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DistCommand {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
}

/// How progress is shown.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines (progress throttled to about one line a second per layer).
    Plain,
    /// One JSON event per line on stdout, for programs.
    Json,
}

/// Per-command registry options.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Require HTTPS and verify certificates (`--tls-verify=false`: plain HTTP or unverified TLS
    /// for this command's registry).
    #[arg(long = "tls-verify", num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// The same as `--tls-verify=false`.
    #[arg(long)]
    pub insecure: bool,
}

/// Arguments of `pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Print only the image's reference.
    #[arg(short, long)]
    pub quiet: bool,
    /// Pick this platform from a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Progress output: auto, plain or json.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressKind,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// Arguments of `push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Print only the pushed reference.
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output: auto, plain or json.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressKind,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The local image, NAME[:TAG] or id.
    pub name: String,
    /// Push to this reference instead of NAME (like podman's DESTINATION).
    pub dest: Option<String>,
}

/// Arguments of `login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Username.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Take the password from STDIN.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The registry (default: docker.io).
    pub server: Option<String>,
}

/// Arguments of `logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The registry (default: docker.io).
    pub server: Option<String>,
}

/// What `run`/`create` do about a missing image (`--pull`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull when the store lacks the image.
    Missing,
    /// Pull before every run.
    Always,
    /// Never pull.
    Never,
}

/// Runs a registry command.
pub fn run(g: &Globals, c: DistCommand) -> anyhow::Result<u8> {
    match c {
        DistCommand::Pull(a) => pull_cmd(g, a),
        DistCommand::Push(a) => push_cmd(g, a),
        DistCommand::Login(a) => login(g, a),
        DistCommand::Logout(a) => logout(g, a),
    }
}

/// The registry settings for one command: the configuration file (`--registries-conf`, else
/// `BERTH_REGISTRIES_CONF`, else the default path), with `registry` marked insecure when the
/// command said `--tls-verify=false` or `--insecure`.
fn load_config(g: &Globals, tls: Option<&TlsArgs>, registry: &str) -> anyhow::Result<Config> {
    let mut config = Config::load(g.registries_conf.as_deref())?;
    if tls.is_some_and(|t| t.insecure || !t.tls_verify) {
        config.insecure.push(registry.to_owned());
        if registry == "docker.io" {
            let host = config
                .default_registry
                .clone()
                .unwrap_or_else(|| "registry-1.docker.io".to_owned());
            config.insecure.push(host);
        }
    }
    Ok(config)
}

/// The async runtime a command's transfers run on. Dropping it joins its threads, so a caller
/// that forks afterwards (`run`) is single-threaded again.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn open_store(g: &Globals) -> anyhow::Result<Store> {
    Store::open(&g.root).with_context(|| format!("opening image store {}", g.root.display()))
}

/// `TAG` or `sha256:…`: how Docker names what is pulled or pushed in its first and last lines.
fn tag_or_digest(r: &Reference) -> String {
    match (r.tag(), r.digest()) {
        (_, Some(d)) => d.to_string(),
        (Some(t), None) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

fn pull_cmd(g: &Globals, a: PullArgs) -> anyhow::Result<u8> {
    let reference = Reference::parse(&a.name)?;
    let mode = if a.quiet {
        Mode::Quiet
    } else {
        Mode::from_kind(a.progress, Out::Stdout)
    };
    let store = open_store(g)?;
    let config = load_config(g, Some(&a.tls), reference.registry())?;
    pull_into(
        &store,
        config,
        &reference,
        a.platform,
        mode,
        Out::Stdout,
        true,
    )?;
    if a.quiet {
        println!("{reference}");
    }
    Ok(0)
}

/// Pulls `reference` into `store`, rendering progress as `mode` says on `out`; with
/// `last_line`, ends with the full reference as `docker pull` does.
fn pull_into(
    store: &Store,
    config: Config,
    reference: &Reference,
    platform: Option<String>,
    mode: Mode,
    out: Out,
    last_line: bool,
) -> anyhow::Result<()> {
    let before = store.image(&reference.to_string()).ok().map(|i| i.id);
    let progress = Arc::new(Progress::new(mode, Verb::Pull, out, HashSet::new()));
    progress.line(&format!(
        "{}: Pulling from {}",
        tag_or_digest(reference),
        reference.repository()
    ));
    let client = Client::new(config)?;
    let p = progress.clone();
    let events: EventSink = Arc::new(move |e| p.event(e));
    let opts = PullOptions { platform, events };
    let rt = runtime()?;
    let result = rt.block_on(berth_dist::pull(&client, store, reference, &opts));
    drop(opts);
    drop(rt);
    progress.finish();
    let pulled = result?;
    if matches!(mode, Mode::Bars | Mode::Plain) {
        let name = reference.familiar();
        progress.line(&format!("Digest: {}", pulled.digest));
        if before.as_ref() == Some(&pulled.image.id) {
            progress.line(&format!("Status: Image is up to date for {name}"));
        } else {
            progress.line(&format!("Status: Downloaded newer image for {name}"));
        }
        if last_line {
            progress.line(&reference.to_string());
        }
    }
    Ok(())
}

fn push_cmd(g: &Globals, a: PushArgs) -> anyhow::Result<u8> {
    let target = Reference::parse(a.dest.as_deref().unwrap_or(&a.name))?;
    let store = open_store(g)?;
    let image = store.image(&a.name)?;
    let config = load_config(g, Some(&a.tls), target.registry())?;
    let mode = if a.quiet {
        Mode::Quiet
    } else {
        Mode::from_kind(a.progress, Out::Stdout)
    };
    // Docker shows layers only: the config blob's events are not drawn.
    let hidden = HashSet::from([image.id.clone()]);
    let progress = Arc::new(Progress::new(mode, Verb::Push, Out::Stdout, hidden));
    progress.line(&format!(
        "The push refers to repository [{}]",
        target.name()
    ));
    let client = Client::new(config)?;
    let p = progress.clone();
    let events: EventSink = Arc::new(move |e| p.event(e));
    let opts = PushOptions { events };
    let rt = runtime()?;
    let result = rt.block_on(berth_dist::push(&client, &store, &a.name, &target, &opts));
    drop(opts);
    drop(rt);
    progress.finish();
    let pushed = result?;
    match mode {
        Mode::Quiet => println!("{}", pushed.reference),
        Mode::Bars | Mode::Plain => {
            let label = match target.tag() {
                Some(t) => format!("{t}: "),
                None => String::new(),
            };
            progress.line(&format!(
                "{label}digest: {} size: {}",
                pushed.digest, pushed.size
            ));
        }
        Mode::Json => {}
    }
    Ok(0)
}

/// `docker.io` for Docker Hub's names and URLs, else `host[:port]` of a server argument
/// (`https://host:5000/v2/` → `host:5000`).
fn registry_of(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        ""
        | "docker.io"
        | "index.docker.io"
        | "registry-1.docker.io"
        | "registry.hub.docker.com" => "docker.io".to_owned(),
        _ => host,
    }
}

fn login(g: &Globals, a: LoginArgs) -> anyhow::Result<u8> {
    let registry = registry_of(a.server.as_deref().unwrap_or("docker.io"));
    let config = load_config(g, Some(&a.tls), &registry)?;
    let client = Client::new(config)?;
    let interactive = std::io::stdin().is_terminal();

    // No user and no password given: try the stored credential first, as Docker does.
    if a.username.is_none()
        && a.password.is_none()
        && !a.password_stdin
        && let Some(cred) = client.auth().get(&registry)?
        && runtime()?.block_on(client.login(&registry, &cred)).is_ok()
    {
        println!("Authenticating with existing credentials...");
        println!("Login Succeeded");
        return Ok(0);
    }

    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut s)
            .context("reading the password from STDIN")?;
        let s = s.trim_end_matches(['\n', '\r']).to_owned();
        if s.is_empty() {
            bail!("password is empty (from STDIN)");
        }
        Some(s)
    } else {
        if a.password.is_some() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        a.password
    };
    let username = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => prompt("Username: ")?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if username.is_empty() {
        bail!("username is empty");
    }
    let password = match password {
        Some(p) => p,
        None if interactive => prompt_secret("Password: ")?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if password.is_empty() {
        bail!("password is empty");
    }
    let cred = berth_dist::auth::Credential {
        username,
        secret: password,
    };
    let rt = runtime()?;
    rt.block_on(client.login(&registry, &cred))?;
    drop(rt);
    let stored = client.auth().store(&registry, &cred)?;
    if stored == client.auth().auth_file() {
        eprintln!(
            "WARNING! Your credentials are stored unencrypted in '{}'.",
            stored.display()
        );
    }
    println!("Login Succeeded");
    Ok(0)
}

fn logout(g: &Globals, a: LogoutArgs) -> anyhow::Result<u8> {
    let shown = a.server.clone().unwrap_or_else(|| "docker.io".to_owned());
    let registry = registry_of(&shown);
    let config = load_config(g, None, &registry)?;
    let client = Client::new(config)?;
    if client.auth().erase(&registry)? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(0)
}

/// Reads a line from the terminal after printing `question`.
fn prompt(question: &str) -> anyhow::Result<String> {
    let mut out = std::io::stdout().lock();
    write!(out, "{question}")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// Reads a line from the terminal with echo off.
fn prompt_secret(question: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    // Echo goes off before the prompt shows, so nothing typed after it can be echoed.
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning off echo")?;
    let shown = (|| {
        let mut out = std::io::stdout().lock();
        write!(out, "{question}")?;
        out.flush()
    })();
    if let Err(e) = shown {
        let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
        return Err(e.into());
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    println!();
    read?;
    restored.context("restoring the terminal's settings")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Runs `create` (the engine's create of a container from `image`) with `run`/`create`'s
/// `--pull` policy: `always` pulls first; `missing` pulls only when the engine reports the image
/// absent, then creates again, so a run of a present image pays nothing; `never` does not pull.
/// Progress goes to stderr, as Docker's does, so the container's output stays alone on stdout.
pub fn create_pulling<T>(
    g: &Globals,
    image: &str,
    policy: PullPolicy,
    mut create: impl FnMut() -> berth_engine::Result<T>,
) -> anyhow::Result<T> {
    if policy == PullPolicy::Always && pullable(image) {
        pull_for_run(g, image, false)?;
        return Ok(create()?);
    }
    match create() {
        Err(berth_engine::Error::Image {
            action: "resolving",
            cause,
            ..
        }) if policy == PullPolicy::Missing
            && matches!(*cause, berth_store::Error::ImageNotFound(_))
            && pullable(image) =>
        {
            pull_for_run(g, image, true)?;
            Ok(create()?)
        }
        other => Ok(other?),
    }
}

/// Whether `image` names something to pull: not a full image id.
fn pullable(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    !(hex.len() == 64 && berth_oci::looks_like_id(hex))
}

fn pull_for_run(g: &Globals, image: &str, missing: bool) -> anyhow::Result<()> {
    let reference = Reference::parse(image)?;
    if missing {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    let store = open_store(g)?;
    let config = load_config(g, None, reference.registry())?;
    let mode = Mode::from_kind(ProgressKind::Auto, Out::Stderr);
    pull_into(&store, config, &reference, None, mode, Out::Stderr, false)
}

/// Where progress is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Stdout,
    Stderr,
}

impl Out {
    fn is_terminal(self) -> bool {
        match self {
            Out::Stdout => std::io::stdout().is_terminal(),
            Out::Stderr => std::io::stderr().is_terminal(),
        }
    }

    fn write_line(self, line: &str) {
        // A closed pipe must not turn a finished transfer into a failure: write errors are ignored.
        let _ = match self {
            Out::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Out::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }
}

/// How progress is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// indicatif bars, one per layer.
    Bars,
    /// One line per state change; progress lines throttled.
    Plain,
    /// serde of each [`Event`], one per line.
    Json,
    /// Nothing.
    Quiet,
}

impl Mode {
    fn from_kind(kind: ProgressKind, out: Out) -> Mode {
        match kind {
            ProgressKind::Json => Mode::Json,
            ProgressKind::Plain => Mode::Plain,
            ProgressKind::Auto if out.is_terminal() => Mode::Bars,
            ProgressKind::Auto => Mode::Plain,
        }
    }
}

/// Which way the blobs go (the words differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Pull,
    Push,
}

/// At most one plain progress line per layer this often.
const PLAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Turns events into Docker's lines. Shared by the transfer tasks, hence the lock.
struct Progress {
    mode: Mode,
    verb: Verb,
    out: Out,
    /// Blobs not drawn (a push's config).
    hidden: HashSet<Digest>,
    multi: Option<MultiProgress>,
    /// Set by [`Progress::finish`]: later lines go below the bars.
    finished: AtomicBool,
    layers: Mutex<HashMap<Digest, LayerView>>,
}

/// What is shown of one layer.
struct LayerView {
    bar: Option<ProgressBar>,
    /// When it first showed up (layers are listed in that order).
    order: usize,
    /// Its current text, as its bar shows it.
    last: String,
    last_plain: Option<Instant>,
    /// Reached a final state (its bar is finished).
    finished: bool,
}

impl Progress {
    fn new(mode: Mode, verb: Verb, out: Out, hidden: HashSet<Digest>) -> Progress {
        let multi = (mode == Mode::Bars).then(|| {
            let target = match out {
                Out::Stdout => ProgressDrawTarget::stdout_with_hz(10),
                Out::Stderr => ProgressDrawTarget::stderr_with_hz(10),
            };
            MultiProgress::with_draw_target(target)
        });
        Progress {
            mode,
            verb,
            out,
            hidden,
            multi,
            finished: AtomicBool::new(false),
            layers: Mutex::new(HashMap::new()),
        }
    }

    /// A line outside the layers' bars (above them on a terminal).
    fn line(&self, text: &str) {
        match self.mode {
            Mode::Bars => match &self.multi {
                Some(m) if !m.is_hidden() && !self.finished.load(Ordering::SeqCst) => {
                    let _ = m.println(text);
                }
                _ => self.out.write_line(text),
            },
            Mode::Plain => self.out.write_line(text),
            Mode::Json | Mode::Quiet => {}
        }
    }

    /// Leaves every bar as it last was; lines after this go below them.
    /// On a terminal the bars are replaced by their last text as plain lines, so what follows
    /// lands below them whatever the terminal's width.
    fn finish(&self) {
        let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let mut shown: Vec<(&Digest, &LayerView)> =
            layers.iter().filter(|(_, v)| v.bar.is_some()).collect();
        shown.sort_by_key(|(_, v)| v.order);
        for (_, v) in &shown {
            if let Some(b) = &v.bar {
                b.finish_and_clear();
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
        for (d, v) in shown {
            self.out.write_line(&format!("{}: {}", short_id(d), v.last));
        }
        self.finished.store(true, Ordering::SeqCst);
    }

    fn event(&self, e: Event) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                if let Ok(text) = serde_json::to_string(&e) {
                    self.out.write_line(&text);
                }
            }
            Mode::Bars | Mode::Plain => {
                if let Event::Layer {
                    digest,
                    size,
                    status,
                } = e
                    && !self.hidden.contains(&digest)
                {
                    self.layer(&digest, size, &status);
                }
            }
        }
    }

    fn layer(&self, digest: &Digest, size: u64, status: &LayerStatus) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let order = layers.len();
        let view = layers.entry(digest.clone()).or_insert_with(|| LayerView {
            order,
            last: String::new(),
            bar: self.multi.as_ref().map(|m| {
                let b = m.add(ProgressBar::new(size.max(1)));
                b.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_prefix(short_id(digest));
                b
            }),
            last_plain: None,
            finished: false,
        });
        let id = short_id(digest);
        let texts: Vec<String> = match (status, self.verb) {
            (LayerStatus::Waiting, Verb::Pull) => vec!["Pulling fs layer".into()],
            (LayerStatus::Waiting, Verb::Push) => vec!["Preparing".into()],
            (LayerStatus::Exists, Verb::Pull) => vec!["Already exists".into()],
            (LayerStatus::Exists, Verb::Push) => vec!["Layer already exists".into()],
            (LayerStatus::Mounted { from }, _) => vec![format!("Mounted from {from}")],
            (LayerStatus::Resumed { offset }, Verb::Pull) => {
                vec![format!("Resuming download at {}", human_size(*offset))]
            }
            (LayerStatus::Resumed { offset }, Verb::Push) => {
                vec![format!("Resuming upload at {}", human_size(*offset))]
            }
            (LayerStatus::Progress { done }, verb) => {
                let word = match verb {
                    Verb::Pull => "Downloading",
                    Verb::Push => "Pushing",
                };
                let text = format!("{word} {}", docker_bar(*done, size));
                if let Some(b) = &view.bar {
                    b.set_position(*done);
                    b.set_message(text.clone());
                    view.last = text;
                    return;
                }
                // Plain: throttled, and the final byte count is left to the state lines.
                let due = view
                    .last_plain
                    .is_none_or(|t| t.elapsed() >= PLAIN_INTERVAL);
                if !due || *done >= size {
                    return;
                }
                view.last_plain = Some(Instant::now());
                vec![text]
            }
            (LayerStatus::Extracting, _) => vec![
                "Verifying Checksum".into(),
                "Download complete".into(),
                "Extracting".into(),
            ],
            (LayerStatus::Complete, Verb::Pull) => vec!["Pull complete".into()],
            (LayerStatus::Complete, Verb::Push) => vec!["Pushed".into()],
        };
        let done = matches!(
            status,
            LayerStatus::Exists | LayerStatus::Mounted { .. } | LayerStatus::Complete
        );
        match &view.bar {
            Some(b) => {
                if let Some(last) = texts.last() {
                    b.set_message(last.clone());
                    view.last = last.clone();
                }
                if done && !view.finished {
                    b.finish();
                }
            }
            None => {
                for t in &texts {
                    self.out.write_line(&format!("{id}: {t}"));
                }
            }
        }
        if done {
            view.finished = true;
        }
    }
}

/// The 12 hex digits Docker shows for a blob.
fn short_id(d: &Digest) -> String {
    let s = d.to_string();
    let hex = s.split_once(':').map_or(s.as_str(), |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Docker's progress bar: 50 columns of `=` up to a `>`, then `done/total` in its units.
fn docker_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH) as usize;
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(filled),
        " ".repeat(WIDTH as usize - filled),
        human_size(done),
        human_size(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_look_like_docker() {
        let b = docker_bar(0, 64_000_000);
        assert!(b.starts_with("[>"), "{b}");
        assert!(b.ends_with("      0B/64MB"), "{b}");
        let b = docker_bar(32_000_000, 64_000_000);
        assert_eq!(b.matches('=').count(), 25, "{b}");
        assert!(b.ends_with("  32MB/64MB"), "{b}");
        let b = docker_bar(64_000_000, 64_000_000);
        assert_eq!(b.matches('=').count(), 50, "{b}");
        assert!(b.contains("=>]"), "{b}");
    }

    #[test]
    fn servers_name_registries() {
        assert_eq!(registry_of("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_of("docker.io"), "docker.io");
        assert_eq!(registry_of("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(registry_of("Quay.IO"), "quay.io");
    }

    #[test]
    fn short_ids_are_twelve_hex_digits() {
        let d = Digest::of(b"x");
        assert_eq!(short_id(&d).len(), 12);
        assert!(d.to_string().contains(&short_id(&d)));
    }
}
