#![recursion_limit = "256"]

//! Bootler's user interface: pages, components and the types shared between
//! the server and the browser. Rendered on the server (`ssr`) and hydrated in
//! the browser (`hydrate`).

// With both features the server would run browser-only effects and panic.
// `cargo build --workspace` unifies the features of every member; build the
// server with plain `cargo build` (the default members) and the frontend with
// cargo-leptos.
#[cfg(all(feature = "ssr", feature = "hydrate"))]
compile_error!(
    "bootler-app's `ssr` and `hydrate` features exclude each other: do not use `--workspace`; run `cargo build`/`cargo test` for the server and `cargo leptos build` for the site"
);

use leptos::prelude::*;
use leptos_meta::{Link, Meta, MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, SsrMode, StaticSegment,
    components::{Route, Router, Routes},
};

pub mod components;
pub mod hooks;
pub mod live;
pub mod pages;
pub mod server_fns;

use components::layout::Layout;
use pages::account::AccountPage;
use pages::admin_users::AdminUsersPage;
use pages::availability::AvailabilityPage;
use pages::history::HistoryPage;
use pages::home::HomePage;
use pages::hosts::{HostPage, HostsPage, PoolPage};
use pages::jobs::JobsPage;
use pages::login::LoginPage;
use pages::not_found::NotFound;
use pages::password::{ForgotPage, ResetPage};
use pages::power::PowerPage;
use pages::register::{ConfirmPage, ConfirmedPage, RegisterPage, RegisterSentPage};
use pages::templates::{TemplatePage, TemplatesPage};
use pages::vms::VmsPage;
use pages::vpn::VpnPage;
use server_fns::current_user::{CurrentUserResource, current_user};

/// The HTML document around the application, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    mark_hydrated();
    provide_context(CurrentUserResource(Resource::new(
        || (),
        |_| current_user(),
    )));
    provide_context(components::toasts::Toasts::new());
    provide_context(live::Live::new());

    view! {
        <Stylesheet id="leptos" href="/pkg/bootler.css" />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta
            name="description"
            content="Bootler: self-service bare-metal nodes, virtual machines and VPN access for research labs."
        />
        <Title formatter=|page: String| {
            if page.is_empty() { "Bootler".to_string() } else { format!("{page} · Bootler") }
        } />
        <Router>
            <Layout>
                // Every page renders completely on the server (SsrMode::Async):
                // it waits for its data, so it works without JavaScript.
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async />
                    <Route path=StaticSegment("login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("register") view=RegisterPage ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("register"), StaticSegment("sent"))
                        view=RegisterSentPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("confirm"), ParamSegment("token"))
                        view=ConfirmPage
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("confirmed") view=ConfirmedPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("forgot") view=ForgotPage ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("reset"), ParamSegment("token"))
                        view=ResetPage
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("jobs") view=JobsPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("history") view=HistoryPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("hosts") view=HostsPage ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("hosts"), ParamSegment("id"))
                        view=HostPage
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("pools") view=AvailabilityPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("power") view=PowerPage ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("pools"), ParamSegment("name"))
                        view=PoolPage
                        ssr=SsrMode::Async
                    />
                    <Route path=StaticSegment("templates") view=TemplatesPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("vms") view=VmsPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("vpn") view=VpnPage ssr=SsrMode::Async />
                    <Route
                        path=(StaticSegment("templates"), ParamSegment("id"))
                        view=TemplatePage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=(StaticSegment("admin"), StaticSegment("users"))
                        view=AdminUsersPage
                        ssr=SsrMode::Async
                    />
                </Routes>
            </Layout>
        </Router>
    }
}

/// Sets `data-hydrated` on `<body>` once the WASM has taken over the page, so
/// tests (and curious people) can tell a hydrated page from plain HTML.
fn mark_hydrated() {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}
