//! Starts a real `slipway serve` (in-process, on 127.0.0.1 with an OS-chosen port) on a fresh
//! record, with users and tokens ready.
#![allow(dead_code)] // each test module uses a different part of it

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slipway_engine::{Engine, EngineConfig};
use slipway_server::ServerConfig;
use slipway_store::SqlStore;
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub store: Arc<SqlStore>,
    pub shutdown: CancellationToken,
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

/// The users every test has: name, roles.
pub const USERS: &[(&str, &[&str])] = &[
    ("admin", &["admin", "deployer"]),
    ("dan", &["deployer"]),
    ("alice", &["deployer"]),
    ("bob", &["cab"]),
    ("carol", &["cab"]),
    ("erin", &["viewer"]),
    ("nina", &["network-team"]),
];

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("home");
        let store = Arc::new(
            SqlStore::open(data.join("slipway.db").to_str().expect("utf-8"))
                .await
                .expect("store"),
        );
        let mut config = EngineConfig::new(&data);
        config.poll = Duration::from_millis(50);
        config.retry_backoff = Duration::from_millis(20);
        let engine = Arc::new(Engine::new(
            store.clone(),
            config,
            Arc::new(slipway_engine::LocalHosts::new(&data)),
        ));
        for (name, roles) in USERS {
            slipway_engine::identity::set_user(
                store.as_ref(),
                name,
                roles.iter().map(|r| r.to_string()).collect(),
                "test",
            )
            .await
            .expect("user");
        }
        let shutdown = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            workers: 2,
            data_dir: data.clone(),
        };
        let (s, sd) = (store.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let _ = slipway_server::serve(server_config, engine, s, sd, move |addr| {
                let _ = tx.send(addr);
            })
            .await;
        });
        let addr = rx.await.expect("server started");
        Server {
            dir,
            addr,
            store,
            shutdown,
            http: reqwest::Client::new(),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh token for `user`.
    pub async fn token(&self, user: &str) -> String {
        slipway_engine::identity::create_token(self.store.as_ref(), user, "test", None, "test")
            .await
            .expect("token")
            .secret
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Polls a deployment until `ready` holds for it (or 30 s pass).
    pub async fn wait_for(
        &self,
        token: &str,
        id: i64,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let (_, d) = self.get(token, &format!("/api/deployments/{id}")).await;
            if ready(&d) {
                return d;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting on deployment {id}: {d}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// A plan with local targets; `environment_extra` goes under the environment, `steps` replaces
/// the default single step.
pub fn plan(environment_extra: &str, steps: &str) -> String {
    format!(
        r#"slipway: 1
release: {{ name: shop, version: 1.0.0, owner: alice }}
roles:
  cab: [bob, carol]
environments:
  production:
{environment_extra}    targets:
      web-1: {{ host: local, labels: [web] }}
      web-2: {{ host: local, labels: [web] }}
steps:
{steps}"#
    )
}

pub const SIMPLE_STEP: &str = "  - id: install\n    on: [web]\n    run: echo installing\n";
pub const APPROVALS: &str = "    protected: true\n    approvals: { required: 2, from: [cab] }\n";
