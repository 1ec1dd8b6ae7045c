//! `chatterbox-loadtest`: see `--help`, and the library docs for how it measures.

use std::process::ExitCode;

use chatterbox_loadtest::{run, Options};
use clap::Parser;

fn main() -> ExitCode {
    let opts = Options::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if opts.threads > 0 {
        rt.worker_threads(opts.threads);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = opts.json;
    match rt.block_on(run(opts)) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
