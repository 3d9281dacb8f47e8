//! `/register`, `/register/sent`, `/confirm/:token` and `/confirmed`.
//!
//! The forms are plain HTML posts to the server (`POST /register`,
//! `POST /confirm`), which answers with a redirect: they work the same with
//! and without JavaScript. Errors and the values typed (never the password)
//! come back in the query string.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::alert::Alert;
use crate::components::field::Field;
use crate::hooks::query_param;
use crate::server_fns::registration_info::registration_info;

#[component]
pub fn RegisterPage() -> impl IntoView {
    let info = OnceResource::new(registration_info());
    let domains_hint = move || {
        info.get()
            .and_then(Result::ok)
            .map(|info| {
                if info.allowed_domains.is_empty() {
                    "Registration is closed on this server.".to_string()
                } else {
                    format!(
                        "Your institutional address: {}.",
                        info.allowed_domains
                            .iter()
                            .map(|d| format!("…@{d}"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                }
            })
            .unwrap_or_default()
    };
    let password_hint = move || {
        info.get()
            .and_then(Result::ok)
            .map(|info| {
                format!(
                    "At least {} characters. A few unrelated words make a strong, memorable password.",
                    info.password_min_length
                )
            })
            .unwrap_or_default()
    };
    view! {
        <Title text="Create an account" />
        <section class="card form-card">
            <h1>"Create your Bootler account"</h1>
            <p class="lead-small">
                "One account for this site, the API and the lab's VPN. We send a link to your "
                "institutional e-mail address to confirm it is yours."
            </p>
            <Alert message=query_param("err") />
            <Suspense fallback=|| ()>
                <form method="post" action="/register" class="form" novalidate>
                    <Field
                        name="username"
                        label="Username"
                        value=query_param("username")
                        error=query_param("err_username")
                        hint="3–32 characters: lower-case letters, digits, '-', '_' or '.', starting with a letter. It is also your login on the lab's machines."
                        autocomplete="username"
                        required=true
                    />
                    <Field
                        name="display_name"
                        label="Your name"
                        value=query_param("display_name")
                        error=query_param("err_display_name")
                        autocomplete="name"
                        required=true
                    />
                    <Field
                        name="email"
                        label="E-mail address"
                        kind="email"
                        value=query_param("email")
                        error=query_param("err_email")
                        hint=Signal::derive(domains_hint)
                        autocomplete="email"
                        required=true
                    />
                    <Field
                        name="password"
                        label="Password"
                        kind="password"
                        error=query_param("err_password")
                        hint=Signal::derive(password_hint)
                        autocomplete="new-password"
                        required=true
                    />
                    <Field
                        name="password_confirm"
                        label="Password again"
                        kind="password"
                        error=query_param("err_password_confirm")
                        autocomplete="new-password"
                        required=true
                    />
                    <button type="submit" class="button">"Create account"</button>
                </form>
            </Suspense>
        </section>
    }
}

#[component]
pub fn RegisterSentPage() -> impl IntoView {
    let email = query_param("email");
    view! {
        <Title text="Check your mail" />
        <section class="card form-card">
            <h1>"Check your mail"</h1>
            <p>
                "We sent a confirmation link to " <strong>{move || email.get()}</strong>
                ". Open it to activate your account; it is valid for a day."
            </p>
            <Show when=move || !query_param("resent").get().is_empty()>
                <p class="notice" role="status">
                    "If this address has an account waiting for confirmation, a new link is on its way."
                </p>
            </Show>
            <Alert message=query_param("err") />
            <p class="hint">
                "Nothing arrived after a few minutes? Look in the spam folder, or send the link again."
            </p>
            <form method="post" action="/register/resend" class="form">
                <input type="hidden" name="email" value=move || email.get() />
                <button type="submit" class="button button-quiet">"Send the link again"</button>
            </form>
        </section>
    }
}

#[component]
pub fn ConfirmPage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let err = query_param("err");
    view! {
        <Title text="Confirm your account" />
        <section class="card form-card">
            <h1>"Confirm your account"</h1>
            <Show
                when=move || err.get().is_empty()
                fallback=move || {
                    view! {
                        <Alert message=err />
                        <p>
                            <a href="/" class="button button-quiet">"Go to the start page"</a>
                        </p>
                    }
                }
            >
                <p>"One click and your Bootler account is active."</p>
                <form method="post" action="/confirm" class="form">
                    <input type="hidden" name="token" value=token />
                    <button type="submit" class="button">"Activate my account"</button>
                </form>
            </Show>
        </section>
    }
}

#[component]
pub fn ConfirmedPage() -> impl IntoView {
    let username = query_param("username");
    view! {
        <Title text="Account active" />
        <section class="card form-card">
            <h1>"Your account is active"</h1>
            <p>
                "Welcome, " <strong>{move || username.get()}</strong>
                ". Your username and password now open Bootler and the lab's VPN."
            </p>
            <p>
                <a href="/#sign-in" class="button">"Go to sign-in"</a>
            </p>
        </section>
    }
}
