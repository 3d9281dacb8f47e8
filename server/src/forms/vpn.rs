//! The VPN page's forms (`/vpn`): disconnecting someone (administrators).
//! Turning access on and off goes through `/admin/users/{username}`.

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use bootler_domain::accounts::Role;
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/vpn/disconnect/{username}", post(disconnect))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends every session of `username` now.
pub async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/vpn",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/vpn").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    if session.user.role != Role::Admin {
        return to("/vpn", &[("err", "Only administrators disconnect people.")]);
    }
    match state.vpn.disconnect(&username).await {
        Ok(0) => to(
            "/vpn",
            &[("notice", format!("“{username}” was not connected."))],
        ),
        Ok(n) => to(
            "/vpn",
            &[(
                "notice",
                format!(
                    "“{username}” is disconnected ({n} session{}). They can connect again unless their access is turned off.",
                    if n == 1 { "" } else { "s" }
                ),
            )],
        ),
        Err(err) => to("/vpn", &[("err", general_message(err))]),
    }
}
