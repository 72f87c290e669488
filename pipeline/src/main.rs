//! The `clot` binary: parse, dispatch, print errors with their causes, exit 2 on error.

use clap::Parser;
use clot_pipeline::cli::{Cli, Command};
use clot_pipeline::commands;

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect(a) => commands::inspect(a, cli.quiet),
        Command::Convert(a) => commands::convert(a, cli.quiet),
        Command::Synth(a) => commands::synth(a, cli.quiet),
        Command::Solve(a) => commands::solve(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
