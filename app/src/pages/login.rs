//! `/login`: the sign-in form. It posts to `POST /login`, which sets the
//! session cookie and redirects; errors come back in the query string.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::field::Field;
use crate::server_fns::current_user::use_current_user;

fn query(key: &'static str) -> Signal<String> {
    let map = use_query_map();
    Signal::derive(move || map.read().get(key).unwrap_or_default())
}

/// The sign-in form, used on `/login` and on the start page.
#[component]
pub fn SignInForm(#[prop(into, optional)] next: Signal<String>) -> impl IntoView {
    let err = query("err");
    view! {
        <Show when=move || !err.get().is_empty()>
            <p class="alert alert-error" role="alert">{move || err.get()}</p>
        </Show>
        <form method="post" action="/login" class="form">
            <input type="hidden" name="next" value=move || next.get() />
            <Field
                name="login"
                label="Username or e-mail address"
                value=query("login")
                autocomplete="username"
                required=true
            />
            <Field
                name="password"
                label="Password"
                kind="password"
                autocomplete="current-password"
                required=true
            />
            <button type="submit" class="button">"Sign in"</button>
        </form>
        <p class="hint">
            "No account yet? " <a href="/register">"Create one"</a>
            " with your institutional e-mail address."
        </p>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let user = use_current_user();
    view! {
        <Title text="Sign in" />
        <section class="card form-card">
            <h1>"Sign in"</h1>
            <Show
                when=move || user.get().is_none()
                fallback=move || {
                    view! {
                        <p>
                            "You are signed in as "
                            <strong>{move || user.get().map(|u| u.username).unwrap_or_default()}</strong>
                            "."
                        </p>
                    }
                }
            >
                <SignInForm next=query("next") />
            </Show>
        </section>
    }
}
