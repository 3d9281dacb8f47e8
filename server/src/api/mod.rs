//! The REST API under `/api/v1`. Handlers stay thin: they parse, call one
//! domain function and map its error to [`ApiError`].

use axum::Json;
use axum::Router;
use axum::extract::OriginalUri;
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

mod accounts;
pub(crate) mod hosts;
pub(crate) mod instances;
pub mod jobs;
mod profile;
mod templates;
mod users;
pub mod vpn;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/register", post(accounts::register))
        .route("/confirm", post(accounts::confirm))
        .route("/me", get(accounts::me).patch(profile::update_me))
        .route("/me/keys", get(profile::list_keys).post(profile::add_key))
        .route("/me/keys/{id}", delete(profile::delete_key))
        .route("/instances", get(instances::list).post(instances::create))
        .route("/instances/choices", get(instances::choices))
        .route("/instances/capacity", get(instances::capacity))
        .route(
            "/instances/{id}",
            get(instances::get).delete(instances::destroy),
        )
        .route("/instances/{id}/start", post(instances::start))
        .route("/instances/{id}/stop", post(instances::stop))
        .route("/hosts", get(hosts::list))
        .route("/hosts/{id}", get(hosts::get).put(hosts::update))
        .route("/hosts/{id}/mark", post(hosts::mark))
        .route("/hosts/{id}/unmark", post(hosts::unmark))
        .route("/hosts/{id}/power", post(hosts::power))
        .route("/hosts/{id}/power/test", post(hosts::test_power))
        .route("/hosts/{id}/reinstall", post(hosts::reinstall))
        .route("/hosts/power", post(hosts::bulk_power))
        .route("/hosts/allocate", post(hosts::allocate))
        .route("/hosts/{id}/allocate", post(hosts::give))
        .route("/hosts/{id}/release", post(hosts::release))
        .route("/hosts/{id}/extend", post(hosts::extend))
        .route("/pools", get(hosts::pools).post(hosts::create_pool))
        .route("/pools/{name}", axum::routing::put(hosts::update_pool))
        .route("/availability", get(hosts::availability))
        .route("/audit", get(hosts::audit))
        .route(
            "/quotas/{username}",
            get(hosts::quota).put(hosts::set_quota),
        )
        .route("/templates", get(templates::list).post(templates::create))
        .route(
            "/templates/{id}",
            get(templates::get)
                .put(templates::update)
                .delete(templates::delete),
        )
        .route("/templates/{id}/preview", post(templates::preview))
        .route("/jobs", get(jobs::list).post(jobs::create))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/users", get(users::list))
        .route(
            "/users/{username}",
            get(users::get)
                .patch(users::update)
                .delete(users::delete_pending),
        )
        .route("/users/{username}/approve", post(users::approve))
        .route("/groups", get(users::groups))
        .route(
            "/groups/{name}",
            axum::routing::put(users::set_group).delete(users::delete_group),
        )
        .route("/vpn", get(vpn::overview))
        .route("/vpn/profile", get(vpn::profile))
        .route("/vpn/sessions", get(vpn::sessions))
        .route("/vpn/connected", get(vpn::connected))
        .route("/vpn/connected/{username}", delete(vpn::disconnect))
        .route("/me/password", post(accounts::change_password))
        .route(
            "/tokens",
            post(accounts::create_token).get(accounts::list_tokens),
        )
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .fallback(not_found)
}

/// `GET /api/v1`: what this API is.
async fn index() -> Json<Value> {
    Json(json!({
        "name": "bootler",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!("There is no API endpoint at {}.", uri.path()))
}
