use leptos::prelude::*;
use leptos_router::components::A;

/// Header, main column and footer around every page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">
                <svg class="brand-mark" viewBox="0 0 32 32" aria-hidden="true">
                    <rect width="32" height="32" rx="7" fill="#1f6feb" />
                    <path d="M16 6v9" stroke="#fff" stroke-width="3" stroke-linecap="round" />
                    <path
                        d="M10.5 10.2a8 8 0 1 0 11 0"
                        fill="none"
                        stroke="#fff"
                        stroke-width="3"
                        stroke-linecap="round"
                    />
                </svg>
                <span class="brand-name">"Bootler"</span>
            </A>
            <nav aria-label="Main">
                <a href="/#how">"How it works"</a>
                <a href="/register">"Register"</a>
                <a href="/#sign-in" class="button button-small">"Sign in"</a>
            </nav>
        </header>
        <main id="main">{children()}</main>
        <footer class="footer">
            <p>"Bootler — self-service provisioning for research labs."</p>
        </footer>
    }
}
