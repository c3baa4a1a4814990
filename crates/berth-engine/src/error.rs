//! The engine's error: each variant says what was being done to which container or image.

use std::path::PathBuf;

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or unsupported option.
    #[error(transparent)]
    Options(#[from] crate::options::OptionError),
    /// A `--filter` (or the API's `filters`) that cannot be applied.
    #[error(transparent)]
    Filter(#[from] crate::filter::FilterError),
    /// Container records on disk.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Resolving `-u`.
    #[error(transparent)]
    User(#[from] crate::userdb::UserError),
    /// Allocating or releasing a `--userns auto` id range failed.
    #[error(transparent)]
    Userns(#[from] crate::userns::UsernsError),
    /// Generating the runtime spec.
    #[error("generating the spec of container {id}: {cause}")]
    Spec {
        /// Container id.
        id: String,
        /// Cause.
        cause: crate::spec::SpecError,
    },
    /// The image store failed.
    #[error("{action} image {image}: {cause}")]
    Image {
        /// What was being done ("resolving", "unpacking").
        action: &'static str,
        /// The image as the user named it.
        image: String,
        /// Cause.
        cause: Box<berth_store::Error>,
    },
    /// An image's config blob is not the JSON it should be.
    #[error("reading the config of image {image}: {cause}")]
    ImageConfig {
        /// The image as the user named it.
        image: String,
        /// Cause.
        cause: serde_json::Error,
    },
    /// Opening the image store failed.
    #[error("opening the image store at {path}: {cause}")]
    OpenStore {
        /// ROOT.
        path: PathBuf,
        /// Cause.
        cause: Box<berth_store::Error>,
    },
    /// The runtime failed to start or manage a process (its text names the stage).
    #[error(transparent)]
    Runtime(Box<berth_runtime::Error>),
    /// Loading or compiling a seccomp profile.
    #[error("loading seccomp profile {what}: {cause}")]
    Seccomp {
        /// Which profile.
        what: String,
        /// Cause.
        cause: berth_runtime::seccomp::SeccompError,
    },
    /// Reading a seccomp profile file.
    #[error("reading seccomp profile {path}: {why}")]
    SeccompFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A detached start failed in the monitor, which reported this.
    #[error("{message}")]
    StartFailed {
        /// Container id.
        id: String,
        /// Docker exit code for the failure (125, 126, 127).
        code: i32,
        /// The monitor's message.
        message: String,
    },
    /// The monitor process could not be started or died before reporting.
    #[error("monitor of container {id}: {why}")]
    Monitor {
        /// Container id.
        id: String,
        /// What happened.
        why: String,
    },
    /// A file or process operation of the engine failed.
    #[error("{op} {what}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        what: String,
        /// Cause.
        cause: std::io::Error,
    },
    /// The I/O loop failed.
    #[error("copying the I/O of container {id}: {cause}")]
    Pump {
        /// Container id.
        id: String,
        /// Cause.
        cause: crate::pump::PumpError,
    },
    /// Reading the log.
    #[error(transparent)]
    Log(#[from] crate::logs::LogError),
    /// A network operation failed.
    #[error(transparent)]
    Net(#[from] berth_net::NetError),
    /// A network that containers use cannot be removed.
    #[error("error while removing network: network {network} has active endpoints ({containers})")]
    NetworkInUse {
        /// The network's name.
        network: String,
        /// The names of the containers on it.
        containers: String,
    },
    /// `network connect` of a container already on that network.
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected {
        /// The container's name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// `network disconnect` of a container not on that network.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// The container's name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// A network option that needs a user-defined network, or another container that must run.
    #[error("{0}")]
    NetworkConfig(String),
    /// The container is not running.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The container is already running.
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    /// `rm` without `-f` of a running container.
    #[error(
        "cannot remove container {0}: container is running: stop the container before removing or force remove"
    )]
    RemoveRunning(String),
    /// An unknown signal name.
    #[error("invalid signal: {0}")]
    BadSignal(String),
    /// A container did not stop in time after SIGKILL.
    #[error("container {0} did not exit after SIGKILL")]
    StopTimeout(String),
}

impl Error {
    /// Whether this says that the named image is not in the store.
    pub fn is_no_such_image(&self) -> bool {
        matches!(self, Error::Image { cause, .. } if matches!(**cause, berth_store::Error::ImageNotFound(_)))
    }

    /// Docker's exit code for this failure: 126 (not executable), 127 (not found) or 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Runtime(e) => e.exit_code(),
            Error::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }
}

/// Shorthand for engine results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    what: impl std::fmt::Display,
) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.to_string();
    move |cause| Error::Io { op, what, cause }
}
