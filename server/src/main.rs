use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bootler_server::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bootler: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bootler_server::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bootler: {err:#}");
            ExitCode::FAILURE
        }
    }
}
