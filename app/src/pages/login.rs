//! `/login`: the sign-in form. It posts to `POST /login`, which sets the
//! session cookie and redirects; errors come back in the query string.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::alert::{Alert, Notice};
use crate::components::field::Field;
use crate::hooks::query_param;
use crate::server_fns::current_user::use_current_user;

/// The sign-in form, used on `/login` and on the start page.
#[component]
pub fn SignInForm(#[prop(into, optional)] next: Signal<String>) -> impl IntoView {
    view! {
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <form method="post" action="/login" class="form">
            <input type="hidden" name="next" value=move || next.get() />
            <Field
                name="login"
                label="Username or e-mail address"
                value=query_param("login")
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
            <a href="/forgot">"Forgot your password?"</a>
            " · No account yet? " <a href="/register">"Create one"</a>
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
            <Suspense fallback=|| ()>
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
                <SignInForm next=query_param("next") />
            </Show>
            </Suspense>
        </section>
    }
}
