//! Static files: the WASM, JS and CSS under `/pkg/` and the public assets at
//! the site root, as cargo-leptos lays them out in the site folder. Anything
//! else that no route matched renders the application's "page not found".

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// `/pkg/` files keep their names across builds, so browsers revalidate them
/// (`Last-Modified`) instead of caching them blindly. They are compressed on
/// the fly (brotli or gzip, as the browser accepts): the WASM shrinks to
/// about 40 %.
const PKG_CACHE: &str = "no-cache";
/// Public assets (icons, images) change rarely.
const PUBLIC_CACHE: &str = "public, max-age=3600";

/// Adds the `/pkg` service and the static/404 fallback to `router`.
pub fn add_to(router: Router<AppState>, site_dir: &Path, state: AppState) -> Router<AppState> {
    let pkg = ServeDir::new(site_dir.join("pkg"));
    let public = ServeDir::new(site_dir).fallback(not_found.with_state(state));
    router
        .nest_service(
            "/pkg",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(PKG_CACHE),
                ))
                .layer(CompressionLayer::new())
                .service(pkg),
        )
        .fallback_service(
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(PUBLIC_CACHE),
                ))
                .service(public),
        )
}

/// Renders the application for a path no route or file matched; the page's
/// `NotFound` component sets the 404 status.
async fn not_found(State(state): State<AppState>, request: Request<Body>) -> Response {
    let options = state.leptos.clone();
    let handler = leptos_axum::render_app_to_stream_with_context(
        move || crate::provide_server_context(&state),
        move || bootler_app::shell(options.clone()),
    );
    let mut response = handler(request).await.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
