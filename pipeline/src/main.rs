//! The `clot` binary: parse, dispatch, print errors with their causes, exit 2 on error.

use clap::Parser;
use clot_pipeline::cli::{Cli, Command};
use clot_pipeline::{commands, run, sweep};

fn main() {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        let pool = match n {
            0 => Err("must be at least 1".to_string()),
            n => rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = pool {
            eprintln!("error: --threads {n}: {e}");
            std::process::exit(2);
        }
    }
    // The command runs on a pool worker: the stages' parallel sections then fork from it instead
    // of handing each one from the main thread to the pool and parking (two context switches per
    // section, a tenth of a one-thread training run).
    let result = rayon::scope(|_| dispatch(&cli));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn dispatch(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Inspect(a) => commands::inspect(a, cli.quiet),
        Command::Convert(a) => commands::convert(a, cli.quiet),
        Command::Synth(a) => commands::synth(a, cli.quiet),
        Command::Solve(a) => commands::solve(a),
        Command::Run(a) | Command::Train(a) => run::run(a, cli.quiet),
        Command::Eval(a) => run::eval(a, cli.quiet),
        Command::Sweep(a) => sweep::sweep(a, cli.quiet),
        Command::Report(a) => sweep::report::report(a, cli.quiet),
        Command::Explain(a) => run::explain(a),
    }
}
