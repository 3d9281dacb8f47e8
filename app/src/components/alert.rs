use leptos::prelude::*;

/// An error message announced to screen readers; nothing when empty.
#[component]
pub fn Alert(#[prop(into)] message: Signal<String>) -> impl IntoView {
    view! {
        <Show when=move || !message.get().is_empty()>
            <p class="alert alert-error" role="alert">{move || message.get()}</p>
        </Show>
    }
}

/// A confirmation that something worked; nothing when empty.
#[component]
pub fn Notice(#[prop(into)] message: Signal<String>) -> impl IntoView {
    view! {
        <Show when=move || !message.get().is_empty()>
            <p class="notice" role="status">{move || message.get()}</p>
        </Show>
    }
}

/// The messages of the last form post, if they are for `section` (the
/// form handlers say which with `in=<section>`; `""`: for none in
/// particular).
#[component]
pub fn SectionMessages(section: &'static str) -> impl IntoView {
    let target = crate::hooks::query_param("in");
    let mine = move |message: Signal<String>| {
        Signal::derive(move || {
            if target.get() == section {
                message.get()
            } else {
                String::new()
            }
        })
    };
    view! {
        <Notice message=mine(crate::hooks::query_param("notice")) />
        <Alert message=mine(crate::hooks::query_param("err")) />
    }
}

/// The hidden CSRF field of a signed-in form.
#[component]
pub fn Csrf(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token /> }
}

/// The card of a page that needs someone signed in: "Sign in to <what>."
pub fn signed_out(title: &'static str, what: &'static str, next: String) -> impl IntoView {
    view! {
        <section class="card form-card">
            <h1>{title}</h1>
            <p>
                <a href=format!("/login?next={}", crate::hooks::encode(&next))>"Sign in"</a>
                " to " {what} "."
            </p>
        </section>
    }
}

/// The card of a page whose data could not be loaded.
pub fn load_error(title: &'static str) -> impl IntoView {
    view! {
        <section class="card form-card">
            <h1>{title}</h1>
            <p class="alert alert-error" role="alert">
                "This page could not be loaded right now. Reload it in a moment."
            </p>
        </section>
    }
}
