//! `/ws`: live events for the signed-in person, on every tab and device.
//!
//! Authenticated like the API (session cookie, or a bearer token for
//! scripts). The server sends JSON text messages:
//!
//! - `{"type":"hello","last_event_id":N}` first;
//! - `{"type":"event","event":{"id","kind","data","created_at"}}` for each
//!   event, oldest first.
//!
//! `?after=<id>` first replays the person's kept events after that id (a
//! browser that reconnects passes the last id it saw). The server pings
//! every 20 s, closes with 4001 when the session ends or the account is
//! disabled, and with 1001 when it shuts down.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bootler_domain::accounts::{Status, User};
use bootler_domain::jobs::Event;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(20);
/// The most events replayed on connect.
const REPLAY_MAX: i64 = 500;

#[derive(Deserialize)]
pub struct Params {
    after: Option<i64>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Caller(user): Caller,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|_| {
        ApiError::BadRequest("`after` is the id of the last event you saw (a number).".into())
    })?;
    let session = crate::session::token(&headers);
    Ok(upgrade.on_upgrade(move |socket| async move {
        if let Err(err) = serve(socket, state, user, session, params.after).await {
            tracing::debug!(error = %err, "websocket ended");
        }
    }))
}

fn event_message(event: &Event) -> Message {
    Message::Text(
        json!({
            "type": "event",
            "event": {
                "id": event.id,
                "kind": event.kind,
                "data": event.data,
                "created_at": event.created_at,
            }
        })
        .to_string()
        .into(),
    )
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })))
        .await;
}

/// Whether the connection may go on: the session (or, for a token, the
/// account) is still valid.
async fn still_allowed(state: &AppState, user: &User, session: Option<&str>) -> bool {
    let now = chrono::Utc::now();
    match session {
        Some(token) => {
            matches!(state.accounts.session(token, now).await, Ok(Some(s)) if s.user.id == user.id)
        }
        None => {
            matches!(state.accounts.get(user.id).await, Ok(Some(u)) if u.status == Status::Active)
        }
    }
}

async fn serve(
    mut socket: WebSocket,
    state: AppState,
    user: User,
    session: Option<String>,
    after: Option<i64>,
) -> Result<(), axum::Error> {
    let events = state.jobs.events().clone();
    // Subscribe before reading the backlog, so nothing falls in between.
    let mut live = events.subscribe();
    let mut stopping = state.stopping.clone();
    let last = events.last_id(user.id).await.unwrap_or(0);
    socket
        .send(Message::Text(
            json!({"type": "hello", "last_event_id": last})
                .to_string()
                .into(),
        ))
        .await?;
    let mut replayed = HashSet::new();
    if let Some(after) = after {
        for event in events
            .since(user.id, after, REPLAY_MAX)
            .await
            .unwrap_or_default()
        {
            replayed.insert(event.id);
            socket.send(event_message(&event)).await?;
        }
    }
    let mut newest = last;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) if event.user_id == user.id => {
                    if replayed.remove(&event.id) {
                        continue;
                    }
                    newest = newest.max(event.id);
                    socket.send(event_message(&event)).await?;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // Too slow to keep up: catch up from the table.
                    for event in events.since(user.id, newest, REPLAY_MAX).await.unwrap_or_default() {
                        newest = newest.max(event.id);
                        socket.send(event_message(&event)).await?;
                    }
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                // Pongs and anything the browser says: nothing to do.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if !still_allowed(&state, &user, session.as_deref()).await {
                    close(&mut socket, 4001, "signed out").await;
                    return Ok(());
                }
                socket.send(Message::Ping(Default::default())).await?;
            }
            _ = stopping.changed() => {
                close(&mut socket, 1001, "server shutting down").await;
                return Ok(());
            }
        }
    }
}
