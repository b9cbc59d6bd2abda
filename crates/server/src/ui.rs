//! The web UI: server-rendered pages, live updates over SSE, and forms that call the same
//! coordination functions as the API and the CLI. No external network references: every asset is
//! served by the binary.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use slipway_store::DeploymentFilter;

use crate::auth::{COOKIE, Viewer};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views;

pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        (
            "dashboard.html",
            include_str!("../templates/dashboard.html"),
        ),
        (
            "deployment.html",
            include_str!("../templates/deployment.html"),
        ),
        ("grid.html", include_str!("../templates/grid.html")),
        ("status.html", include_str!("../templates/status.html")),
        ("history.html", include_str!("../templates/history.html")),
        ("calendar.html", include_str!("../templates/calendar.html")),
    ] {
        // The templates are part of the binary; a broken one is a build-time bug caught by tests.
        let _ = env.add_template(name, text);
    }
    env.add_filter("ts", |ms: i64| -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    });
    env
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/history", get(history))
        .route("/calendar", get(calendar))
        .route("/deployments/{id}", get(deployment))
        .route("/deployments/{id}/live", get(crate::live::ui_stream))
        .route("/deployments/{id}/approve", post(approve))
        .route("/deployments/{id}/reject", post(reject))
        .route("/deployments/{id}/confirm", post(confirm))
        .route("/deployments/{id}/cancel", post(cancel))
        .route("/environments/{env}/rollback", post(rollback))
        .route("/static/{file}", get(asset))
}

fn render(state: &AppState, name: &str, ctx: serde_json::Value) -> Response {
    match state
        .templates
        .get_template(name)
        .and_then(|t| t.render(template_context(ctx)))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(format!("rendering {name}: {e}")).into_response(),
    }
}

fn template_context(value: serde_json::Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

#[derive(Deserialize, Default)]
struct Flash {
    msg: Option<String>,
    err: Option<String>,
}

fn flash(f: &Flash) -> (Option<&str>, &'static str) {
    match (&f.err, &f.msg) {
        (Some(e), _) => (Some(e.as_str()), "error"),
        (None, Some(m)) => (Some(m.as_str()), "ok"),
        _ => (None, ""),
    }
}

async fn dashboard(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Query(f): Query<Flash>,
) -> Response {
    let environments = match views::environments(&state).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let (flash, flash_kind) = flash(&f);
    render(
        &state,
        "dashboard.html",
        json!({ "user": user, "environments": environments, "page": "dashboard", "flash": flash, "flash_kind": flash_kind }),
    )
}

async fn login_page(State(state): State<AppState>) -> Response {
    render(
        &state,
        "login.html",
        json!({ "user": null, "page": "login" }),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    match slipway_engine::identity::authenticate(state.store.as_ref(), form.token.trim()).await {
        Ok(Some(_)) => {
            let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", form.token.trim());
            let mut response = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            render(&state, "login.html", json!({ "user": null, "flash": "That token is not valid (or expired, or revoked).", "flash_kind": "error" })),
        )
            .into_response(),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("slipway_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn history(Viewer(user): Viewer, State(state): State<AppState>) -> Response {
    match views::deployments(
        &state,
        DeploymentFilter {
            limit: Some(200),
            ..Default::default()
        },
    )
    .await
    {
        Ok(deployments) => render(
            &state,
            "history.html",
            json!({ "user": user, "deployments": deployments, "page": "history" }),
        ),
        Err(e) => e.into_response(),
    }
}

async fn calendar(Viewer(user): Viewer, State(state): State<AppState>) -> Response {
    match crate::calendar::entries(&state, 28).await {
        Ok(calendar) => render(
            &state,
            "calendar.html",
            json!({ "user": user, "calendar": calendar, "page": "calendar" }),
        ),
        Err(e) => e.into_response(),
    }
}

async fn deployment(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(f): Query<Flash>,
) -> Response {
    let view = match views::deployment(&state, id).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let (flash, flash_kind) = flash(&f);
    render(
        &state,
        "deployment.html",
        json!({ "user": user, "view": view, "page": "deployment", "flash": flash, "flash_kind": flash_kind }),
    )
}

/// The grid and status fragments of a deployment page, for the live stream.
pub async fn fragments(state: &AppState, id: i64) -> Result<(String, String), ApiError> {
    let view = views::deployment(state, id).await?;
    let render_one = |name: &str| {
        state
            .templates
            .get_template(name)
            .and_then(|t| t.render(template_context(json!({ "view": view }))))
            .map(|html| html.replace('\n', " "))
            .map_err(|e| ApiError::internal(format!("rendering {name}: {e}")))
    };
    Ok((render_one("grid.html")?, render_one("status.html")?))
}

/// Back to the deployment page with a message.
fn back(id: i64, result: Result<String, ApiError>) -> Response {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let to = match result {
        Ok(msg) => format!("/deployments/{id}?msg={}", encode(&msg)),
        Err(e) => format!(
            "/deployments/{id}?err={}",
            encode(&format!("{} [{}]", e.message, e.code))
        ),
    };
    Redirect::to(&to).into_response()
}

#[derive(Deserialize)]
struct ReasonForm {
    reason: Option<String>,
}

async fn approve(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let reason = f.reason.filter(|r| !r.trim().is_empty());
    let result = state
        .engine
        .decide(id, &user, true, reason.as_deref())
        .await
        .map_err(ApiError::from);
    back(
        id,
        result.map(|s| {
            format!(
                "Approved as {}: {} of {}.",
                user.name,
                s.approvals.approvers.len(),
                s.approvals.required
            )
        }),
    )
}

async fn reject(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let result = state
        .engine
        .decide(id, &user, false, f.reason.as_deref())
        .await
        .map_err(ApiError::from);
    back(id, result.map(|_| format!("Rejected as {}.", user.name)))
}

#[derive(Deserialize)]
struct StepForm {
    step: String,
}

async fn confirm(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(f): Form<StepForm>,
) -> Response {
    let result = state
        .engine
        .confirm_as(id, &f.step, &user)
        .await
        .map_err(ApiError::from);
    back(
        id,
        result.map(|_| format!("Confirmed {} as {}.", f.step, user.name)),
    )
}

async fn cancel(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Response {
    let caller = crate::auth::Caller(user);
    let result = match caller.require_deployer() {
        Ok(()) => state
            .engine
            .cancel(id, &caller.0.name)
            .await
            .map_err(ApiError::from)
            .map(|d| format!("Cancel requested; it is {}.", d.state)),
        Err(e) => Err(e),
    };
    back(id, result)
}

async fn rollback(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Response {
    let caller = crate::auth::Caller(user);
    if let Err(e) = caller.require_deployer() {
        return (e.status, Html(e.message)).into_response();
    }
    match state
        .engine
        .request_rollback(&env, None, &caller.0.name, "server")
        .await
    {
        Ok(d) => Redirect::to(&format!("/deployments/{}", d.id)).into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            Redirect::to(&format!("/?err={}", e.message.replace(' ', "+"))).into_response()
        }
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx-2.0.11.min.js" => (
            include_bytes!("../static/htmx-2.0.11.min.js"),
            "text/javascript",
        ),
        "htmx-ext-sse-2.2.4.js" => (
            include_bytes!("../static/htmx-ext-sse-2.2.4.js"),
            "text/javascript",
        ),
        "app.css" => (include_bytes!("../static/app.css"), "text/css"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
