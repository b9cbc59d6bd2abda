//! Load benchmark: 200 concurrent clients read the dashboard and the deployment API for 30 seconds
//! while a deployment runs. Prints latency percentiles, 5xx count, throughput, and the
//! deployment's duration under load against its duration unloaded.
//!
//! `cargo bench -p slipway-server --bench load` (release build). Floors from the issue: zero 5xx,
//! p99 under 50 ms for reads, the deployment within 1.5× of its unloaded duration.
//! `SLIPWAY_LOAD_SECONDS` and `SLIPWAY_LOAD_CLIENTS` shorten or shrink a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use slipway_engine::{Engine, EngineConfig, LocalHosts};
use slipway_server::ServerConfig;
use slipway_store::SqlStore;
use tokio_util::sync::CancellationToken;

const TARGETS: usize = 16;

fn plan() -> String {
    let mut targets = String::new();
    for i in 0..TARGETS {
        targets.push_str(&format!(
            "      web-{i}: {{ host: local, labels: [web] }}\n"
        ));
    }
    format!(
        "slipway: 1\nrelease: {{ name: loadtest, version: 1.0.0 }}\nenvironments:\n  production:\n    targets:\n{targets}steps:\n  - id: install\n    on: [web]\n    run: sleep 0.4\n    strategy: {{ rolling: {{ batch: 2 }} }}\n"
    )
}

struct Running {
    addr: std::net::SocketAddr,
    token: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("home");
    let store = Arc::new(
        SqlStore::open(data.join("slipway.db").to_str().expect("utf-8"))
            .await
            .expect("store"),
    );
    let engine = Arc::new(Engine::new(
        store.clone(),
        EngineConfig::new(&data),
        Arc::new(LocalHosts::new(&data)),
    ));
    slipway_engine::identity::set_user(
        store.as_ref(),
        "bench",
        vec!["deployer".into(), "admin".into()],
        "bench",
    )
    .await
    .expect("user");
    let token =
        slipway_engine::identity::create_token(store.as_ref(), "bench", "bench", None, "bench")
            .await
            .expect("token")
            .secret;
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        data_dir: data,
    };
    let sd = shutdown.clone();
    tokio::spawn(async move {
        let _ = slipway_server::serve(config, engine, store, sd, move |a| {
            let _ = tx.send(a);
        })
        .await;
    });
    let addr = rx.await.expect("started");
    Running {
        addr,
        token,
        shutdown,
        _dir: dir,
    }
}

/// Requests a deployment and waits for it to end; returns its id and run time (start to finish).
async fn deploy(client: &reqwest::Client, r: &Running, version: &str) -> (i64, Duration) {
    let created: serde_json::Value = client
        .post(format!("http://{}/api/deployments", r.addr))
        .bearer_auth(&r.token)
        .json(&json!({"plan": plan(), "environment": "production", "version": version}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let id = created["deployment"]["id"].as_i64().expect("deployment id");
    loop {
        let d: serde_json::Value = client
            .get(format!("http://{}/api/deployments/{id}", r.addr))
            .bearer_auth(&r.token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let dep = &d["deployment"];
        if dep["state"] == "succeeded" {
            let ms =
                dep["finished_at"].as_i64().unwrap_or(0) - dep["started_at"].as_i64().unwrap_or(0);
            return (id, Duration::from_millis(ms.unsigned_abs()));
        }
        assert!(
            !["failed", "rolled_back", "cancelled"].contains(&dep["state"].as_str().unwrap_or("")),
            "deployment failed: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let seconds: u64 = std::env::var("SLIPWAY_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let clients: usize = std::env::var("SLIPWAY_LOAD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let r = Arc::new(start().await);
        let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().expect("client");
        // Unloaded: the same deployment with nobody reading.
        let (_, unloaded) = deploy(&client, &r, "0.9.0").await;
        let (first_id, _) = deploy(&client, &r, "0.9.1").await;
        println!("unloaded deployment: {} targets in batches of 2, {:.2} s", TARGETS, unloaded.as_secs_f64());

        let stop_at = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (client, r) = (client.clone(), r.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let (mut errors, mut server_errors) = (0u64, 0u64);
                let mut n = c;
                while Instant::now() < stop_at {
                    let path = match n % 3 {
                        0 => "/".to_string(),
                        1 => "/api/environments".to_string(),
                        _ => format!("/api/deployments/{first_id}"),
                    };
                    n += 1;
                    let started = Instant::now();
                    let req = client.get(format!("http://{}{path}", r.addr));
                    let req = if path == "/" { req.header("cookie", format!("slipway_token={}", r.token)) } else { req.bearer_auth(&r.token) };
                    match req.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let _ = resp.bytes().await;
                            latencies.push(started.elapsed());
                            if status >= 500 {
                                server_errors += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors, server_errors)
            }));
        }
        // The deployment starts two seconds into the load.
        tokio::time::sleep(Duration::from_secs(2.min(seconds / 4))).await;
        let deploy_client = reqwest::Client::new();
        let (_, loaded) = deploy(&deploy_client, &r, "1.0.0").await;
        let mut all = Vec::new();
        let (mut errors, mut server_errors) = (0, 0);
        for t in tasks {
            let (l, e, s) = t.await.expect("client task");
            all.extend(l);
            errors += e;
            server_errors += s;
        }
        all.sort();
        let total = all.len();
        println!("load: {clients} clients for {seconds} s reading /, /api/environments and /api/deployments/ID");
        println!("  requests       {total} ({:.0}/s)", total as f64 / seconds as f64);
        println!("  5xx responses  {server_errors}   (floor: 0)");
        println!("  failed to send {errors}");
        println!(
            "  latency        p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms   (floor: p99 < 50 ms)",
            percentile(&all, 0.50).as_secs_f64() * 1e3,
            percentile(&all, 0.90).as_secs_f64() * 1e3,
            percentile(&all, 0.99).as_secs_f64() * 1e3,
            all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        let ratio = loaded.as_secs_f64() / unloaded.as_secs_f64().max(1e-9);
        println!("  deployment     {:.2} s under load vs {:.2} s unloaded: {ratio:.2}×   (floor: ≤ 1.5×)", loaded.as_secs_f64(), unloaded.as_secs_f64());
        let p99 = percentile(&all, 0.99);
        let met = server_errors == 0 && p99 < Duration::from_millis(50) && ratio <= 1.5;
        println!("floors {}", if met { "met" } else { "NOT met" });
        r.shutdown.cancel();
    });
}
