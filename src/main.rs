//! The `driftless` binary: a thin shell over the library. Sets up logging, parses arguments,
//! runs the command (`cli`) and maps its outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    driftless::memory::limit_arenas();
    cli::logging::init();
    let args = cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::output::report(&e));
            ExitCode::from(2)
        }
    }
}
