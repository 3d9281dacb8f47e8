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
