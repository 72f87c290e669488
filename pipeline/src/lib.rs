//! The `clot` command-line tool, the stage graphs of each mode and ablation ([`graphs`]), sweeps
//! ([`sweep`]: plans, the worker pool, the results folder), the training driver ([`train`]: epochs, batches, k-means initialisation, evaluation), the run
//! configuration ([`config`]), what a run writes ([`output`], [`plot`]), and the step-by-step
//! comparison of a recorded run with the PyTorch peer's replay ([`trajectory`]).
//!
//! [`commands`], [`solve`] and [`run`] hold one function per subcommand so that tests and scripts
//! can call them without a process; `main.rs` only parses arguments and prints errors (exit code
//! 2).

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
pub mod sweep;
pub mod train;
pub mod trajectory;
