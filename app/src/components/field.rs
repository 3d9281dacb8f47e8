use leptos::either::Either;
use leptos::prelude::*;

/// A labelled input with an optional hint and error, wired for screen
/// readers (`aria-describedby`, `aria-invalid`).
#[component]
pub fn Field(
    name: &'static str,
    label: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(into, optional)] value: Signal<String>,
    #[prop(into, optional)] error: Signal<String>,
    #[prop(into, optional)] hint: Signal<String>,
    #[prop(optional)] autocomplete: &'static str,
    #[prop(optional)] required: bool,
    /// A `<textarea>` of this many rows instead of an `<input>`.
    #[prop(optional)]
    rows: u32,
    /// The element id when two forms of a page share a field name.
    #[prop(optional)]
    id: &'static str,
) -> impl IntoView {
    let id = if id.is_empty() {
        format!("field-{name}")
    } else {
        id.to_string()
    };
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described_by = {
        let (hint_id, error_id) = (hint_id.clone(), error_id.clone());
        move || {
            let mut ids = Vec::new();
            if !hint.get().is_empty() {
                ids.push(hint_id.clone());
            }
            if !error.get().is_empty() {
                ids.push(error_id.clone());
            }
            ids.join(" ")
        }
    };
    view! {
        <div class="field" class:has-error=move || !error.get().is_empty()>
            <label for=id.clone()>{label}</label>
            {if rows > 0 {
                Either::Left(
                    view! {
                        <textarea
                            id=id
                            name=name
                            rows=rows
                            autocomplete=autocomplete
                            required=required
                            spellcheck="false"
                            aria-invalid=move || (!error.get().is_empty()).to_string()
                            aria-describedby=described_by
                        >
                            {move || value.get()}
                        </textarea>
                    },
                )
            } else {
                Either::Right(
                    view! {
                        <input
                            id=id
                            name=name
                            type=kind
                            // The attribute only: it sets the initial value and never
                            // overwrites what someone typed while the page hydrated.
                            value=move || value.get()
                            autocomplete=autocomplete
                            required=required
                            aria-invalid=move || (!error.get().is_empty()).to_string()
                            aria-describedby=described_by
                        />
                    },
                )
            }}
            <Show when=move || !hint.get().is_empty()>
                <p class="field-hint" id=hint_id.clone()>{move || hint.get()}</p>
            </Show>
            <Show when=move || !error.get().is_empty()>
                <p class="field-error" id=error_id.clone()>{move || error.get()}</p>
            </Show>
        </div>
    }
}
