//! The HTTP API: every coordination rule, through the wire.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{APPROVALS, SIMPLE_STEP, Server, plan};

/// A step, then a manual step only the `network-team` role may confirm: holds a deployment
/// running until someone confirms.
const MANUAL_STEPS: &str = "  - id: install\n    on: [web]\n    run: echo installing\n  - id: confirm-dns\n    needs: [install]\n    manual: Confirm the CDN points at the new origin\n    owner: network-team\n";

/// A Capistrano-style release directory on every target: `releases/<version>` + `current`.
const RELEASE_STEP: &str = "  - id: install\n    on: [web]\n    release_dir: shop\n    run: echo \"$SLIPWAY_VERSION\" > VERSION\n";

/// Every route of the JSON API the router serves, by method and path (as in the OpenAPI
/// document), with the error statuses each one can answer and must document. The OpenAPI
/// document itself (`/api/openapi.json`) is public and not listed.
const API_ROUTES: &[(&str, &str, &[u16])] = &[
    ("get", "/api/me", &[401]),
    ("get", "/api/deployments", &[400, 401]),
    ("post", "/api/deployments", &[400, 401, 403, 409]),
    ("get", "/api/deployments/{id}", &[401, 404]),
    ("get", "/api/deployments/{id}/events", &[401]),
    ("get", "/api/deployments/{id}/logs", &[401]),
    ("get", "/api/deployments/{id}/stream", &[401]),
    (
        "post",
        "/api/deployments/{id}/approve",
        &[401, 403, 404, 409],
    ),
    (
        "post",
        "/api/deployments/{id}/reject",
        &[400, 401, 403, 404, 409],
    ),
    (
        "post",
        "/api/deployments/{id}/confirm",
        &[400, 401, 403, 404, 409],
    ),
    (
        "post",
        "/api/deployments/{id}/cancel",
        &[401, 403, 404, 409],
    ),
    ("post", "/api/deployments/{id}/plan", &[400, 401, 404, 409]),
    (
        "post",
        "/api/deployments/{id}/break-glass",
        &[400, 401, 403, 404, 409],
    ),
    ("get", "/api/environments", &[401]),
    ("post", "/api/environments/{env}/rollback", &[401, 403, 409]),
    ("get", "/api/inventory", &[401]),
    ("get", "/api/calendar", &[401]),
    ("get", "/api/users", &[401, 403]),
    ("post", "/api/users", &[400, 401, 403]),
    ("get", "/api/tokens", &[401]),
    ("post", "/api/tokens", &[400, 401, 403]),
    ("delete", "/api/tokens/{id}", &[401, 403, 404]),
];

// ---------------------------------------------------------------------------------------------
// Helpers

/// The stable error code of an error response.
fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// Asserts an error response: its status and its stable code.
#[track_caller]
fn refused(got: (u16, Value), status: u16, expected: &str) {
    assert_eq!((got.0, code(&got.1)), (status, Some(expected)), "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error has a message for people: {}",
        got.1
    );
}

async fn deploy(s: &Server, token: &str, body: Value) -> (u16, Value) {
    s.post(token, "/api/deployments", body).await
}

/// Requests a deployment that must be accepted; returns its id and the response.
async fn deploy_ok(s: &Server, token: &str, body: Value) -> (i64, Value) {
    let (status, body) = deploy(s, token, body).await;
    assert_eq!(status, 201, "{body}");
    (body["deployment"]["id"].as_i64().expect("id"), body)
}

async fn approve(s: &Server, token: &str, id: i64) -> (u16, Value) {
    s.post(token, &format!("/api/deployments/{id}/approve"), json!({}))
        .await
}

async fn delete(s: &Server, token: &str, path: &str) -> u16 {
    s.http
        .delete(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn state_of(s: &Server, token: &str, id: i64) -> Value {
    let (status, d) = s.get(token, &format!("/api/deployments/{id}")).await;
    assert_eq!(status, 200, "{d}");
    d
}

/// Waits until a running deployment waits for the confirmation of `step`.
async fn wait_for_step(s: &Server, token: &str, id: i64, step: &str) -> Value {
    s.wait_for(token, id, |d| {
        d["deployment"]["state"] == "running"
            && d["waiting_for"]
                .as_array()
                .is_some_and(|w| w.iter().any(|x| x == step))
    })
    .await
}

fn utc_today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

fn day(offset: i64) -> jiff::civil::Date {
    utc_today()
        .checked_add(jiff::Span::new().days(offset))
        .expect("date")
}

/// Unix milliseconds of `date` at `hour`:00 UTC.
fn millis_at(date: jiff::civil::Date, hour: i8) -> i64 {
    date.at(hour, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("zoned")
        .timestamp()
        .as_millisecond()
}

/// An environment window that opens 3 days from today (UTC) at 10:00 and is closed now.
fn window_in_three_days() -> (String, i64) {
    let date = day(3);
    let weekday = date.strftime("%a").to_string();
    (
        format!("    windows: [\"{weekday} 10:00-11:00 UTC\"]\n"),
        millis_at(date, 10),
    )
}

/// A freeze from yesterday to the end of tomorrow (UTC).
fn freeze_now() -> String {
    format!(
        "    freezes:\n      - {{ from: {}, to: {}, reason: Year-end sale }}\n",
        day(-1),
        day(1)
    )
}

/// Kinds of the events a deployment's SSE stream delivers, in order, read until the stream
/// sends `end` (or closes). `on_event` is called with each kind as it arrives.
async fn read_stream(
    mut response: reqwest::Response,
    mut on_event: impl AsyncFnMut(&str),
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = String::new();
    let mut kinds = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("the stream stalled; events so far: {kinds:?}"))
            .expect("stream");
        let Some(chunk) = chunk else {
            return kinds;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        // Complete lines only.
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            if let Some(kind) = line.trim_end().strip_prefix("event:") {
                let kind = kind.trim().to_string();
                on_event(&kind).await;
                let done = kind == "end";
                kinds.push(kind);
                if done {
                    return kinds;
                }
            }
        }
    }
}

/// The index of the first event of `kind`, which must be there.
#[track_caller]
fn position(kinds: &[String], kind: &str) -> usize {
    kinds
        .iter()
        .position(|k| k == kind)
        .unwrap_or_else(|| panic!("no `{kind}` event in {kinds:?}"))
}

// ---------------------------------------------------------------------------------------------
// Deployments run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_deployment_is_run_by_a_worker() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let (status, body) = s
        .post(
            &dan,
            "/api/deployments",
            json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["deployment"]["id"].as_i64().expect("id");
    let done = s
        .wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    assert_eq!(done["grid"]["cells"][0][0]["state"], "done");
    assert_eq!(done["deployment"]["requester"], "dan");
    // Its logs: each target's run of the step, with its output.
    let (status, logs) = s
        .get(&dan, &format!("/api/deployments/{id}/logs?target=web-2"))
        .await;
    assert_eq!(status, 200, "{logs}");
    let runs = logs.as_array().expect("runs");
    assert!(runs.iter().all(|r| r["target"] == "web-2"), "{logs}");
    let run = runs
        .iter()
        .find(|r| r["phase"] == "run")
        .expect("the run of install on web-2");
    assert_eq!(run["state"], "succeeded");
    assert!(
        run["output"]
            .as_str()
            .is_some_and(|o| o.contains("installing")),
        "{run}"
    );
    // An unknown deployment is a 404 with the error shape.
    refused(
        s.get(&dan, "/api/deployments/999999").await,
        404,
        "not_found",
    );
    refused(
        approve(&s, &s.token("bob").await, 999_999).await,
        404,
        "not_found",
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Authentication and roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_requires_a_valid_token() {
    let s = Server::start().await;
    for (method, path, _) in API_ROUTES {
        let url = s.url(&path.replace("{id}", "1").replace("{env}", "production"));
        for token in [None, Some("slw_not-a-token"), Some("")] {
            let mut request = match *method {
                "get" => s.http.get(&url),
                "post" => s.http.post(&url).json(&json!({})),
                "delete" => s.http.delete(&url),
                other => panic!("method {other}"),
            };
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, code(&body)),
                (401, Some("unauthenticated")),
                "{method} {path} with token {token:?}: {body}"
            );
        }
    }
    // The public ones.
    let r = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .http
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(r.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_stored_hashed_revocable_and_expiring() {
    let s = Server::start().await;
    let admin = s.token("admin").await;
    // Issued through the API: the secret is in the response, once.
    let (status, issued) = s
        .post(
            &admin,
            "/api/tokens",
            json!({"user": "dan", "name": "ci pipeline"}),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let secret = issued["token"].as_str().expect("secret").to_string();
    let id = issued["id"].as_str().expect("id").to_string();
    assert_eq!(issued["user"], "dan");
    let (status, me) = s.get(&secret, "/api/me").await;
    assert_eq!((status, &me["name"]), (200, &json!("dan")), "{me}");
    assert_eq!(me["roles"], json!(["deployer"]));
    // The web UI's cookie carries the same token.
    let r = s
        .http
        .get(s.url("/api/me"))
        .header("cookie", format!("theme=dark; slipway_token={secret}"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);

    // Listing tokens never shows a secret (nor its hash).
    let (status, all) = s.get(&admin, "/api/tokens").await;
    assert_eq!(status, 200, "{all}");
    let listed = all
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("the new token is listed");
    assert_eq!(listed["user"], "dan");
    assert_eq!(listed["name"], "ci pipeline");
    let text = all.to_string();
    let hash = slipway_engine::identity::hash_token(&secret);
    assert!(!text.contains(&secret), "a listing shows a secret: {text}");
    assert!(!text.contains(&hash), "a listing shows a hash: {text}");
    // A user sees their own tokens only.
    let (_, own) = s.get(&secret, "/api/tokens").await;
    assert!(
        own.as_array()
            .expect("list")
            .iter()
            .all(|t| t["user"] == "dan"),
        "{own}"
    );
    assert!(!own.to_string().contains(&secret));

    // The record keeps only the hash: the secret is in no file of the SQLite database.
    let mut found_hash = false;
    for entry in std::fs::read_dir(s.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("slipway.db"))
        {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read the record");
        let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(
            !contains(&secret),
            "the secret is stored in {}",
            path.display()
        );
        found_hash |= contains(&hash);
    }
    assert!(found_hash, "the token's hash should be in the record");

    // Someone else's token cannot be revoked by a non-admin.
    let alice = s.token("alice").await;
    assert_eq!(delete(&s, &alice, &format!("/api/tokens/{id}")).await, 403);
    assert_eq!(s.get(&secret, "/api/me").await.0, 200);
    // Revoked: refused from then on; revoking again is a 404.
    assert_eq!(delete(&s, &admin, &format!("/api/tokens/{id}")).await, 204);
    refused(s.get(&secret, "/api/me").await, 401, "unauthenticated");
    refused(
        deploy(
            &s,
            &secret,
            json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
        )
        .await,
        401,
        "unauthenticated",
    );
    assert_eq!(delete(&s, &admin, &format!("/api/tokens/{id}")).await, 404);
    assert_eq!(delete(&s, &admin, "/api/tokens/tok_nothing").await, 404);
    let (_, all) = s.get(&admin, "/api/tokens").await;
    let listed = all
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("a revoked token is still listed");
    assert!(listed["revoked_at"].is_i64(), "{listed}");

    // A user may revoke their own token.
    let (status, own) = s
        .post(&alice, "/api/tokens", json!({"user": "alice"}))
        .await;
    assert_eq!(status, 201, "{own}");
    let own_id = own["id"].as_str().expect("id");
    assert_eq!(
        delete(&s, &alice, &format!("/api/tokens/{own_id}")).await,
        204
    );
    assert_eq!(
        s.get(&alice, "/api/me").await.0,
        200,
        "other tokens live on"
    );

    // Expired: a token whose expiry has passed is refused.
    let expired = slipway_engine::identity::create_token(
        s.store.as_ref(),
        "dan",
        "old",
        Some(slipway_engine::now_millis() - 1_000),
        "test",
    )
    .await
    .expect("token")
    .secret;
    refused(s.get(&expired, "/api/me").await, 401, "unauthenticated");
    // Issued through the API with a short validity: good now, refused once it lapses.
    let (status, short) = s
        .post(
            &admin,
            "/api/tokens",
            json!({"user": "dan", "expires": "1s"}),
        )
        .await;
    assert_eq!(status, 201, "{short}");
    let short_secret = short["token"].as_str().expect("secret");
    let expires_at = short["expires_at"].as_i64().expect("expires_at");
    assert!(expires_at > slipway_engine::now_millis() - 1_000);
    assert_eq!(s.get(short_secret, "/api/me").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    refused(s.get(short_secret, "/api/me").await, 401, "unauthenticated");
    // A validity that is not a duration is refused.
    refused(
        s.post(
            &admin,
            "/api/tokens",
            json!({"user": "dan", "expires": "soon"}),
        )
        .await,
        400,
        "invalid",
    );
    refused(
        s.post(&admin, "/api/tokens", json!({"user": "nobody"}))
            .await,
        400,
        "invalid",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_what_a_caller_may_do() {
    let s = Server::start().await;
    let (admin, dan, erin) = (
        s.token("admin").await,
        s.token("dan").await,
        s.token("erin").await,
    );
    let body = json!({"plan": plan("", SIMPLE_STEP), "environment": "production"});
    // A viewer reads but never deploys, cancels or rolls back.
    refused(deploy(&s, &erin, body.clone()).await, 403, "deployer_only");
    refused(
        s.post(&erin, "/api/environments/production/rollback", json!({}))
            .await,
        403,
        "deployer_only",
    );
    assert_eq!(s.get(&erin, "/api/deployments").await.0, 200);
    assert_eq!(s.get(&erin, "/api/environments").await.0, 200);
    let (id, _) = deploy_ok(&s, &dan, body).await;
    refused(
        s.post(&erin, &format!("/api/deployments/{id}/cancel"), json!({}))
            .await,
        403,
        "deployer_only",
    );
    assert_eq!(state_of(&s, &erin, id).await["deployment"]["id"], id);

    // Users and other people's tokens are for admins.
    refused(s.get(&dan, "/api/users").await, 403, "admin_only");
    refused(
        s.post(
            &dan,
            "/api/users",
            json!({"name": "zoe", "roles": ["admin"]}),
        )
        .await,
        403,
        "admin_only",
    );
    refused(
        s.post(&dan, "/api/tokens", json!({"user": "alice"})).await,
        403,
        "admin_only",
    );
    refused(
        s.post(&erin, "/api/tokens", json!({"user": "admin"})).await,
        403,
        "admin_only",
    );
    // A user may issue a token for themselves.
    let (status, mine) = s.post(&dan, "/api/tokens", json!({"user": "dan"})).await;
    assert_eq!(status, 201, "{mine}");
    // An admin lists users and creates them, with roles that take effect at once.
    let (status, users) = s.get(&admin, "/api/users").await;
    assert_eq!(status, 200, "{users}");
    let nina = users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["name"] == "nina")
        .expect("nina");
    assert_eq!(nina["roles"], json!(["network-team"]));
    let (status, zoe) = s
        .post(
            &admin,
            "/api/users",
            json!({"name": "zoe", "roles": ["viewer"]}),
        )
        .await;
    assert_eq!((status, &zoe["name"]), (200, &json!("zoe")), "{zoe}");
    refused(
        s.post(&admin, "/api/users", json!({"name": " ", "roles": []}))
            .await,
        400,
        "invalid",
    );
    let (status, issued) = s.post(&admin, "/api/tokens", json!({"user": "zoe"})).await;
    assert_eq!(status, 201, "{issued}");
    let zoe_token = issued["token"].as_str().expect("token").to_string();
    assert_eq!(
        s.get(&zoe_token, "/api/me").await.1["roles"],
        json!(["viewer"])
    );
    refused(
        deploy(
            &s,
            &zoe_token,
            json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
        )
        .await,
        403,
        "deployer_only",
    );
    // Promoted: the same token may now deploy.
    let (status, _) = s
        .post(
            &admin,
            "/api/users",
            json!({"name": "zoe", "roles": ["deployer"]}),
        )
        .await;
    assert_eq!(status, 200);
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    deploy_ok(
        &s,
        &zoe_token,
        json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Approvals: separation of duties, quorum, the plan hash, rejection

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separation_of_duties_holds_on_the_api() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let (status, body) = s
        .post(
            &dan,
            "/api/deployments",
            json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["deployment"]["id"].as_i64().expect("id");
    assert_eq!(body["deployment"]["state"], "awaiting_approval");
    assert_eq!(body["approvals"]["required"], 2);
    assert_eq!(body["approvals"]["from"], json!(["cab"]));
    // The requester, even through a second token, and the plan's owner are refused.
    let dan2 = s.token("dan").await;
    for (token, code) in [
        (&dan, "self_approval"),
        (&dan2, "self_approval"),
        (&s.token("alice").await, "plan_owner_approval"),
        (&s.token("erin").await, "missing_role"),
        (&s.token("nina").await, "missing_role"),
    ] {
        let (status, body) = s
            .post(token, &format!("/api/deployments/{id}/approve"), json!({}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some(code)),
            "{body}"
        );
    }
    // Nor may the requester reject their own deployment.
    refused(
        s.post(
            &dan2,
            &format!("/api/deployments/{id}/reject"),
            json!({"reason": "changed my mind"}),
        )
        .await,
        403,
        "self_approval",
    );
    // None of the refused attempts counted.
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["approvals"]["approvers"], json!([]), "{d}");
    assert_eq!(d["deployment"]["state"], "awaiting_approval");

    // One person counts once, whichever token they use.
    let (bob, bob2) = (s.token("bob").await, s.token("bob").await);
    let (status, standing) = s
        .post(
            &bob,
            &format!("/api/deployments/{id}/approve"),
            json!({"reason": "reviewed the diff"}),
        )
        .await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["approvals"]["approvers"], json!(["bob"]));
    assert_eq!(standing["approvals"]["satisfied"], false);
    assert_eq!(standing["deployment"]["state"], "awaiting_approval");
    refused(approve(&s, &bob, id).await, 403, "already_decided");
    refused(approve(&s, &bob2, id).await, 403, "already_decided");
    assert_eq!(
        state_of(&s, &dan, id).await["deployment"]["state"],
        "awaiting_approval"
    );

    // A second, distinct member of the role meets the quorum: queued, then run by a worker.
    let (status, standing) = approve(&s, &s.token("carol").await, id).await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["approvals"]["approvers"], json!(["bob", "carol"]));
    assert_eq!(standing["approvals"]["satisfied"], true);
    assert!(
        ["queued", "running", "succeeded"]
            .contains(&standing["deployment"]["state"].as_str().expect("state")),
        "{standing}"
    );
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    // Too late to decide now.
    refused(
        approve(&s, &s.token("admin").await, id).await,
        409,
        "wrong_state",
    );
    // Every decision is recorded with who, when and why.
    let (_, events) = s.get(&dan, &format!("/api/deployments/{id}/events")).await;
    let approvals: Vec<&Value> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "approved")
        .collect();
    assert_eq!(approvals.len(), 2, "{events}");
    assert_eq!(approvals[0]["actor"], "bob");
    assert_eq!(approvals[0]["data"]["reason"], "reviewed the diff");
    assert!(approvals[0]["at"].is_i64());
    assert_eq!(approvals[1]["actor"], "carol");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_plan_voids_the_approvals_given_to_the_old_one() {
    let s = Server::start().await;
    let (dan, bob, carol) = (
        s.token("dan").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    let (id, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    let old_hash = created["deployment"]["plan_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let (status, standing) = approve(&s, &bob, id).await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["approvals"]["approvers"], json!(["bob"]));

    // Someone other than the requester (or an admin) may not swap the plan.
    let changed = plan(
        APPROVALS,
        "  - id: install\n    on: [web]\n    run: echo installing something else\n",
    );
    let (status, body) = s
        .post(
            &bob,
            &format!("/api/deployments/{id}/plan"),
            json!({"plan": changed}),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(
        state_of(&s, &dan, id).await["deployment"]["plan_hash"],
        old_hash.as_str()
    );
    // A broken plan is refused with its diagnostics.
    let (status, body) = s
        .post(
            &dan,
            &format!("/api/deployments/{id}/plan"),
            json!({"plan": "slipway: 1\nrelease: {}\n"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, Some("invalid_plan")), "{body}");

    // The requester changes the plan: bob's approval no longer counts.
    let (status, standing) = s
        .post(
            &dan,
            &format!("/api/deployments/{id}/plan"),
            json!({"plan": changed}),
        )
        .await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["approvals"]["voided"], 1, "{standing}");
    assert_eq!(standing["approvals"]["approvers"], json!([]));
    assert_eq!(standing["approvals"]["satisfied"], false);
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["deployment"]["state"], "awaiting_approval");
    assert_ne!(d["deployment"]["plan_hash"], old_hash.as_str());
    assert!(
        d["plan_source"]
            .as_str()
            .is_some_and(|p| p.contains("something else")),
        "the deployment shows the plan that will run"
    );
    assert_eq!(d["approvals"]["voided"], 1);
    assert_eq!(d["approvals"]["approvers"], json!([]));

    // Carol's approval alone is not a quorum (bob's old one is void) ...
    let (status, standing) = approve(&s, &carol, id).await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["approvals"]["approvers"], json!(["carol"]));
    assert_eq!(
        state_of(&s, &dan, id).await["deployment"]["state"],
        "awaiting_approval"
    );
    // ... bob must approve the new plan again, and may.
    let (status, standing) = approve(&s, &bob, id).await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["approvals"]["satisfied"], true);
    let done = s
        .wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    assert!(
        done["plan_source"]
            .as_str()
            .is_some_and(|p| p.contains("something else"))
    );
    // A deployment that has run cannot be amended.
    refused(
        s.post(
            &dan,
            &format!("/api/deployments/{id}/plan"),
            json!({"plan": plan(APPROVALS, SIMPLE_STEP)}),
        )
        .await,
        409,
        "wrong_state",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_needs_a_reason_and_ends_the_deployment() {
    let s = Server::start().await;
    let (dan, bob, carol) = (
        s.token("dan").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    let (id, _) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    let reject = |token: &str, body: Value| {
        let (s, token) = (&s, token.to_string());
        async move {
            s.post(&token, &format!("/api/deployments/{id}/reject"), body)
                .await
        }
    };
    refused(reject(&bob, json!({})).await, 400, "reason_required");
    refused(
        reject(&bob, json!({"reason": "   "})).await,
        400,
        "reason_required",
    );
    assert_eq!(
        state_of(&s, &dan, id).await["deployment"]["state"],
        "awaiting_approval"
    );
    let (status, standing) = reject(&bob, json!({"reason": "not during the sale"})).await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(standing["deployment"]["state"], "rejected");
    assert_eq!(
        standing["approvals"]["rejected"],
        json!(["bob", "not during the sale"])
    );
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["deployment"]["state"], "rejected");
    assert_eq!(d["summary"]["by"], "bob", "{d}");
    assert_eq!(d["summary"]["reason"], "not during the sale");
    assert!(d["deployment"]["finished_at"].is_i64());
    // Rejected is final: no approval, no second rejection.
    refused(approve(&s, &carol, id).await, 409, "wrong_state");
    refused(
        reject(&carol, json!({"reason": "me too"})).await,
        409,
        "wrong_state",
    );
    let (_, events) = s.get(&dan, &format!("/api/deployments/{id}/events")).await;
    let rejected = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "rejected")
        .expect("a rejected event");
    assert_eq!(rejected["actor"], "bob");
    assert_eq!(rejected["data"]["reason"], "not during the sale");
    // Nothing ever ran.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["deployment"]["state"], "rejected");
    assert!(d["deployment"]["started_at"].is_null());
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Plans, the environment lock, manual steps, cancel

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_plan_is_refused_with_every_diagnostic_and_its_position() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let broken = plan(
        "",
        "  - id: install\n    on: [web]\n    rn: echo installing\n  - id: migrate\n    needs: [nope]\n    run: echo migrating\n",
    );
    let (status, body) = deploy(
        &s,
        &dan,
        json!({"plan": broken, "plan_name": "shop.yaml", "environment": "production"}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, Some("invalid_plan")), "{body}");
    let diagnostics = body["error"]["details"]["diagnostics"]
        .as_array()
        .expect("diagnostics");
    let find = |c: &str| {
        diagnostics
            .iter()
            .find(|d| d["code"] == c)
            .unwrap_or_else(|| panic!("no `{c}` diagnostic in {diagnostics:?}"))
    };
    // Both problems at once, each with file, line and column (1-based).
    let unknown = find("unknown_key");
    assert_eq!(unknown["file"], "shop.yaml");
    assert_eq!(
        (&unknown["line"], &unknown["column"]),
        (&json!(13), &json!(5))
    );
    assert_eq!(unknown["severity"], "error");
    assert!(
        unknown["source_line"]
            .as_str()
            .is_some_and(|l| l.contains("rn: echo"))
    );
    let step = find("unknown_step");
    assert_eq!(step["line"], 15, "{step}");
    assert!(step["column"].as_u64().is_some_and(|c| c > 1), "{step}");
    // Nothing was created.
    let (_, list) = s.get(&dan, "/api/deployments").await;
    assert_eq!(list, json!([]));
    // A plan that does not have the environment asked for is refused too.
    let (status, body) = deploy(
        &s,
        &dan,
        json!({"plan": plan("", SIMPLE_STEP), "environment": "staging"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deployment_per_environment_and_cancel_releases_it() {
    let s = Server::start().await;
    let (dan, alice) = (s.token("dan").await, s.token("alice").await);
    let body = json!({"plan": plan("", MANUAL_STEPS), "environment": "production"});
    let (first, _) = deploy_ok(&s, &dan, body.clone()).await;
    // Queued or running: a second one is refused with 409.
    refused(
        deploy(&s, &alice, body.clone()).await,
        409,
        "environment_busy",
    );
    let d = wait_for_step(&s, &dan, first, "confirm-dns").await;
    assert_eq!(d["grid"]["steps"], json!(["install", "confirm-dns"]));
    assert_eq!(d["grid"]["cells"][1][0]["state"], "waiting");
    refused(
        deploy(&s, &alice, body.clone()).await,
        409,
        "environment_busy",
    );

    // Cancel: the running deployment stops (the manual step held it) and ends cancelled.
    let (status, summary) = s
        .post(&dan, &format!("/api/deployments/{first}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["cancel_requested"], true);
    let d = s
        .wait_for(&dan, first, |d| {
            d["deployment"]["state"]
                .as_str()
                .is_some_and(|st| !["running", "rolling_back"].contains(&st))
        })
        .await;
    assert_eq!(d["deployment"]["state"], "cancelled", "{d}");
    assert!(d["deployment"]["finished_at"].is_i64());
    assert_eq!(d["waiting_for"], json!([]));
    // Over: a second cancel is refused, and the environment is free again.
    refused(
        s.post(&dan, &format!("/api/deployments/{first}/cancel"), json!({}))
            .await,
        409,
        "refused",
    );
    let (second, _) = deploy_ok(
        &s,
        &alice,
        json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    s.wait_for(&alice, second, |d| d["deployment"]["state"] == "succeeded")
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_lock_is_shared_with_a_command_line_run() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    // Requested through the API to start 3 s from now.
    let soon = jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond() + 3_000)
        .expect("time");
    let (api_id, _) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan("", SIMPLE_STEP), "environment": "production", "at": soon.to_string()}),
    )
    .await;
    // Meanwhile a command line (its own engine and connection on the same record and targets)
    // starts a deployment there that a manual step holds.
    let store = std::sync::Arc::new(
        slipway_store::SqlStore::open(s.data_dir().join("slipway.db").to_str().expect("utf-8"))
            .await
            .expect("store"),
    );
    let mut config = slipway_engine::EngineConfig::new(s.data_dir());
    config.poll = Duration::from_millis(50);
    let cli = std::sync::Arc::new(slipway_engine::Engine::new(
        store,
        config,
        std::sync::Arc::new(slipway_engine::LocalHosts::new(s.data_dir())),
    ));
    let text = plan("", MANUAL_STEPS);
    let plan_file = s.path().join("plan.yaml");
    std::fs::write(&plan_file, &text).expect("plan file");
    let request = slipway_engine::DeployRequest {
        plan: slipway_core::load("plan.yaml", text.as_bytes()).expect("plan"),
        plan_file,
        environment: "production".into(),
        version: None,
        requester: "alice".into(),
        origin: "cli".into(),
    };
    let cli_d = cli.request(&request, None, None).await.expect("request");
    let run = tokio::spawn({
        let cli = cli.clone();
        async move {
            cli.run(
                cli_d.id,
                slipway_engine::Secrets::default(),
                &slipway_engine::Silent,
            )
            .await
        }
    });
    // The server shows the command line's deployment as it runs.
    wait_for_step(&s, &dan, cli_d.id, "confirm-dns").await;
    // When its time comes the API's deployment is queued, but no worker may take the
    // environment from the command line.
    s.wait_for(&dan, api_id, |d| d["deployment"]["state"] == "queued")
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let d = state_of(&s, &dan, api_id).await;
    assert_eq!(d["deployment"]["state"], "queued", "{d}");
    assert!(d["deployment"]["started_at"].is_null(), "{d}");
    let (_, envs) = s.get(&dan, "/api/environments").await;
    assert_eq!(envs[0]["locked_by"], cli_d.id, "{envs}");
    assert_eq!(envs[0]["running"]["id"], cli_d.id, "{envs}");
    refused(
        deploy(
            &s,
            &dan,
            json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
        )
        .await,
        409,
        "environment_busy",
    );
    // Confirmed through the API: the command line finishes and lets go; a worker runs the next.
    let (status, body) = s
        .post(
            &s.token("nina").await,
            &format!("/api/deployments/{}/confirm", cli_d.id),
            json!({"step": "confirm-dns"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = run.await.expect("join").expect("the command line's run");
    assert_eq!(
        done.state,
        slipway_core::lifecycle::DeploymentState::Succeeded
    );
    let d = s
        .wait_for(&dan, api_id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    assert!(
        d["deployment"]["started_at"].as_i64() >= done.finished_at,
        "one at a time: {d}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_step_waits_for_its_owner_role() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let (id, _) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan("", MANUAL_STEPS), "environment": "production"}),
    )
    .await;
    let d = wait_for_step(&s, &dan, id, "confirm-dns").await;
    assert_eq!(d["grid"]["cells"][0][0]["state"], "done", "{d}");
    let confirm = |token: String, step: &'static str| {
        let s = &s;
        async move {
            s.post(
                &token,
                &format!("/api/deployments/{id}/confirm"),
                json!({"step": step}),
            )
            .await
        }
    };
    // Not the owner role: the requester, an admin, a viewer.
    for user in ["dan", "admin", "erin"] {
        refused(
            confirm(s.token(user).await, "confirm-dns").await,
            403,
            "not_step_owner",
        );
    }
    refused(confirm(s.token("nina").await, "nope").await, 400, "invalid");
    // Still waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["deployment"]["state"], "running");
    assert_eq!(d["waiting_for"], json!(["confirm-dns"]));
    // nina is in network-team.
    let nina = s.token("nina").await;
    let (status, body) = confirm(nina.clone(), "confirm-dns").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["confirmed_by"], "nina");
    let d = s
        .wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    assert_eq!(d["grid"]["cells"][1][0]["state"], "confirmed");
    assert_eq!(d["grid"]["cells"][1][0]["detail"], "confirmed by nina");
    refused(confirm(nina, "confirm-dns").await, 409, "refused");
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Risk policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_policy_raises_the_approvals_or_blocks() {
    let s = Server::start().await;
    let (dan, bob) = (s.token("dan").await, s.token("bob").await);
    // Blocked at every level: refused before anything is recorded.
    refused(
        deploy(
            &s,
            &dan,
            json!({"plan": plan("    policy: { low: block }\n", SIMPLE_STEP), "environment": "production"}),
        )
        .await,
        403,
        "blocked_by_policy",
    );
    assert_eq!(s.get(&dan, "/api/deployments").await.1, json!([]));

    // Raised: the environment itself asks for no approval, the policy for one.
    let raised =
        "    approvals: { required: 0, from: [cab] }\n    policy: { low: { approvals: 1 } }\n";
    let (id, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(raised, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    assert_eq!(created["approvals"]["required"], 1, "{created}");
    assert_eq!(created["deployment"]["state"], "awaiting_approval");
    let d = state_of(&s, &dan, id).await;
    assert!(d["risk"]["level"].is_string(), "the risk is shown: {d}");
    assert!(d["risk"]["score"].is_u64(), "{d}");
    let (status, standing) = approve(&s, &bob, id).await;
    assert_eq!(status, 200, "{standing}");
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;

    // Without the policy the same environment needs none.
    let (id, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan("    approvals: { required: 0, from: [cab] }\n", SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    assert_eq!(created["approvals"]["required"], 0, "{created}");
    assert_ne!(created["deployment"]["state"], "awaiting_approval");
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Windows, scheduling, freezes and break-glass

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_a_deployment_is_scheduled_for_the_next_opening() {
    let s = Server::start().await;
    let (dan, bob, carol) = (
        s.token("dan").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    let (window, opening) = window_in_three_days();
    let (id, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(&window, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    assert_eq!(created["deployment"]["state"], "scheduled", "{created}");
    assert_eq!(created["deployment"]["scheduled_for"], opening);
    // The scheduler leaves it alone.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["deployment"]["state"], "scheduled");
    assert!(d["deployment"]["started_at"].is_null());
    // It is in the calendar.
    let (status, calendar) = s.get(&dan, "/api/calendar").await;
    assert_eq!(status, 200, "{calendar}");
    let opens = jiff::Timestamp::from_millisecond(opening)
        .expect("time")
        .to_string();
    assert!(
        calendar["windows"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["opens"] == opens.as_str())),
        "the calendar shows the window opening {opens}: {calendar}"
    );
    let scheduled = calendar["deployments"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == id))
        .unwrap_or_else(|| panic!("the calendar shows the scheduled deployment: {calendar}"));
    assert_eq!(scheduled["start"], opens.as_str());
    // A scheduled deployment can be cancelled before it starts.
    let (status, summary) = s
        .post(&dan, &format!("/api/deployments/{id}/cancel"), json!({}))
        .await;
    assert_eq!((status, &summary["state"]), (200, &json!("cancelled")));

    // With approvals: it waits for them, and once approved it still waits for the window.
    let (id, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(&format!("{APPROVALS}{window}"), SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    assert_eq!(created["deployment"]["state"], "awaiting_approval");
    assert_eq!(created["deployment"]["scheduled_for"], opening);
    approve(&s, &bob, id).await;
    let (status, standing) = approve(&s, &carol, id).await;
    assert_eq!(status, 200, "{standing}");
    let d = state_of(&s, &dan, id).await;
    assert_eq!(d["deployment"]["state"], "scheduled", "{d}");
    assert_eq!(d["deployment"]["scheduled_for"], opening);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_at_a_time_schedules_it_and_the_scheduler_runs_it_then() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let body =
        |at: String| json!({"plan": plan("", SIMPLE_STEP), "environment": "production", "at": at});
    // Far ahead: scheduled for exactly that time.
    let later =
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3_600).expect("time");
    let (id, created) = deploy_ok(&s, &dan, body(later.to_string())).await;
    assert_eq!(created["deployment"]["state"], "scheduled", "{created}");
    assert_eq!(
        created["deployment"]["scheduled_for"],
        later.as_millisecond()
    );
    s.post(&dan, &format!("/api/deployments/{id}/cancel"), json!({}))
        .await;
    // Not a time.
    refused(
        deploy(&s, &dan, body("tomorrow-ish".into())).await,
        400,
        "invalid",
    );

    // Two seconds ahead: the scheduler queues it when the time comes and a worker runs it.
    let soon = jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond() + 2_000)
        .expect("time");
    let (id, created) = deploy_ok(&s, &dan, body(soon.to_string())).await;
    assert_eq!(created["deployment"]["state"], "scheduled", "{created}");
    assert_eq!(
        created["deployment"]["scheduled_for"],
        soon.as_millisecond()
    );
    let d = s
        .wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    let started = d["deployment"]["started_at"].as_i64().expect("started_at");
    assert!(
        started >= soon.as_millisecond(),
        "started at {started}, before its time {}",
        soon.as_millisecond()
    );
    let (_, events) = s.get(&dan, &format!("/api/deployments/{id}/events")).await;
    let kinds: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"scheduled"), "{kinds:?}");
    assert!(kinds.contains(&"queued"), "{kinds:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_blocks_unless_an_admin_breaks_glass_with_a_reason() {
    let s = Server::start().await;
    let (dan, admin) = (s.token("dan").await, s.token("admin").await);
    let frozen = plan(&freeze_now(), SIMPLE_STEP);
    let body = json!({"plan": frozen, "environment": "production"});
    let (status, refusal) = deploy(&s, &dan, body.clone()).await;
    refused((status, refusal.clone()), 403, "frozen");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Year-end sale")),
        "the refusal says which freeze: {refusal}"
    );
    // Admins are frozen too, unless they break glass.
    refused(deploy(&s, &admin, body.clone()).await, 403, "frozen");
    // Break-glass is for admins only, and needs a written reason.
    let mut glass = body.clone();
    glass["break_glass"] = json!("payment outage fix");
    refused(deploy(&s, &dan, glass.clone()).await, 403, "admin_only");
    let mut blank = body.clone();
    blank["break_glass"] = json!("  ");
    refused(deploy(&s, &admin, blank).await, 400, "invalid");
    assert_eq!(s.get(&dan, "/api/deployments").await.1, json!([]));

    let (id, created) = deploy_ok(&s, &admin, glass).await;
    assert_eq!(created["deployment"]["break_glass"]["by"], "admin");
    let d = s
        .wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    // Recorded, and shown wherever the deployment is shown.
    assert_eq!(d["deployment"]["break_glass"]["by"], "admin", "{d}");
    assert_eq!(
        d["deployment"]["break_glass"]["reason"],
        "payment outage fix"
    );
    let (_, list) = s.get(&dan, "/api/deployments").await;
    let listed = list
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["id"] == id)
        .expect("listed");
    assert_eq!(listed["break_glass"]["by"], "admin");
    assert_eq!(listed["break_glass"]["reason"], "payment outage fix");
    let (_, envs) = s.get(&dan, "/api/environments").await;
    let production = envs
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["name"] == "production")
        .expect("production");
    assert_eq!(
        production["last"]["break_glass"]["by"], "admin",
        "{production}"
    );
    assert_eq!(production["freeze"], "Year-end sale");
    // A deployment whose time is after the freeze is not frozen: it is scheduled.
    let after = jiff::Timestamp::from_millisecond(millis_at(day(3), 12)).expect("time");
    let (later, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(&freeze_now(), SIMPLE_STEP), "environment": "production", "at": after.to_string()}),
    )
    .await;
    assert_eq!(created["deployment"]["state"], "scheduled", "{created}");
    assert_eq!(
        created["deployment"]["scheduled_for"],
        after.as_millisecond()
    );
    s.post(&dan, &format!("/api/deployments/{later}/cancel"), json!({}))
        .await;
    // Break-glass does not replace approvals: they are still needed, then it starts at once.
    let (gated, created) = deploy_ok(
        &s,
        &admin,
        json!({"plan": plan(&format!("{APPROVALS}{}", freeze_now()), SIMPLE_STEP), "environment": "production", "break_glass": "security patch"}),
    )
    .await;
    assert_eq!(
        created["deployment"]["state"], "awaiting_approval",
        "{created}"
    );
    refused(approve(&s, &admin, gated).await, 403, "self_approval");
    approve(&s, &s.token("bob").await, gated).await;
    let (status, standing) = approve(&s, &s.token("carol").await, gated).await;
    assert_eq!(status, 200, "{standing}");
    let d = s
        .wait_for(&dan, gated, |d| d["deployment"]["state"] == "succeeded")
        .await;
    assert_eq!(d["deployment"]["break_glass"]["reason"], "security patch");

    let (_, events) = s.get(&dan, &format!("/api/deployments/{id}/events")).await;
    let audit = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "break_glass")
        .expect("a break_glass event");
    assert_eq!(audit["actor"], "admin");
    assert_eq!(audit["data"]["reason"], "payment outage fix");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_releases_a_scheduled_deployment_now() {
    let s = Server::start().await;
    let (dan, admin) = (s.token("dan").await, s.token("admin").await);
    let (window, _) = window_in_three_days();
    let (id, created) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(&window, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    assert_eq!(created["deployment"]["state"], "scheduled");
    let path = format!("/api/deployments/{id}/break-glass");
    refused(
        s.post(&dan, &path, json!({"reason": "hotfix"})).await,
        403,
        "admin_only",
    );
    refused(s.post(&admin, &path, json!({})).await, 400, "invalid");
    assert_eq!(
        state_of(&s, &dan, id).await["deployment"]["state"],
        "scheduled"
    );
    let (status, summary) = s
        .post(
            &admin,
            &path,
            json!({"reason": "hotfix for the checkout outage"}),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["break_glass"]["by"], "admin");
    assert!(
        ["queued", "running", "succeeded"].contains(&summary["state"].as_str().expect("state")),
        "break-glass lets a deployment through its window: it is queued now, not left scheduled for the window: {summary}"
    );
    let d = s
        .wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    assert_eq!(
        d["deployment"]["break_glass"]["reason"],
        "hotfix for the checkout outage"
    );
    // Only before it starts.
    refused(
        s.post(&admin, &path, json!({"reason": "again"})).await,
        409,
        "wrong_state",
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Rollback, live events, the dashboard

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_the_environment_to_the_previous_release() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    // Nothing deployed yet: nothing to return to.
    refused(
        s.post(&dan, "/api/environments/production/rollback", json!({}))
            .await,
        409,
        "refused",
    );
    for version in ["1.0.0", "2.0.0"] {
        let (id, _) = deploy_ok(
            &s,
            &dan,
            json!({"plan": plan("", RELEASE_STEP), "environment": "production", "version": version}),
        )
        .await;
        s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
            .await;
    }
    let current = |inventory: &Value| -> Vec<(String, String)> {
        inventory
            .as_array()
            .expect("inventory")
            .iter()
            .map(|r| {
                (
                    r["target"].as_str().unwrap_or_default().to_string(),
                    r["current"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let (status, inventory) = s.get(&dan, "/api/inventory?environment=production").await;
    assert_eq!(status, 200, "{inventory}");
    assert_eq!(
        current(&inventory),
        [
            ("web-1".into(), "2.0.0".into()),
            ("web-2".into(), "2.0.0".into())
        ]
    );
    assert_eq!(inventory[0]["previous"], "1.0.0");

    let (status, rollback) = s
        .post(&dan, "/api/environments/production/rollback", json!({}))
        .await;
    assert_eq!(status, 202, "{rollback}");
    assert_eq!(rollback["kind"], "rollback");
    assert_eq!(rollback["version"], "1.0.0");
    let id = rollback["id"].as_i64().expect("id");
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    let (_, inventory) = s.get(&dan, "/api/inventory").await;
    assert_eq!(
        current(&inventory),
        [
            ("web-1".into(), "1.0.0".into()),
            ("web-2".into(), "1.0.0".into())
        ]
    );
    for target in ["web-1", "web-2"] {
        let version = std::fs::read_to_string(
            s.data_dir()
                .join("targets/production")
                .join(target)
                .join("shop/current/VERSION"),
        )
        .expect("the current release on the target");
        assert_eq!(version.trim(), "1.0.0");
    }
    // Already there: refused.
    refused(
        s.post(
            &dan,
            "/api/environments/production/rollback",
            json!({"to": "1.0.0"}),
        )
        .await,
        409,
        "refused",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_delivers_a_deployment_live_in_order() {
    let s = Server::start().await;
    let (dan, bob, carol) = (
        s.token("dan").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    let (id, _) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    // Without a token: refused.
    let r = s
        .http
        .get(s.url(&format!("/api/deployments/{id}/stream")))
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status().as_u16(), 401);
    let response = s
        .http
        .get(s.url(&format!("/api/deployments/{id}/stream")))
        .bearer_auth(&dan)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    // The approvals are given while the stream is open: what follows arrives live.
    let mut approved = false;
    let kinds = read_stream(response, async |kind: &str| {
        if kind == "approval_requested" && !approved {
            approved = true;
            assert_eq!(approve(&s, &bob, id).await.0, 200);
            assert_eq!(approve(&s, &carol, id).await.0, 200);
        }
    })
    .await;
    let order = [
        "deployment_created",
        "approval_requested",
        "approved",
        "queued",
        "deployment_started",
        "deployment_succeeded",
        "end",
    ];
    let at: Vec<usize> = order.iter().map(|k| position(&kinds, k)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "out of order: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "approved").count(), 2);
    assert_eq!(kinds.last().map(String::as_str), Some("end"), "{kinds:?}");
    // A finished deployment's stream replays its events and ends.
    let response = s
        .http
        .get(s.url(&format!("/api/deployments/{id}/stream")))
        .bearer_auth(&dan)
        .send()
        .await
        .expect("stream");
    let replay = read_stream(response, async |_: &str| {}).await;
    assert_eq!(replay, kinds, "a replay delivers the same events");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_runs_what_waits_and_the_next_window() {
    let s = Server::start().await;
    let (dan, admin) = (s.token("dan").await, s.token("admin").await);
    let (status, envs) = s.get(&dan, "/api/environments").await;
    assert_eq!((status, envs), (200, json!([])));
    let (window, opening) = window_in_three_days();
    // Waiting: approvals, then the window.
    let (waiting, _) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan(&format!("{APPROVALS}{window}"), SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    // Running now (an admin broke glass to deploy outside the window); a manual step holds it.
    let (running, _) = deploy_ok(
        &s,
        &admin,
        json!({"plan": plan(&window, MANUAL_STEPS), "environment": "production", "break_glass": "urgent DNS change"}),
    )
    .await;
    wait_for_step(&s, &dan, running, "confirm-dns").await;
    let (status, envs) = s.get(&dan, "/api/environments").await;
    assert_eq!(status, 200, "{envs}");
    let envs = envs.as_array().expect("environments");
    assert_eq!(envs.len(), 1, "{envs:?}");
    let production = &envs[0];
    assert_eq!(production["name"], "production");
    assert_eq!(production["running"]["id"], running, "{production}");
    assert_eq!(production["running"]["state"], "running");
    assert_eq!(production["running"]["break_glass"]["by"], "admin");
    let waiting_ids: Vec<i64> = production["waiting"]
        .as_array()
        .expect("waiting")
        .iter()
        .filter_map(|d| d["id"].as_i64())
        .collect();
    assert_eq!(waiting_ids, [waiting], "{production}");
    assert_eq!(production["waiting"][0]["state"], "awaiting_approval");
    assert_eq!(production["next_window"], opening, "{production}");
    assert_eq!(production["in_window"], false);
    assert_eq!(production["locked_by"], running);
    assert!(production["freeze"].is_null());
    // When it is over: no longer running, and it is the last one.
    let nina = s.token("nina").await;
    s.post(
        &nina,
        &format!("/api/deployments/{running}/confirm"),
        json!({"step": "confirm-dns"}),
    )
    .await;
    s.wait_for(&dan, running, |d| d["deployment"]["state"] == "succeeded")
        .await;
    let (_, envs) = s.get(&dan, "/api/environments").await;
    let production = &envs[0];
    assert!(production["running"].is_null(), "{production}");
    assert_eq!(production["last"]["id"], running);
    assert_eq!(production["locked_by"], Value::Null);
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Health, metrics and the OpenAPI document

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_are_served_without_a_token() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let (id, _) = deploy_ok(
        &s,
        &dan,
        json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;
    let r = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("text").trim(), "ok");
    let r = s.http.get(s.url("/metrics")).send().await.expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = r.text().await.expect("text");
    assert!(text.contains("slipway_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/deployments/{id}\""), "{text}");
    assert!(text.contains("slipway_deployments{"), "{text}");
    assert!(
        text.contains("slipway_deployments{state=\"succeeded\"} 1"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_its_errors() {
    let s = Server::start().await;
    let r = s
        .http
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    assert!(
        doc["components"]["securitySchemes"]["token"]["scheme"]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case("bearer")),
        "bearer tokens are documented"
    );
    let paths = doc["paths"].as_object().expect("paths");
    // Every operation the document lists is one the router serves ...
    let mut documented = Vec::new();
    for (path, item) in paths {
        for (method, _) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    let served: Vec<(String, String)> = API_ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let mut a = documented.clone();
    let mut b = served.clone();
    a.sort();
    b.sort();
    let missing: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
    let extra: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not documented: {missing:?}; documented but not served: {extra:?}"
    );
    // ... and each documents its error responses, with the error body.
    let mut problems = Vec::new();
    for (method, path, errors) in API_ROUTES {
        let op = &doc["paths"][*path][*method];
        if op["summary"].as_str().is_none_or(str::is_empty)
            && op["description"].as_str().is_none_or(str::is_empty)
        {
            problems.push(format!("{method} {path}: no description"));
        }
        let responses = op["responses"].as_object().expect("responses");
        if !responses.keys().any(|k| k.starts_with('2')) {
            problems.push(format!("{method} {path}: no success response"));
        }
        for status in *errors {
            let response = &responses.get(&status.to_string());
            match response {
                None => problems.push(format!("{method} {path}: {status} is not documented")),
                Some(r) => {
                    let schema = r["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .unwrap_or_default();
                    if !schema.ends_with("/ErrorBody") {
                        problems.push(format!(
                            "{method} {path}: {status} does not name the error body"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The error body names its stable code.
    assert!(
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"].is_object()
            || doc["components"]["schemas"]["ErrorBody"]
                .to_string()
                .contains("code"),
        "{}",
        doc["components"]["schemas"]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_error_shape_too() {
    let s = Server::start().await;
    let dan = s.token("dan").await;
    // A body that is not the request's shape, or not JSON at all.
    for body in [
        json!({"plan": "slipway: 1"}),
        json!({"plan": 42, "environment": "production"}),
    ] {
        let (status, body) = deploy(&s, &dan, body).await;
        assert_eq!((status, code(&body)), (400, Some("invalid")), "{body}");
    }
    let r = s
        .http
        .post(s.url("/api/deployments"))
        .bearer_auth(&dan)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("a JSON error body");
    assert_eq!(code(&body), Some("invalid"), "{body}");
    // A path parameter of the wrong kind.
    let (status, body) = s.get(&dan, "/api/deployments/abc").await;
    assert_eq!((status, code(&body)), (400, Some("invalid")), "{body}");
    let (status, body) = s.get(&dan, "/api/deployments?state=sideways").await;
    assert_eq!((status, code(&body)), (400, Some("invalid")), "{body}");
    s.stop().await;
}
