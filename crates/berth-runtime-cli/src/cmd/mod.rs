//! One file per command of runc's command line.

pub mod create;
pub mod delete;
pub mod exec;
pub mod kill;
pub mod list;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
