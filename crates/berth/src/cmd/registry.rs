//! `berth registry serve` and `berth registry gc`: the registry server of crate `berth-registry`.

use std::path::PathBuf;

use anyhow::Context;
use berth_registry::{Config, StorageSpec};

/// Registry commands.
#[derive(clap::Subcommand, Debug)]
pub enum RegistryCommand {
    /// Serve an OCI distribution registry.
    Serve(ServeArgs),
    /// Delete unreferenced blobs and abandoned uploads (safe while the registry serves).
    Gc(GcArgs),
}

/// Where the data lives.
#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// A directory, or s3://BUCKET[/PREFIX].
    #[arg(long)]
    pub storage: Option<String>,
    /// S3 endpoint URL for S3-compatible servers (e.g. http://127.0.0.1:9000).
    #[arg(long = "s3-endpoint")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long = "s3-region")]
    pub s3_region: Option<String>,
    /// A TOML configuration file; flags given here take precedence.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `berth registry serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long)]
    pub addr: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Run garbage collection every this many seconds (0: never).
    #[arg(long = "gc-interval")]
    pub gc_interval: Option<u64>,
    /// Access log format: json or text.
    #[arg(long = "log-format")]
    pub log_format: Option<String>,
}

/// `berth registry gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Only report what would be deleted.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Keep blobs and uploads younger than this many seconds.
    #[arg(long)]
    pub grace: Option<u64>,
}

fn load(args: &StorageArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(loc) = &args.storage {
        let mut spec = config
            .storage
            .take()
            .unwrap_or_else(|| StorageSpec::new(loc.clone()));
        spec.location = loc.clone();
        config.storage = Some(spec);
    }
    if let Some(spec) = config.storage.as_mut() {
        if args.s3_endpoint.is_some() {
            spec.s3_endpoint = args.s3_endpoint.clone();
        }
        if args.s3_region.is_some() {
            spec.s3_region = args.s3_region.clone();
        }
    }
    Ok(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Memory is a feature of the registry (it must stay small while gigabytes stream through): one
    // malloc arena per thread would keep freed chunk buffers mapped in every worker and blocking
    // thread, so cap the arenas, and bound the blocking pool that file I/O runs on.
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logs(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        b.json().flatten_event(true).try_init()
    } else {
        b.try_init()
    };
}

/// Runs a registry command.
pub fn run(c: RegistryCommand) -> anyhow::Result<u8> {
    match c {
        RegistryCommand::Serve(a) => {
            let mut config = load(&a.storage)?;
            if let Some(addr) = a.addr {
                config.addr = addr;
            }
            if let Some(i) = a.gc_interval {
                config.gc.interval_secs = i;
            }
            if let Some(f) = a.log_format {
                config.log_format = f;
            }
            config.validate()?;
            init_logs(&config.log_format);
            runtime()?.block_on(berth_registry::serve(config))?;
            Ok(0)
        }
        RegistryCommand::Gc(a) => {
            let mut config = load(&a.storage)?;
            if let Some(g) = a.grace {
                config.gc.grace_secs = g;
            }
            config.validate()?;
            init_logs("text");
            let storage =
                berth_registry::Storage::open(config.storage.as_ref().expect("validated"))?;
            let report = runtime()?
                .block_on(berth_registry::gc::collect(&storage, &config.gc, a.dry_run))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(0)
        }
    }
}
