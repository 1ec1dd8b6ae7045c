//! The `chatterbox` binary: parse config, build, bind, serve until SIGTERM/SIGINT, drain.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use chatterbox::admission::{TokenMinter, TokenRequest};
use chatterbox::config::{Command, TokenArgs};
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
    if let Some(Command::Token(args)) = &config.command {
        return mint_token(&config, args);
    }
    if let Err(e) = config.validate() {
        eprintln!("chatterbox: {e}");
        return ExitCode::from(2);
    }
    raise_descriptor_limit();
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
            // Our errors name their cause in their own message: the chain would repeat it.
            eprintln!("chatterbox: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let net = config.net.clone();
    let store = config.store.url_for_logs();
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

/// Raises the soft limit on open descriptors to the hard one: every connection needs one, and
/// the default soft limit (often 1024) is far below what a chat server holds. MAX_CONNECTIONS,
/// when not set, follows the raised limit.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the descriptor limit to its hard limit");
            }
        }
    }
}

/// `chatterbox token`: prints a token signed with the configured secret (or a private key).
fn mint_token(config: &Config, args: &TokenArgs) -> ExitCode {
    use chatterbox::protocol::names::{normalize_name, NameKind};
    match normalize_name(
        NameKind::User,
        &args.user,
        config.limits.max_user_name_chars,
    ) {
        Ok(user) if user == args.user => {}
        Ok(user) => {
            eprintln!("chatterbox token: write the user in its normal form: {user:?}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("chatterbox token: {e}");
            return ExitCode::from(2);
        }
    }
    let auth = &config.auth;
    let minter = match (&args.private_key, &auth.auth_secret) {
        (Some(path), _) => std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|pem| {
                TokenMinter::from_private_pem(auth.auth_public_key_algorithm, &pem)
                    .map_err(|e| format!("{} is not a usable private key: {e}", path.display()))
            }),
        (None, Some(secret)) => TokenMinter::hs256(secret).map_err(|e| e.to_string()),
        (None, None) => Err("set AUTH_SECRET (or pass --private-key) to mint tokens".into()),
    };
    let mut request = TokenRequest::new(&args.user, args.ttl);
    request.rooms = args.rooms.clone();
    request.aud = args.audience.clone().or_else(|| auth.auth_audience.clone());
    request.iss = auth.auth_issuer.clone();
    match minter.and_then(|m| m.mint(&request).map_err(|e| e.to_string())) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chatterbox token: {e}");
            ExitCode::from(2)
        }
    }
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
