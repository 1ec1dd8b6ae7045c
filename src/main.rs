//! The `chatterbox` binary: parse config, build, bind, serve until SIGTERM/SIGINT, drain.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use chatterbox::server::Listeners;
use chatterbox::{Config, Server};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    if let Err(e) = config.validate() {
        eprintln!("chatterbox: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chatterbox: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatterbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let net = config.net.clone();
    let store = config.store.url();
    let server = Server::build(config).await?;
    let listeners = Listeners::bind(&net).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}:{} (or METRICS_PORT {}): {e}",
            net.bind_addr,
            net.port,
            net.metrics_port
        )
    })?;
    let local = listeners.http.local_addr()?;
    tracing::info!(%store, "listening on http://{local}");
    server.run(listeners, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
