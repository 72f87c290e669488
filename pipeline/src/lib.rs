//! The `clot` command-line tool and, in later issues, stage graphs, runs and sweeps.
//!
//! [`commands`] holds one function per subcommand so that tests and scripts can call them without
//! a process; `main.rs` only parses arguments and prints errors (exit code 2).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod commands;
pub mod config;
pub mod graphs;
pub mod output;
pub mod plot;
pub mod progress;
pub mod run;
pub mod solve;
pub mod train;
