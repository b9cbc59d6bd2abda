//! Live updates over Server-Sent Events. Streams follow the record (which every process writes),
//! so a deployment run by a command line shows up live too. Streams end with the server.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use slipway_store::{EventFilter, Store};

use crate::auth::{Caller, Viewer};
use crate::error::{ErrorBody, Path};
use crate::state::AppState;

const POLL: Duration = Duration::from_millis(250);

struct Cursor {
    state: AppState,
    id: i64,
    after: i64,
    finished: bool,
}

/// Follows one deployment's events; `render` turns a batch of new events into SSE events.
fn follow<F>(state: AppState, id: i64, render: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: Fn(
            &AppState,
            i64,
            &[slipway_store::Event],
        ) -> futures::future::BoxFuture<'static, Vec<Event>>
        + Send
        + Sync
        + 'static,
{
    let render = std::sync::Arc::new(render);
    futures::stream::unfold(
        Cursor {
            state,
            id,
            after: 0,
            finished: false,
        },
        move |mut c| {
            let render = render.clone();
            async move {
                if c.finished {
                    return None;
                }
                loop {
                    let events = c
                        .state
                        .store
                        .events(EventFilter {
                            deployment_id: Some(c.id),
                            after_seq: Some(c.after),
                            limit: Some(200),
                        })
                        .await
                        .unwrap_or_default();
                    if let Some(last) = events.last() {
                        c.after = last.seq;
                        let out = render(&c.state, c.id, &events).await;
                        let ended = c
                            .state
                            .store
                            .deployment(c.id)
                            .await
                            .ok()
                            .flatten()
                            .is_none_or(|d| d.state.is_final());
                        let mut out: Vec<Result<Event, Infallible>> =
                            out.into_iter().map(Ok).collect();
                        // The last events of a finished deployment: say so, as below.
                        if ended && events.len() < 200 {
                            c.finished = true;
                            out.push(Ok(Event::default().event("end").data("{}")));
                        }
                        return Some((futures::stream::iter(out), c));
                    }
                    if c.state
                        .store
                        .deployment(c.id)
                        .await
                        .ok()
                        .flatten()
                        .is_none_or(|d| d.state.is_final())
                    {
                        c.finished = true;
                        let end: Vec<Result<Event, Infallible>> =
                            vec![Ok(Event::default().event("end").data("{}"))];
                        return Some((futures::stream::iter(end), c));
                    }
                    tokio::select! {
                        () = c.state.shutdown.cancelled() => return None,
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        },
    )
    .flatten()
}

/// `GET /api/deployments/{id}/stream`: each audit event as it is written (event name = its kind).
#[utoipa::path(get, path = "/api/deployments/{id}/stream", params(("id" = i64, Path)),
    description = "Server-Sent Events: each of the deployment's audit events as it is written, named by its kind, with the event as JSON data; an `end` event once the deployment has ended.",
    responses((status = 200, description = "an event stream", content_type = "text/event-stream", body = String), (status = 401, body = ErrorBody)))]
pub async fn api_stream(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = follow(state, id, |_, _, events| {
        let out: Vec<Event> = events
            .iter()
            .map(|e| {
                Event::default()
                    .event(e.kind.clone())
                    .id(e.seq.to_string())
                    .data(serde_json::to_string(e).unwrap_or_default())
            })
            .collect();
        Box::pin(async move { out })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /deployments/{id}/live`: the deployment page's grid and status, re-rendered on change.
pub async fn ui_stream(
    _: Viewer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = follow(state, id, |state, id, _| {
        let state = state.clone();
        Box::pin(async move {
            match crate::ui::fragments(&state, id).await {
                Ok((grid, status)) => vec![
                    Event::default().event("grid").data(grid),
                    Event::default().event("status").data(status),
                ],
                Err(_) => Vec::new(),
            }
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
