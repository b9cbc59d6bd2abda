//! The JSON API under `/api`, documented by the OpenAPI document at `/api/openapi.json`.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_core::lifecycle::DeploymentState;
use slipway_engine::DeployRequest;
use slipway_store::{DeploymentFilter, EventFilter, NewEvent, Store};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, Body, ErrorBody, Path, Query};
use crate::state::AppState;
use crate::views::{self, DeploymentSummary, DeploymentView, EnvironmentView};

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway API", description = "Deployments: request, approve, watch, roll back. Every call needs `Authorization: Bearer TOKEN` except /healthz, /metrics and this document."),
    paths(
        me, list_deployments, create_deployment, get_deployment, deployment_events, deployment_logs, approve, reject, confirm, cancel,
        amend, break_glass, crate::live::api_stream, list_environments, rollback_environment, inventory, calendar, list_users, save_user, create_token, list_tokens, revoke_token
    ),
    components(schemas(ErrorBody, Created, DeploymentSummary, DeploymentView, EnvironmentView, CreateDeployment, Reason, Confirm, Amend, RollbackRequest, SaveUser, CreateToken, CreatedToken)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
        // Every operation answers 401 without a valid token.
        let unauthenticated = utoipa::openapi::ResponseBuilder::new()
            .description("unauthenticated: no valid API token")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                op.responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| unauthenticated.clone().into());
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/me", get(me))
        .route(
            "/api/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/api/deployments/{id}", get(get_deployment))
        .route("/api/deployments/{id}/events", get(deployment_events))
        .route("/api/deployments/{id}/logs", get(deployment_logs))
        .route("/api/deployments/{id}/stream", get(crate::live::api_stream))
        .route("/api/deployments/{id}/approve", post(approve))
        .route("/api/deployments/{id}/reject", post(reject))
        .route("/api/deployments/{id}/confirm", post(confirm))
        .route("/api/deployments/{id}/cancel", post(cancel))
        .route("/api/deployments/{id}/plan", post(amend))
        .route("/api/deployments/{id}/break-glass", post(break_glass))
        .route("/api/environments", get(list_environments))
        .route(
            "/api/environments/{env}/rollback",
            post(rollback_environment),
        )
        .route("/api/inventory", get(inventory))
        .route("/api/calendar", get(calendar))
        .route("/api/users", get(list_users).post(save_user))
        .route("/api/tokens", get(list_tokens).post(create_token))
        .route("/api/tokens/{id}", delete(revoke_token))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The caller and their roles.
#[utoipa::path(get, path = "/api/me", responses((status = 200, description = "the user", body = Object), (status = 401, body = ErrorBody)))]
async fn me(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.0.name, "roles": caller.0.roles}))
}

#[derive(Deserialize, IntoParams)]
struct ListQuery {
    environment: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

/// Deployments, newest first.
#[utoipa::path(get, path = "/api/deployments", params(ListQuery), responses((status = 200, body = [DeploymentSummary]), (status = 400, description = "an unknown state", body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_deployments(
    _: Caller,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<DeploymentSummary>>, ApiError> {
    let states = match q.state.as_deref() {
        Some(s) => vec![DeploymentState::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid", format!("`{s}` is not a deployment state"))
        })?],
        None => Vec::new(),
    };
    Ok(Json(
        views::deployments(
            &state,
            DeploymentFilter {
                environment: q.environment,
                states,
                limit: Some(q.limit.unwrap_or(50).min(500)),
                without_plan: true,
            },
        )
        .await?,
    ))
}

/// A deployment request: the plan itself (YAML text), where, and when.
#[derive(Deserialize, ToSchema)]
pub struct CreateDeployment {
    /// The plan, as YAML text.
    pub plan: String,
    /// A name for the plan in diagnostics and the record (default `plan.yaml`).
    pub plan_name: Option<String>,
    /// A path on the server next to which the plan's artifact and secret files are found.
    pub plan_path: Option<String>,
    pub environment: String,
    pub version: Option<String>,
    /// Start no earlier than this RFC 3339 time.
    pub at: Option<String>,
    /// An admin's written reason to deploy through a freeze.
    pub break_glass: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    deployment: DeploymentSummary,
    #[schema(value_type = Object)]
    approvals: Value,
}

/// Requests a deployment. It waits for approvals, its window or its time, or is queued for a worker.
#[utoipa::path(post, path = "/api/deployments", request_body = CreateDeployment,
    responses((status = 201, body = Created), (status = 400, description = "invalid plan, with diagnostics", body = ErrorBody),
        (status = 403, description = "frozen, blocked by risk policy, or not a deployer", body = ErrorBody),
        (status = 409, description = "the environment has a deployment in progress", body = ErrorBody)))]
async fn create_deployment(
    caller: Caller,
    State(state): State<AppState>,
    Body(body): Body<CreateDeployment>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    caller.require_deployer()?;
    let name = body.plan_name.clone().unwrap_or_else(|| "plan.yaml".into());
    let loaded = match slipway_core::load(&name, body.plan.as_bytes()) {
        Ok(l) => l,
        Err(errors) => {
            let diagnostics: Vec<_> = errors
                .diagnostics
                .iter()
                .map(|d| d.to_data(&errors.source))
                .collect();
            return Err(ApiError::bad_request("invalid_plan", format!("{errors}"))
                .with_details(json!({"diagnostics": diagnostics})));
        }
    };
    let busy = state
        .store
        .deployments(DeploymentFilter {
            environment: Some(body.environment.clone()),
            states: vec![
                DeploymentState::Running,
                DeploymentState::RollingBack,
                DeploymentState::Queued,
            ],
            limit: Some(1),
            without_plan: true,
        })
        .await?;
    if let Some(d) = busy.first() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "environment_busy",
            format!(
                "environment `{}` already has deployment #{} {}; one deployment per environment at a time",
                d.environment, d.id, d.state
            ),
        ));
    }
    let at = body
        .at
        .as_deref()
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map_err(|e| ApiError::bad_request("invalid", format!("`at`: {e}")))
        })
        .transpose()?;
    let plan_file = match &body.plan_path {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = state.data_dir.join("plans");
            std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
            let file = dir.join(format!("{}.yaml", &loaded.hash[..16]));
            std::fs::write(&file, &body.plan).map_err(ApiError::internal)?;
            file
        }
    };
    let request = DeployRequest {
        plan: loaded,
        plan_file,
        environment: body.environment.clone(),
        version: body.version.clone(),
        requester: caller.0.name.clone(),
        origin: "server".into(),
    };
    let glass = body.break_glass.as_deref().map(|r| (&caller.0, r));
    let d = state.engine.request(&request, at, glass).await?;
    let standing = state.engine.standing(d.id).await?;
    let approvals = serde_json::to_value(&standing.approvals).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            deployment: DeploymentSummary::from(&standing.deployment),
            approvals,
        }),
    ))
}

/// A deployment with its approvals, risk, live grid of steps × targets and summary.
#[utoipa::path(get, path = "/api/deployments/{id}", params(("id" = i64, Path)), responses((status = 200, body = DeploymentView), (status = 404, body = ErrorBody)))]
async fn get_deployment(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeploymentView>, ApiError> {
    Ok(Json(views::deployment(&state, id).await?))
}

#[derive(Deserialize, IntoParams)]
struct EventsQuery {
    after: Option<i64>,
}

/// The deployment's audit events, in order.
#[utoipa::path(get, path = "/api/deployments/{id}/events", params(("id" = i64, Path), EventsQuery), responses((status = 200, body = [Object])))]
async fn deployment_events(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let events = state
        .store
        .events(EventFilter {
            deployment_id: Some(id),
            after_seq: q.after,
            limit: Some(1000),
        })
        .await?;
    Ok(Json(
        serde_json::to_value(events).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize, IntoParams)]
struct LogsQuery {
    step: Option<String>,
    target: Option<String>,
}

/// Step runs with their (masked) output.
#[utoipa::path(get, path = "/api/deployments/{id}/logs", params(("id" = i64, Path), LogsQuery), responses((status = 200, body = [Object])))]
async fn deployment_logs(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    let runs: Vec<_> = state
        .store
        .step_runs(id)
        .await?
        .into_iter()
        .filter(|r| {
            q.step.as_deref().is_none_or(|s| r.step_id == s)
                && q.target.as_deref().is_none_or(|t| r.target == t)
        })
        .collect();
    Ok(Json(
        serde_json::to_value(runs).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct Reason {
    pub reason: Option<String>,
}

/// Approve, as the caller; the requester and the plan's owner never can, each person counts once.
#[utoipa::path(post, path = "/api/deployments/{id}/approve", params(("id" = i64, Path)), request_body = Reason,
    responses((status = 200, body = Object), (status = 403, description = "self_approval, plan_owner_approval, missing_role, already_decided", body = ErrorBody), (status = 404, description = "no such deployment", body = ErrorBody), (status = 409, description = "wrong_state: not awaiting approval", body = ErrorBody)))]
async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Option<Body<Reason>>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.and_then(|b| b.0.reason);
    let standing = state
        .engine
        .decide(id, &caller.0, true, reason.as_deref())
        .await?;
    Ok(Json(
        serde_json::to_value(standing).map_err(ApiError::internal)?,
    ))
}

/// Reject, with a reason (required).
#[utoipa::path(post, path = "/api/deployments/{id}/reject", params(("id" = i64, Path)), request_body = Reason,
    responses((status = 200, body = Object), (status = 400, description = "reason_required", body = ErrorBody), (status = 403, description = "self_approval, plan_owner_approval, missing_role, already_decided", body = ErrorBody), (status = 404, description = "no such deployment", body = ErrorBody), (status = 409, description = "wrong_state: not awaiting approval", body = ErrorBody)))]
async fn reject(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Option<Body<Reason>>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.and_then(|b| b.0.reason);
    let standing = state
        .engine
        .decide(id, &caller.0, false, reason.as_deref())
        .await?;
    Ok(Json(
        serde_json::to_value(standing).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct Confirm {
    /// The manual step's id, or `STEP#stageN` for a canary pause.
    pub step: String,
}

/// Confirm a manual step; only its owner role may.
#[utoipa::path(post, path = "/api/deployments/{id}/confirm", params(("id" = i64, Path)), request_body = Confirm,
    responses((status = 200, body = Object), (status = 400, description = "no such step", body = ErrorBody), (status = 403, description = "not_step_owner", body = ErrorBody), (status = 404, description = "no such deployment", body = ErrorBody), (status = 409, description = "already confirmed, or the deployment has ended", body = ErrorBody)))]
async fn confirm(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(body): Body<Confirm>,
) -> Result<Json<Value>, ApiError> {
    let first = state.engine.confirm_as(id, &body.step, &caller.0).await?;
    if !first {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_confirmed",
            format!("`{}` was already confirmed", body.step),
        ));
    }
    Ok(Json(
        json!({"deployment": id, "step": body.step, "confirmed_by": caller.0.name}),
    ))
}

/// Cancel: a running deployment stops at its next batch and rolls back.
#[utoipa::path(post, path = "/api/deployments/{id}/cancel", params(("id" = i64, Path)), responses((status = 200, body = DeploymentSummary), (status = 403, description = "deployer_only", body = ErrorBody), (status = 404, description = "no such deployment", body = ErrorBody), (status = 409, description = "the deployment has ended", body = ErrorBody)))]
async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeploymentSummary>, ApiError> {
    caller.require_deployer()?;
    let d = state.engine.cancel(id, &caller.0.name).await?;
    Ok(Json(DeploymentSummary::from(&d)))
}

#[derive(Deserialize, ToSchema)]
pub struct Amend {
    /// The new plan, as YAML text. Approvals given on the old plan no longer count.
    pub plan: String,
}

/// Replace the plan of a deployment that has not started.
#[utoipa::path(post, path = "/api/deployments/{id}/plan", params(("id" = i64, Path)), request_body = Amend,
    responses((status = 200, body = Object), (status = 400, description = "invalid_plan, with diagnostics; or not the requester", body = ErrorBody), (status = 404, description = "no such deployment", body = ErrorBody), (status = 409, description = "wrong_state: it has started", body = ErrorBody)))]
async fn amend(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(body): Body<Amend>,
) -> Result<Json<Value>, ApiError> {
    let d = state
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("deployment #{id} does not exist")))?;
    let loaded = slipway_core::load(&d.plan_file, body.plan.as_bytes()).map_err(|errors| {
        let diagnostics: Vec<_> = errors
            .diagnostics
            .iter()
            .map(|x| x.to_data(&errors.source))
            .collect();
        ApiError::bad_request("invalid_plan", errors.to_string())
            .with_details(json!({"diagnostics": diagnostics}))
    })?;
    let standing = state.engine.amend(id, &loaded, &caller.0).await?;
    Ok(Json(
        serde_json::to_value(standing).map_err(ApiError::internal)?,
    ))
}

/// An admin lets a deployment through freezes and windows; the reason is recorded and shown.
#[utoipa::path(post, path = "/api/deployments/{id}/break-glass", params(("id" = i64, Path)), request_body = Reason,
    responses((status = 200, body = DeploymentSummary), (status = 400, description = "no reason given", body = ErrorBody), (status = 403, description = "admin_only", body = ErrorBody), (status = 404, description = "no such deployment", body = ErrorBody), (status = 409, description = "wrong_state: it has started", body = ErrorBody)))]
async fn break_glass(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(body): Body<Reason>,
) -> Result<Json<DeploymentSummary>, ApiError> {
    let d = state
        .engine
        .break_glass(id, &caller.0, body.reason.as_deref().unwrap_or_default())
        .await?;
    Ok(Json(DeploymentSummary::from(&d)))
}

/// Environments: what they run, what is running or waiting, the next window.
#[utoipa::path(get, path = "/api/environments", responses((status = 200, body = [EnvironmentView])))]
async fn list_environments(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Vec<EnvironmentView>>, ApiError> {
    Ok(Json(views::environments(&state).await?))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct RollbackRequest {
    /// The release to return to; by default the one each target ran before.
    pub to: Option<String>,
}

/// Return an environment to an earlier release still kept on its targets; a worker runs it.
#[utoipa::path(post, path = "/api/environments/{env}/rollback", params(("env" = String, Path)), request_body = RollbackRequest,
    responses((status = 202, body = DeploymentSummary), (status = 403, description = "deployer_only", body = ErrorBody), (status = 409, description = "refused: nothing to return to, or the release is not kept", body = ErrorBody)))]
async fn rollback_environment(
    caller: Caller,
    State(state): State<AppState>,
    Path(env): Path<String>,
    body: Option<Body<RollbackRequest>>,
) -> Result<(StatusCode, Json<DeploymentSummary>), ApiError> {
    caller.require_deployer()?;
    let to = body.and_then(|b| b.0.to);
    let d = state
        .engine
        .request_rollback(&env, to.as_deref(), &caller.0.name, "server")
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeploymentSummary::from(&d))))
}

#[derive(Deserialize, IntoParams)]
struct EnvQuery {
    environment: Option<String>,
}

/// Which release each target runs and keeps.
#[utoipa::path(get, path = "/api/inventory", params(EnvQuery), responses((status = 200, body = [Object])))]
async fn inventory(
    _: Caller,
    State(state): State<AppState>,
    Query(q): Query<EnvQuery>,
) -> Result<Json<Value>, ApiError> {
    let inv = state.store.inventory(q.environment.as_deref()).await?;
    Ok(Json(serde_json::to_value(inv).map_err(ApiError::internal)?))
}

#[derive(Deserialize, IntoParams)]
struct CalendarQuery {
    /// Days ahead to show (default 28, at most 366).
    days: Option<u32>,
}

/// Scheduled deployments, window openings and freezes ahead.
#[utoipa::path(get, path = "/api/calendar", params(CalendarQuery), responses((status = 200, body = Object)))]
async fn calendar(
    _: Caller,
    State(state): State<AppState>,
    Query(q): Query<CalendarQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        crate::calendar::entries(&state, q.days.unwrap_or(28).min(366)).await?,
    ))
}

/// Users and their roles (admin).
#[utoipa::path(get, path = "/api/users", responses((status = 200, body = [Object]), (status = 403, body = ErrorBody)))]
async fn list_users(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(
        serde_json::to_value(state.store.users().await?).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct SaveUser {
    pub name: String,
    pub roles: Vec<String>,
}

/// Create a user or replace their roles (admin).
#[utoipa::path(post, path = "/api/users", request_body = SaveUser, responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, description = "admin_only", body = ErrorBody)))]
async fn save_user(
    caller: Caller,
    State(state): State<AppState>,
    Body(body): Body<SaveUser>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("invalid", "a user needs a name"));
    }
    let user = slipway_engine::identity::set_user(
        state.store.as_ref(),
        &body.name,
        body.roles,
        &caller.0.name,
    )
    .await?;
    Ok(Json(
        serde_json::to_value(user).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateToken {
    pub user: String,
    pub name: Option<String>,
    /// Validity such as `30d`; none means no expiry.
    pub expires: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub user: String,
    /// Shown once; only its hash is stored.
    pub token: String,
    pub expires_at: Option<i64>,
}

/// Issue a token (admin, or a user for themselves).
#[utoipa::path(post, path = "/api/tokens", request_body = CreateToken, responses((status = 201, body = CreatedToken), (status = 400, description = "no such user, or a bad `expires`", body = ErrorBody), (status = 403, description = "admin_only", body = ErrorBody)))]
async fn create_token(
    caller: Caller,
    State(state): State<AppState>,
    Body(body): Body<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if body.user != caller.0.name {
        caller.require_admin()?;
    }
    if state.store.user(&body.user).await?.is_none() {
        return Err(ApiError::bad_request(
            "invalid",
            format!("no user `{}`", body.user),
        ));
    }
    let expires_at = match &body.expires {
        Some(text) => {
            let d = slipway_core::duration::parse_duration(text)
                .map_err(|e| ApiError::bad_request("invalid", format!("`expires`: {e}")))?;
            Some(
                slipway_engine::now_millis() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
            )
        }
        None => None,
    };
    let name = body.name.clone().unwrap_or_else(|| "token".into());
    let issued = slipway_engine::identity::create_token(
        state.store.as_ref(),
        &body.user,
        &name,
        expires_at,
        &caller.0.name,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: issued.id,
            user: body.user,
            token: issued.secret,
            expires_at,
        }),
    ))
}

/// Tokens (admin: all; others: their own).
#[utoipa::path(get, path = "/api/tokens", responses((status = 200, body = [Object])))]
async fn list_tokens(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let user = if caller.is_admin() {
        None
    } else {
        Some(caller.0.name.as_str())
    };
    Ok(Json(
        serde_json::to_value(state.store.tokens(user).await?).map_err(ApiError::internal)?,
    ))
}

/// Revoke a token (admin, or its own user).
#[utoipa::path(delete, path = "/api/tokens/{id}", params(("id" = String, Path)), responses((status = 204), (status = 403, description = "admin_only", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let owner = state
        .store
        .tokens(None)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.user);
    match owner {
        None => return Err(ApiError::not_found(format!("no token `{id}`"))),
        Some(u) if u != caller.0.name => caller.require_admin()?,
        Some(_) => {}
    }
    let event = NewEvent::new(
        None,
        slipway_engine::now_millis(),
        "token_revoked",
        &caller.0.name,
        json!({"token": id}),
    );
    if !state
        .store
        .revoke_token(&id, slipway_engine::now_millis(), event)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "token `{id}` is already revoked"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
