use std::process::ExitCode;

use clap::Parser;

use bootler_domain::templates::sandbox;

fn main() -> ExitCode {
    // A render worker (started by the server itself, see
    // `bootler_domain::templates::sandbox`): no runtime, no configuration.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(sandbox::WORKER_ARG)) {
        let memory = args
            .next()
            .and_then(|m| m.to_str()?.parse().ok())
            .unwrap_or(sandbox::WorkerLimits::default().memory_bytes);
        return match sandbox::serve_worker(memory) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("bootler render-worker: {err}");
                ExitCode::FAILURE
            }
        };
    }
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
