//! What every request handler shares.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use slipway_core::LoadedPlan;
use slipway_engine::Engine;
use slipway_store::{Deployment, SqlStore};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine<SqlStore>>,
    pub store: Arc<SqlStore>,
    pub data_dir: PathBuf,
    /// Ends live streams and workers when the server stops.
    pub shutdown: CancellationToken,
    pub plans: PlanCache,
    pub templates: Arc<minijinja::Environment<'static>>,
    pub metrics: Option<PrometheusHandle>,
}

/// Parsed plan snapshots by content hash: pages and the API read many deployments of few plans.
#[derive(Clone, Default)]
pub struct PlanCache {
    inner: Arc<Mutex<HashMap<String, Arc<LoadedPlan>>>>,
}

impl PlanCache {
    pub fn get(&self, d: &Deployment) -> Option<Arc<LoadedPlan>> {
        if let Ok(cache) = self.inner.lock()
            && let Some(p) = cache.get(&d.plan_hash)
        {
            return Some(p.clone());
        }
        let loaded = Arc::new(slipway_core::load(&d.plan_file, d.plan_source.as_bytes()).ok()?);
        if let Ok(mut cache) = self.inner.lock() {
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(d.plan_hash.clone(), loaded.clone());
        }
        Some(loaded)
    }
}
