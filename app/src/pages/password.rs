//! `/forgot` and `/reset/:token`. Plain form posts with redirects, like
//! every form here.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::alert::Alert;
use crate::components::field::Field;
use crate::hooks::query_param;

/// The new password, twice, with the errors `POST /reset` and
/// `POST /account/password` send back.
#[component]
pub fn NewPasswordFields() -> impl IntoView {
    view! {
        <Field
            name="new_password"
            label="New password"
            kind="password"
            error=query_param("err_new_password")
            autocomplete="new-password"
            required=true
        />
        <Field
            name="new_password_confirm"
            label="New password again"
            kind="password"
            error=query_param("err_new_password_confirm")
            autocomplete="new-password"
            required=true
        />
    }
}

#[component]
pub fn ForgotPage() -> impl IntoView {
    let sent = query_param("sent");
    view! {
        <Title text="Forgot your password?" />
        <section class="card form-card">
            <h1>"Forgot your password?"</h1>
            <Alert message=query_param("err") />
            <Show
                when=move || sent.get().is_empty()
                fallback=|| {
                    view! {
                        <p class="notice" role="status">
                            "If an account matches, a link to choose a new password is on its way. "
                            "It is valid for an hour."
                        </p>
                    }
                }
            >
                <p>"Enter your username or e-mail address; we mail you a link to choose a new password."</p>
                <form method="post" action="/forgot" class="form">
                    <Field
                        name="login"
                        label="Username or e-mail address"
                        value=query_param("login")
                        autocomplete="username"
                        required=true
                    />
                    <button type="submit" class="button">"Send the link"</button>
                </form>
            </Show>
        </section>
    }
}

#[component]
pub fn ResetPage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    view! {
        <Title text="Choose a new password" />
        <section class="card form-card">
            <h1>"Choose a new password"</h1>
            <Alert message=query_param("err") />
            <form method="post" action="/reset" class="form">
                <input type="hidden" name="token" value=token />
                <NewPasswordFields />
                <button type="submit" class="button">"Set the password"</button>
            </form>
        </section>
    }
}
