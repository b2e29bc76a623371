//! `mira`: the command-line front of the Mira engine. Glue only: flags become requests for
//! `mira-host`, results become text or JSON.

mod authoring;
mod cli;
mod commands;
mod demo;
mod eval;
mod model;
mod output;
mod plugins;
mod progress;
mod serve;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The host's log on stderr: warnings, and what plugins say (their log calls, print() and
    // console.log lines); MIRA_LOG takes any tracing filter instead.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIRA_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,mira_host::plugin::wasi=info,mira_host::plugin::state=info")
            }),
        )
        .with_ansi(false)
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // 2 for the user's mistakes (bad input, unknown names), 1 for the engine's failures.
            let user = err
                .downcast_ref::<mira_host::Error>()
                .is_some_and(|e| e.fault() != mira_host::Fault::Engine)
                || err
                    .downcast_ref::<mira_host::models::ModelError>()
                    .is_some_and(|e| !matches!(e, mira_host::models::ModelError::Candle(_)));
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}
