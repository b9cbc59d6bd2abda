//! The scheduler and the workers: scheduled deployments are queued when their time comes, queued
//! ones are run (one per environment, under its lock), and deployments whose process died are
//! recovered. The same engine as the command line, on the same record.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_engine::Silent;

use crate::state::AppState;

pub fn spawn(state: AppState, workers: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let running: Arc<Mutex<HashSet<i64>>> = Arc::new(Mutex::new(HashSet::new()));
        let mut turn: u64 = 0;
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            turn += 1;
            if turn % 10 == 1
                && let Ok(done) = state.engine.recover(&Silent).await
            {
                metrics::counter!("slipway_deployments_recovered_total")
                    .increment(done.len() as u64);
            }
            if let Ok(queued) = state.engine.tick().await {
                metrics::counter!("slipway_deployments_released_total")
                    .increment(queued.len() as u64);
            }
            let Ok(runnable) = state.engine.runnable().await else {
                continue;
            };
            for d in runnable {
                let busy = running
                    .lock()
                    .map(|r| r.len() >= workers || r.contains(&d.id))
                    .unwrap_or(true);
                if busy {
                    continue;
                }
                if let Ok(mut r) = running.lock() {
                    r.insert(d.id);
                }
                let (state, running) = (state.clone(), running.clone());
                tokio::spawn(async move {
                    let secrets = state.engine.secrets_for(&d);
                    metrics::counter!("slipway_deployments_started_total").increment(1);
                    // A busy environment leaves it queued for a later turn.
                    if let Ok(done) = state.engine.run(d.id, secrets, &Silent).await {
                        metrics::counter!("slipway_deployments_finished_total", "state" => done.state.as_str()).increment(1);
                    }
                    if let Ok(mut r) = running.lock() {
                        r.remove(&d.id);
                    }
                });
            }
        }
    })
}
