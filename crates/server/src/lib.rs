//! `slipway serve`: one process with the HTTP API, the web UI, the scheduler and the workers,
//! on the same record and engine as the command line.

mod api;
mod auth;
mod calendar;
mod error;
mod live;
mod state;
mod ui;
mod views;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use slipway_engine::Engine;
use slipway_store::{SqlStore, Store};
use tokio_util::sync::CancellationToken;

pub use api::ApiDoc;
use error::ApiError;
pub use state::AppState;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Deployments run at once (in different environments).
    pub workers: usize,
    pub data_dir: PathBuf,
}

fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

impl AppState {
    pub fn new(
        engine: Arc<Engine<SqlStore>>,
        store: Arc<SqlStore>,
        data_dir: PathBuf,
        shutdown: CancellationToken,
    ) -> AppState {
        AppState {
            engine,
            store,
            data_dir,
            shutdown,
            plans: state::PlanCache::default(),
            templates: Arc::new(ui::templates()),
            metrics: metrics_handle(),
            tokens: state::TokenCache::default(),
            views: state::ViewCache::default(),
            responses: state::ResponseCache::default(),
        }
    }
}

async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let changes =
        request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD;
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    if changes {
        // Whatever it changed, readers see it at once.
        state.views.clear();
        state.tokens.clear();
        state.responses.clear();
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!("slipway_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("slipway_http_request_duration_seconds", "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.locks().await {
        Ok(_) => "ok\n".into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("record unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    let mut text = state
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    // Gauges read from the record at scrape time.
    if let Ok(all) = state
        .store
        .deployments(slipway_store::DeploymentFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
    {
        text.push_str("# HELP slipway_deployments Deployments in the record by state (latest 1000).\n# TYPE slipway_deployments gauge\n");
        for s in slipway_core::lifecycle::DeploymentState::ALL {
            let n = all.iter().filter(|d| d.state == s).count();
            text.push_str(&format!(
                "slipway_deployments{{state=\"{}\"}} {n}\n",
                s.as_str()
            ));
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

/// The reads a crowd makes: the dashboard page and API, and one deployment's API view.
fn cacheable(path: &str) -> bool {
    path == "/"
        || path == "/api/environments"
        || path
            .strip_prefix("/api/deployments/")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

async fn cache_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::GET || !cacheable(request.uri().path()) {
        return next.run(request).await;
    }
    // Per caller: the credentials are part of the key, and the handler still authenticates.
    let headers = request.headers();
    let who = [
        axum::http::header::AUTHORIZATION,
        axum::http::header::COOKIE,
    ]
    .iter()
    .filter_map(|h| headers.get(h).and_then(|v| v.to_str().ok()))
    .collect::<Vec<_>>()
    .join("|");
    let key = format!(
        "{} {}",
        request.uri(),
        slipway_engine::identity::hash_token(&who)
    );
    if let state::Lookup::Hit(hit) = state.responses.lookup(&key) {
        let mut response = Response::new(axum::body::Body::from(hit.body));
        if let Some(ct) = hit.content_type {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, ct);
        }
        return response;
    }
    let response = next.run(request).await;
    if response.status() != axum::http::StatusCode::OK {
        state.responses.abandon(&key);
        return response;
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 16 << 20).await {
        Ok(bytes) => {
            state.responses.put(
                key,
                parts.headers.get(axum::http::header::CONTENT_TYPE).cloned(),
                bytes.clone(),
            );
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(e) => {
            state.responses.abandon(&key);
            ApiError::internal(e).into_response()
        }
    }
}

/// The whole application: API, UI, health and metrics.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .layer(middleware::from_fn_with_state(state.clone(), cache_reads))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

/// Creates the first admin and their token when the record has no users; returns the token
/// (to be shown once) if it did.
pub async fn bootstrap_admin(
    store: &SqlStore,
) -> Result<Option<String>, slipway_store::StoreError> {
    if !store.users().await?.is_empty() {
        return Ok(None);
    }
    slipway_engine::identity::set_user(
        store,
        "admin",
        vec!["admin".into(), "deployer".into()],
        "slipway",
    )
    .await?;
    let issued = slipway_engine::identity::create_token(
        store,
        "admin",
        "first admin token",
        None,
        "slipway",
    )
    .await?;
    Ok(Some(issued.secret))
}

/// Serves until `shutdown` is cancelled. `on_ready` receives the bound address.
pub async fn serve(
    config: ServerConfig,
    engine: Arc<Engine<SqlStore>>,
    store: Arc<SqlStore>,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let state = AppState::new(engine, store, config.data_dir.clone(), shutdown.clone());
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    on_ready(listener.local_addr()?);
    let workers = workers::spawn(state.clone(), config.workers.max(1));
    let token = shutdown.clone();
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await;
    shutdown.cancel();
    let _ = workers.await;
    result
}
