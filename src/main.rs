//! The `tokend` binary: parse the command line, load the configuration, set
//! up logging, run the command. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tokend::{cli, config, telemetry};

/// mimalloc instead of the system allocator: the daemon makes many small,
/// long-lived allocations (a million cached tokens) between short-lived ones
/// (every request), where glibc's malloc spends more time and fragments
/// more (see bench/README.md for the measurements).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tokend: {e}");
            return ExitCode::from(2);
        }
    };
    // Commands other than `serve` speak on stdout; their log is warnings only.
    let mut log_config = config.log.clone();
    if !matches!(cli.command, None | Some(cli::Command::Serve)) {
        log_config.level = "warn".into();
    }
    let log = telemetry::init(&log_config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(cli::run(cli, config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokend: {e:#}");
            ExitCode::FAILURE
        }
    }
}
