use leptos::prelude::*;

/// One tab of a [`Tabs`] group.
#[derive(Clone, Debug, PartialEq)]
pub struct TabSpec {
    pub id: &'static str,
    pub label: &'static str,
    pub steps: &'static [&'static str],
}

/// Accessible tabs (WAI-ARIA tab pattern): the first panel is visible in the
/// server-rendered page; after hydration the buttons switch panels.
#[component]
pub fn Tabs(tabs: &'static [TabSpec], label: &'static str) -> impl IntoView {
    let selected = RwSignal::new(0usize);
    let buttons = tabs
        .iter()
        .enumerate()
        .map(|(index, tab)| {
            let is_selected = move || selected.get() == index;
            view! {
                <button
                    type="button"
                    role="tab"
                    id=format!("tab-{}", tab.id)
                    aria-controls=format!("panel-{}", tab.id)
                    aria-selected=move || is_selected().to_string()
                    tabindex=move || if is_selected() { "0" } else { "-1" }
                    class:active=is_selected
                    on:click=move |_| selected.set(index)
                >
                    {tab.label}
                </button>
            }
        })
        .collect_view();
    let panels = tabs
        .iter()
        .enumerate()
        .map(|(index, tab)| {
            view! {
                <ol
                    role="tabpanel"
                    id=format!("panel-{}", tab.id)
                    aria-labelledby=format!("tab-{}", tab.id)
                    class="steps"
                    hidden=move || selected.get() != index
                >
                    {tab.steps.iter().map(|step| view! { <li>{*step}</li> }).collect_view()}
                </ol>
            }
        })
        .collect_view();
    view! {
        <div class="tabs">
            <div role="tablist" aria-label=label>
                {buttons}
            </div>
            {panels}
        </div>
    }
}
