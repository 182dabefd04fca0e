//! The command line: clap definitions, one file per subcommand, and `main`'s error mapping.

mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// rmq — a command-line toolkit for AMQP 0-9-1 brokers (RabbitMQ and its embedded twin, `rmq serve`).
#[derive(Debug, Parser)]
#[command(name = "rmq", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded AMQP 0-9-1 broker in the foreground.
    Serve(serve::ServeArgs),
}

/// Parse, run, and turn the outcome into an exit code (printed once, here).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmq: cannot start the async runtime: {e}");
            return ExitCode::from(crate::exit::FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rmq: {err:#}");
            crate::exit::code_of(&err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
