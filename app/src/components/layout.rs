use leptos::prelude::*;
use leptos_router::components::A;

/// Header, main column and footer around every page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"⏻"</span>
                <span class="brand-name">"Bootler"</span>
            </A>
            <nav aria-label="Main">
                <a href="/#how">"How it works"</a>
                <a href="/#sign-in" class="button button-small">"Sign in"</a>
            </nav>
        </header>
        <main id="main">{children()}</main>
        <footer class="footer">
            <p>
                "Bootler — self-service provisioning for research labs. "
                <a href="/healthz">"Status"</a>
            </p>
        </footer>
    }
}
