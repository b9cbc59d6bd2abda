//! The web UI: server-rendered pages, live updates over SSE, and forms that call the same
//! coordination functions as the API and the CLI. No external network references: every asset is
//! served by the binary.
//!
//! Buttons are shown only to those who may use them (the requester and the plan's owner see no
//! Approve, only the step's owner role sees Confirm, only deployers see Cancel and Roll back); the
//! server still checks every action, whatever the page showed.

use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_core::LoadedPlan;
use slipway_core::coordination::{ADMIN_ROLE, DEFAULT_APPROVER_ROLE};
use slipway_core::duration::format_duration;
use slipway_core::plan::Command;
use slipway_core::rollout::plan_rollout;
use slipway_store::{DeploymentFilter, Store, User};

use crate::auth::{COOKIE, DEPLOYER_ROLE, Viewer};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{self, DeploymentView};

pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        ("base.html", include_str!("../templates/base.html")),
        ("macros.html", include_str!("../templates/macros.html")),
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
        ("actions.html", include_str!("../templates/actions.html")),
        ("logs.html", include_str!("../templates/logs.html")),
        ("history.html", include_str!("../templates/history.html")),
        ("calendar.html", include_str!("../templates/calendar.html")),
    ] {
        // The templates are part of the binary; a broken one is a build-time bug caught by tests.
        let _ = env.add_template(name, text);
    }
    // A moment as `2026-11-07 22:00 UTC`, from Unix milliseconds or an RFC 3339 text.
    env.add_filter("ts", |v: minijinja::Value| -> String {
        timestamp_of(&v)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    });
    // Just the time of day, `22:00`.
    env.add_filter("hm", |v: minijinja::Value| -> String {
        timestamp_of(&v)
            .map(|t| t.strftime("%H:%M").to_string())
            .unwrap_or_default()
    });
    env
}

fn timestamp_of(v: &minijinja::Value) -> Option<jiff::Timestamp> {
    if let Some(ms) = v.as_i64() {
        return jiff::Timestamp::from_millisecond(ms).ok();
    }
    v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok())
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
        .route("/deployments/{id}/panel/actions", get(actions_panel))
        .route("/deployments/{id}/panel/logs", get(logs_panel))
        .route("/deployments/{id}/approve", post(approve))
        .route("/deployments/{id}/reject", post(reject))
        .route("/deployments/{id}/confirm", post(confirm))
        .route("/deployments/{id}/cancel", post(cancel))
        .route("/environments/{env}/rollback", post(rollback))
        .route("/static/{file}", get(asset))
}

fn render(state: &AppState, name: &str, ctx: Value) -> Response {
    match render_text(state, name, ctx) {
        Ok(html) => Html(html).into_response(),
        Err(e) => e.into_response(),
    }
}

fn render_text(state: &AppState, name: &str, ctx: Value) -> Result<String, ApiError> {
    state
        .templates
        .get_template(name)
        .and_then(|t| t.render(template_context(ctx)))
        .map_err(|e| ApiError::internal(format!("rendering {name}: {e}")))
}

fn template_context(value: Value) -> minijinja::Value {
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

fn has_role(user: &User, role: &str) -> bool {
    user.roles.iter().any(|r| r == role)
}

fn is_deployer(user: &User) -> bool {
    has_role(user, DEPLOYER_ROLE) || has_role(user, ADMIN_ROLE)
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
            render(
                &state,
                "login.html",
                json!({ "user": null, "page": "login", "flash": "That token is not valid (or expired, or revoked).", "flash_kind": "error" }),
            ),
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

/// One line of the calendar's agenda.
#[derive(Serialize)]
struct AgendaItem {
    at: i64,
    /// `deployment`, `window`, `freeze` or `thaw`.
    kind: &'static str,
    environment: String,
    text: String,
    until: Option<i64>,
    deployment: Option<i64>,
    state: Option<String>,
}

fn millis(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(jiff::Timestamp::as_millisecond)
}

/// The calendar's entries as days of an agenda, in time order.
fn agenda(calendar: &Value) -> Vec<Value> {
    let list = |key: &str| calendar[key].as_array().cloned().unwrap_or_default();
    let mut items: Vec<AgendaItem> = Vec::new();
    for w in list("windows") {
        if let Some(at) = millis(&w["opens"]) {
            items.push(AgendaItem {
                at,
                kind: "window",
                environment: w["environment"].as_str().unwrap_or_default().into(),
                text: w["window"].as_str().unwrap_or_default().into(),
                until: millis(&w["closes"]),
                deployment: None,
                state: None,
            });
        }
    }
    let from = millis(&calendar["from"]).unwrap_or_default();
    for f in list("freezes") {
        let (start, end) = (millis(&f["from"]), millis(&f["to"]));
        let environment = f["environment"].as_str().unwrap_or_default().to_string();
        let reason = f["reason"].as_str().unwrap_or_default().to_string();
        if let Some(at) = start.filter(|&s| s >= from) {
            items.push(AgendaItem {
                at,
                kind: "freeze",
                environment: environment.clone(),
                text: reason.clone(),
                until: end,
                deployment: None,
                state: None,
            });
        }
        if let Some(at) = end {
            items.push(AgendaItem {
                at,
                kind: "thaw",
                environment,
                text: reason,
                until: None,
                deployment: None,
                state: None,
            });
        }
    }
    for d in list("deployments") {
        if let Some(at) = millis(&d["start"]) {
            items.push(AgendaItem {
                at,
                kind: "deployment",
                environment: d["environment"].as_str().unwrap_or_default().into(),
                text: format!(
                    "{} {}",
                    d["release"].as_str().unwrap_or_default(),
                    d["version"].as_str().unwrap_or_default()
                )
                .trim()
                .to_string(),
                until: None,
                deployment: d["id"].as_i64(),
                state: d["state"].as_str().map(str::to_string),
            });
        }
    }
    items.sort_by_key(|i| (i.at, i.kind));
    let mut days: Vec<Value> = Vec::new();
    let mut current: Option<(String, Vec<AgendaItem>)> = None;
    for item in items {
        let day = jiff::Timestamp::from_millisecond(item.at)
            .map(|t| t.strftime("%A %-d %B %Y").to_string())
            .unwrap_or_default();
        match &mut current {
            Some((d, list)) if *d == day => list.push(item),
            _ => {
                if let Some((d, list)) = current.take() {
                    days.push(json!({"day": d, "items": list}));
                }
                current = Some((day, vec![item]));
            }
        }
    }
    if let Some((d, list)) = current {
        days.push(json!({"day": d, "items": list}));
    }
    days
}

async fn calendar(Viewer(user): Viewer, State(state): State<AppState>) -> Response {
    match crate::calendar::entries(&state, 28).await {
        Ok(calendar) => {
            let now = jiff::Timestamp::now();
            let frozen_now: Vec<&Value> = calendar["freezes"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .filter(|f| millis(&f["from"]).is_some_and(|s| s <= now.as_millisecond()))
                        .collect()
                })
                .unwrap_or_default();
            let days = agenda(&calendar);
            let mut declared: Vec<(&str, &str)> = calendar["windows"]
                .as_array()
                .map(|ws| {
                    ws.iter()
                        .map(|w| {
                            (
                                w["environment"].as_str().unwrap_or_default(),
                                w["window"].as_str().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            declared.sort_unstable();
            declared.dedup();
            let declared_windows: Vec<Value> = declared
                .iter()
                .map(|(environment, window)| json!({"environment": environment, "window": window}))
                .collect();
            render(
                &state,
                "calendar.html",
                json!({ "user": user, "calendar": calendar, "days": days, "frozen_now": frozen_now, "declared_windows": declared_windows, "page": "calendar" }),
            )
        }
        Err(e) => e.into_response(),
    }
}

/// What the signed-in user may do on a deployment page now. Only a hint for the page: the
/// server checks every action again.
#[derive(Serialize, Default)]
struct Allowed {
    /// Approve or reject (the same rules hold for both).
    decide: bool,
    /// Why not, when the deployment waits for approvals and this user may not decide.
    decide_note: Option<String>,
    /// Waiting steps this user may confirm.
    confirm: Vec<String>,
    /// Waiting steps that need another role: (step, role).
    confirm_others: Vec<(String, String)>,
    cancel: bool,
    rollback: bool,
}

fn allowed(user: &User, view: &DeploymentView, plan: Option<&LoadedPlan>) -> Allowed {
    let d = &view.deployment;
    let approvals = &view.approvals;
    let owner = plan.and_then(|p| p.plan.release.owner.as_ref().map(|o| o.value.clone()));
    let mut allowed = Allowed::default();
    if d.state == "awaiting_approval" {
        let from: Vec<String> = approvals["from"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec![DEFAULT_APPROVER_ROLE.to_string()]);
        let already = approvals["approvers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(user.name.as_str())))
            || approvals["rejected"][0].as_str() == Some(user.name.as_str());
        let note = if user.name == d.requester {
            Some("You requested this deployment, so you cannot approve or reject it: separation of duties needs someone else.".to_string())
        } else if owner.as_deref() == Some(user.name.as_str()) {
            Some("You own this plan, so you cannot approve or reject its deployment: separation of duties needs someone else.".to_string())
        } else if approvals["required"].as_u64() == Some(0) {
            None
        } else if !from.iter().any(|r| has_role(user, r)) {
            Some(format!("Approving needs the role {}.", from.join(" or ")))
        } else if already {
            Some("You have already decided on this version of the plan.".to_string())
        } else {
            None
        };
        allowed.decide = note.is_none() && approvals["required"].as_u64() != Some(0);
        allowed.decide_note = note;
    }
    for waiting in &view.waiting_for {
        let step_id = waiting.split('#').next().unwrap_or(waiting);
        let role = plan
            .and_then(|p| p.plan.steps.iter().find(|s| s.id.value == step_id))
            .and_then(|s| s.owner.as_ref().map(|o| o.value.clone()));
        match role {
            Some(role) if !has_role(user, &role) => {
                allowed.confirm_others.push((waiting.clone(), role));
            }
            _ => allowed.confirm.push(waiting.clone()),
        }
    }
    let deployer = is_deployer(user);
    allowed.cancel = deployer
        && !d.cancel_requested
        && matches!(
            d.state.as_str(),
            "awaiting_approval" | "scheduled" | "queued" | "running"
        );
    allowed.rollback = deployer && d.kind == "deploy" && d.state == "succeeded";
    allowed
}

/// The plan as people read it: the release, the environment's rules, the steps, the risks.
fn plan_info(plan: &LoadedPlan, environment: &str) -> Value {
    let p = &plan.plan;
    let release = json!({
        "name": p.release.name.value,
        "version": p.release.version.as_ref().map(|v| v.value.clone()),
        "change": p.release.change.as_ref().map(|v| v.value.clone()),
        "summary": p.release.summary,
        "owner": p.release.owner.as_ref().map(|v| v.value.clone()),
        "objectives": p.release.objectives.iter().map(|o| json!({"text": o.text, "test": o.test.as_ref().map(|t| t.value.clone())})).collect::<Vec<_>>(),
    });
    let env = p.environments.get(environment).map(|e| {
        json!({
            "protected": e.protected,
            "approvals": e.approvals.as_ref().map(|a| json!({
                "required": a.required.value,
                "from": a.from.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            })),
            "windows": e.windows.iter().map(|w| w.value.text.clone()).collect::<Vec<_>>(),
            "freezes": e.freezes.iter().map(|f| json!({"from": f.value.from_text, "to": f.value.to_text, "reason": f.value.reason})).collect::<Vec<_>>(),
            "targets": e.targets.iter().map(|t| json!({
                "name": t.name.value,
                "labels": t.labels.iter().map(|l| l.value.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    });
    let steps: Vec<Value> = p
        .steps
        .iter()
        .map(|s| {
            json!({
                "id": s.id.value,
                "description": s.description,
                "owner": s.owner.as_ref().map(|o| o.value.clone()),
                "on": s.on.as_ref().map(|on| on.iter().map(|l| l.value.clone()).collect::<Vec<_>>()),
                "needs": s.needs.iter().map(|n| n.value.clone()).collect::<Vec<_>>(),
                "manual": s.manual.as_ref().map(|m| m.value.clone()),
                "run": s.run.as_ref().map(Command::describe),
                "rollback": s.rollback.as_ref().map(Command::describe),
                "strategy": s.strategy.value.describe(),
                "timeout": s.timeout.as_ref().map(|t| format_duration(t.value)),
                "retries": s.retries,
                "checks": s.validate.len(),
                "release_dir": s.release_dir.as_ref().map(|r| r.path.value.clone()),
                "irreversible": s.is_irreversible(),
            })
        })
        .collect();
    let risks: Vec<Value> = p
        .risks
        .iter()
        .map(|r| {
            json!({
                "id": r.id.value,
                "title": r.title,
                "likelihood": r.likelihood.value,
                "impact": r.impact.value,
                "exposure": r.likelihood.value * r.impact.value,
                "mitigation": r.mitigation,
                "contingency": r.contingency,
                "owner": r.owner,
            })
        })
        .collect();
    json!({"release": release, "environment": env, "steps": steps, "risks": risks})
}

/// When the environment may next be deployed to, by its windows and freezes.
fn schedule_info(plan: &LoadedPlan, environment: &str) -> Value {
    match plan_rollout(&plan.plan, environment, jiff::Timestamp::now(), None) {
        Ok(r) => json!({
            "has_windows": r.calendar.has_windows,
            "in_window": r.calendar.in_window,
            "next_window": r.calendar.next_window.map(|t| t.as_millisecond()),
            "window_closes": r.calendar.window_closes.map(|t| t.as_millisecond()),
            "freeze": r.calendar.freeze.map(|f| json!({"reason": f.reason, "to": f.to.as_millisecond()})),
        }),
        Err(_) => Value::Null,
    }
}

/// Step runs with their (masked) output, for the logs panel.
async fn logs_of(state: &AppState, id: i64) -> Result<Vec<Value>, ApiError> {
    let runs = state.store.step_runs(id).await?;
    Ok(runs
        .iter()
        .map(|r| {
            let took = r.finished_at.map(|f| {
                format_duration(Duration::from_millis(
                    u64::try_from(f - r.started_at).unwrap_or(0),
                ))
            });
            json!({
                "id": r.id,
                "step": r.step_id,
                "target": r.target,
                "phase": r.phase,
                "attempt": r.attempt,
                "state": r.state,
                "started_at": r.started_at,
                "took": took,
                "exit_code": r.exit_code,
                "message": r.message,
                "output": r.output,
            })
        })
        .collect())
}

/// Everything a deployment page (or one of its panels) shows.
async fn page_context(state: &AppState, id: i64, user: &User) -> Result<Value, ApiError> {
    let view = fresh_view(state, id).await?;
    let record = state
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("deployment #{id} does not exist")))?;
    let plan = state.plans.get(&record);
    let can = allowed(user, &view, plan.as_deref());
    let (plan_info, schedule) = match &plan {
        Some(p) => (
            plan_info(p, &record.environment),
            schedule_info(p, &record.environment),
        ),
        None => (Value::Null, Value::Null),
    };
    let logs = logs_of(state, id).await?;
    let finished = record.state.is_final();
    let actions_key = fingerprint(&json!([
        view.deployment,
        view.approvals,
        view.waiting_for,
        can
    ]));
    let logs_key = fingerprint(&json!(logs));
    Ok(json!({
        "user": user,
        "view": view,
        "can": can,
        "plan": plan_info,
        "schedule": schedule,
        "logs": logs,
        "live": !finished,
        "actions_key": actions_key,
        "logs_key": logs_key,
    }))
}

/// A short digest of what a panel shows, so the page re-fetches it only when it changed.
fn fingerprint(v: &Value) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

#[derive(Deserialize, Default)]
struct Seen {
    seen: Option<String>,
}

async fn deployment(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(f): Query<Flash>,
) -> Response {
    let mut ctx = match page_context(&state, id, &user).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let (flash, flash_kind) = flash(&f);
    ctx["page"] = json!("deployment");
    ctx["flash"] = json!(flash);
    ctx["flash_kind"] = json!(flash_kind);
    render(&state, "deployment.html", ctx)
}

/// The approvals and buttons panel, asked for again by the page on each status event: 204 (the
/// page keeps what it has) when nothing it shows changed, else the new panel.
async fn actions_panel(
    Viewer(user): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<Seen>,
) -> Response {
    match page_context(&state, id, &user).await {
        Ok(ctx) if q.seen.as_deref() == ctx["actions_key"].as_str() => {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(ctx) => render(&state, "actions.html", ctx),
        Err(e) => e.into_response(),
    }
}

/// The logs panel, asked for again by the page on each grid event (204 when unchanged).
async fn logs_panel(
    Viewer(_): Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<Seen>,
) -> Response {
    let record = match state.store.deployment(id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return ApiError::not_found(format!("deployment #{id} does not exist")).into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    match logs_of(&state, id).await {
        Ok(logs) => {
            let key = fingerprint(&json!(logs));
            if q.seen.as_deref() == Some(key.as_str()) {
                return StatusCode::NO_CONTENT.into_response();
            }
            render(
                &state,
                "logs.html",
                json!({ "logs": logs, "logs_key": key, "live": !record.state.is_final(), "view": { "deployment": { "id": id } } }),
            )
        }
        Err(e) => e.into_response(),
    }
}

/// The grid and status fragments of a deployment page, for the live stream.
pub async fn fragments(state: &AppState, id: i64) -> Result<(String, String), ApiError> {
    let view = fresh_view(state, id).await?;
    let render_one = |name: &str| {
        render_text(state, name, json!({ "view": view })).map(|html| html.replace('\n', " "))
    };
    Ok((render_one("grid.html")?, render_one("status.html")?))
}

/// A deployment's view in the state the record has now.
///
/// Views may be served from a short-lived cache, but the live stream ends after the batch in
/// which the deployment ends, so what that batch shows must not be older: a view whose state
/// differs from the record's is built again (once the cache's copy has expired).
async fn fresh_view(state: &AppState, id: i64) -> Result<DeploymentView, ApiError> {
    let mut view = views::deployment(state, id).await?;
    for _ in 0..10 {
        let now = state.store.deployment(id).await?.map(|d| d.state);
        if now.is_none_or(|s| s.as_str() == view.deployment.state) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        view = views::deployment(state, id).await?;
    }
    Ok(view)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Back to the deployment page with a message.
fn back(id: i64, result: Result<String, ApiError>) -> Response {
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
    let failed = |e: ApiError| {
        Redirect::to(&format!(
            "/?err={}",
            encode(&format!("{} [{}]", e.message, e.code))
        ))
        .into_response()
    };
    if let Err(e) = caller.require_deployer() {
        return failed(e);
    }
    match state
        .engine
        .request_rollback(&env, None, &caller.0.name, "server")
        .await
    {
        Ok(d) => Redirect::to(&format!("/deployments/{}", d.id)).into_response(),
        Err(e) => failed(ApiError::from(e)),
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
