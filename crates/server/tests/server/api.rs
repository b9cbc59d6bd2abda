//! The HTTP API: every coordination rule, through the wire.

use serde_json::json;

use crate::harness::{APPROVALS, SIMPLE_STEP, Server, plan};

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
    s.stop().await;
}

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
    // The requester, even through a second token, and the plan's owner are refused.
    let dan2 = s.token("dan").await;
    for (token, code) in [
        (&dan, "self_approval"),
        (&dan2, "self_approval"),
        (&s.token("alice").await, "plan_owner_approval"),
        (&s.token("erin").await, "missing_role"),
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
    s.stop().await;
}
