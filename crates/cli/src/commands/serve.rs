//! `slipway serve`: the server on this record, until interrupted.

use std::net::SocketAddr;
use std::sync::Arc;

use slipway_server::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::context::{Context, Global};
use crate::exit::{FAILED, OK, fail};

pub async fn run(global: &Global, listen: SocketAddr, workers: usize) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    if let Some(token) = slipway_server::bootstrap_admin(ctx.store.as_ref()).await? {
        println!(
            "first start: created user `admin` (roles admin, deployer); their token, shown once:"
        );
        println!("{token}");
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
        stop.cancel();
    });
    let config = ServerConfig {
        listen,
        workers,
        data_dir: global.home(),
    };
    let Context { engine, store } = ctx;
    slipway_server::serve(config, Arc::new(engine), store, shutdown, |addr| {
        println!(
            "slipway serving on http://{addr} (record: {})",
            global.database_shown()
        );
    })
    .await
    .map_err(|e| fail(FAILED, format!("cannot serve on {listen}: {e}")))?;
    Ok(OK)
}
