//! The smallest program that can watch detached containers: what `berth __monitor` does, for a
//! program that embeds the engine (the engine's own tests start it through
//! [`berth_engine::Engine::with_monitor`]).
//!
//! Usage: `monitor --root ROOT --run-root RUN __monitor ID`, the command line the engine gives it.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (root, run_root, id) = match args.as_slice() {
        [r, root, rr, run_root, m, id]
            if r == "--root" && rr == "--run-root" && m == "__monitor" =>
        {
            (PathBuf::from(root), PathBuf::from(run_root), id.clone())
        }
        _ => {
            eprintln!("usage: monitor --root ROOT --run-root RUN __monitor ID");
            return ExitCode::from(125);
        }
    };
    let result = berth_engine::Engine::open(&root, &run_root).and_then(|e| e.monitor(&id));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("monitor of {id}: {e}");
            ExitCode::from(125)
        }
    }
}
