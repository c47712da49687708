//! Graceful shutdown: a future that completes on SIGINT (Ctrl-C) or SIGTERM (what `docker stop`
//! and Kubernetes send).
//!
//! Servers take their shutdown as a plain `impl Future` (`run_until_stopped(shutdown)`), as
//! mini-redis does, so tests stop a server by completing a future of their own instead of sending
//! signals. When several tasks must stop together (the lab runs every system in one process), a
//! `CancellationToken` is cancelled by [`signal`] and each task waits on its own clone.
//!
//! What a server does once its future completes is [`crate::http::serve`]'s: it stops accepting
//! and answers every request on the connections it accepted before it returns.

pub use tokio_util::sync::CancellationToken;

/// Completes when the process is asked to stop.
pub async fn signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("failed to install the Ctrl-C handler");
    };

    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install the SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// A token that is cancelled when the process receives SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        cancel.cancel();
    });
    token
}
