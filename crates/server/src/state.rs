//! What every request handler shares.

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use slipway_core::LoadedPlan;
use slipway_engine::Engine;
use slipway_store::{Deployment, SqlStore, User};
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
    pub tokens: TokenCache,
    pub views: ViewCache,
    pub responses: ResponseCache,
}

/// Recently verified tokens, by hash, so that a busy page does not hit the record for every
/// request. Revocation through this server clears it; from elsewhere it takes effect within
/// [`TokenCache::TTL`].
#[derive(Clone, Default)]
pub struct TokenCache {
    inner: Arc<Mutex<HashMap<String, TokenEntry>>>,
}

/// A verified token's user, when it was verified, and when the token expires (Unix ms).
type TokenEntry = (User, Instant, Option<i64>);

impl TokenCache {
    pub const TTL: Duration = Duration::from_secs(1);

    /// The user of a token verified lately and not expired at `now` (Unix ms).
    pub fn get(&self, hash: &str, now: i64) -> Option<User> {
        let cache = self.inner.lock().ok()?;
        cache
            .get(hash)
            .filter(|(_, at, expires)| at.elapsed() < Self::TTL && expires.is_none_or(|e| e > now))
            .map(|(u, ..)| u.clone())
    }

    pub fn put(&self, hash: String, user: User, expires_at: Option<i64>) {
        if let Ok(mut cache) = self.inner.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(hash, (user, Instant::now(), expires_at));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut cache) = self.inner.lock() {
            cache.clear();
        }
    }
}

/// Views read by many clients at once (the dashboard, a deployment) are built at most every
/// [`ViewCache::TTL`]; any change made through this server clears them at once.
#[derive(Clone, Default)]
pub struct ViewCache {
    inner: Arc<Mutex<HashMap<String, (Instant, AnyView)>>>,
}

type AnyView = Arc<dyn Any + Send + Sync>;

impl ViewCache {
    pub const TTL: Duration = Duration::from_millis(250);

    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let cache = self.inner.lock().ok()?;
        let (at, value) = cache.get(key)?;
        if at.elapsed() >= Self::TTL {
            return None;
        }
        value.clone().downcast::<T>().ok()
    }

    pub fn put<T: Any + Send + Sync>(&self, key: String, value: Arc<T>) {
        if let Ok(mut cache) = self.inner.lock() {
            if cache.len() > 1_000 {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), value));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut cache) = self.inner.lock() {
            cache.clear();
        }
    }
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
        if d.plan_source.is_empty() {
            return None;
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

/// Whole responses of the most-read pages, per caller, kept for [`ResponseCache::TTL`]. When an
/// entry is stale, one request rebuilds it while the others are served the stale copy, so a
/// crowd of readers never rebuilds the same page at once.
#[derive(Clone, Default)]
pub struct ResponseCache {
    inner: Arc<Mutex<HashMap<String, CachedResponse>>>,
}

#[derive(Clone)]
pub struct CachedResponse {
    pub at: Instant,
    pub refreshing: bool,
    pub content_type: Option<axum::http::HeaderValue>,
    pub body: axum::body::Bytes,
}

/// What a lookup found.
pub enum Lookup {
    /// Fresh, or stale while someone else rebuilds it.
    Hit(CachedResponse),
    /// Build it (and `put` it).
    Miss,
}

impl ResponseCache {
    pub const TTL: Duration = Duration::from_millis(250);

    pub fn lookup(&self, key: &str) -> Lookup {
        let Ok(mut cache) = self.inner.lock() else {
            return Lookup::Miss;
        };
        match cache.get_mut(key) {
            Some(entry) if entry.at.elapsed() < Self::TTL => Lookup::Hit(entry.clone()),
            Some(entry) if entry.refreshing && entry.at.elapsed() < Self::TTL * 8 => {
                Lookup::Hit(entry.clone())
            }
            Some(entry) => {
                entry.refreshing = true;
                Lookup::Miss
            }
            None => Lookup::Miss,
        }
    }

    pub fn put(
        &self,
        key: String,
        content_type: Option<axum::http::HeaderValue>,
        body: axum::body::Bytes,
    ) {
        if let Ok(mut cache) = self.inner.lock() {
            if cache.len() > 5_000 {
                cache.clear();
            }
            cache.insert(
                key,
                CachedResponse {
                    at: Instant::now(),
                    refreshing: false,
                    content_type,
                    body,
                },
            );
        }
    }

    /// Forgets a failed rebuild so that the next reader tries again.
    pub fn abandon(&self, key: &str) {
        if let Ok(mut cache) = self.inner.lock() {
            cache.remove(key);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut cache) = self.inner.lock() {
            cache.clear();
        }
    }
}
