//! Who is calling: an API token in `Authorization: Bearer …` or, for the web UI, in the
//! `slipway_token` cookie. Every request is checked; roles decide what it may do.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use slipway_core::coordination::ADMIN_ROLE;
use slipway_store::{Store, User};

use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE: &str = "slipway_token";

/// Roles that may request, cancel and roll back deployments.
pub const DEPLOYER_ROLE: &str = "deployer";

fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn user_of(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let Some(token) = token_from(&parts.headers) else {
        return Ok(None);
    };
    let hash = slipway_engine::identity::hash_token(&token);
    let now = slipway_engine::now_millis();
    if let Some(user) = state.tokens.get(&hash, now) {
        return Ok(Some(user));
    }
    // As `identity::authenticate`, keeping the token's expiry for the cache.
    let Some((token, user)) = state.store.token_by_hash(&hash, now).await? else {
        return Ok(None);
    };
    state.store.touch_token(&token.id, now).await?;
    state.tokens.put(hash, user.clone(), token.expires_at);
    Ok(Some(user))
}

/// An authenticated caller of the JSON API.
pub struct Caller(pub User);

impl Caller {
    pub fn has(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(ADMIN_ROLE)
    }

    /// Deployers (and admins) may request, cancel and roll back.
    pub fn require_deployer(&self) -> Result<(), ApiError> {
        if self.has(DEPLOYER_ROLE) || self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "deployer_only",
                format!("{} needs the `deployer` role for this", self.0.name),
            ))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "admin_only",
                format!("{} needs the `admin` role for this", self.0.name),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        user_of(parts, state)
            .await?
            .map(Caller)
            .ok_or_else(ApiError::unauthenticated)
    }
}

/// A signed-in user of the web UI; anyone else is sent to the sign-in page.
pub struct Viewer(pub User);

pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match user_of(parts, state).await {
            Ok(Some(u)) => Ok(Viewer(u)),
            Ok(None) => Err(ToLogin.into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}
