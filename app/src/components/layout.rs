use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::toasts::Toaster;
use crate::live::connect_when_signed_in;
use crate::server_fns::current_user::use_current_user;

/// Header, main column and footer around every page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let user = use_current_user();
    connect_when_signed_in(Signal::derive(move || user.get().map(|u| u.last_event_id)));
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
                <Suspense fallback=|| ()>
                    <Show
                        when=move || user.get().is_some()
                        fallback=|| {
                            view! {
                                <a href="/register">"Register"</a>
                                <a href="/login" class="button button-small">"Sign in"</a>
                            }
                        }
                    >
                        <a href="/hosts">"Hosts"</a>
                        <a href="/pools">"Pools"</a>
                        <a href="/vms">"VMs"</a>
                        <a href="/vpn">"VPN"</a>
                        <a href="/templates">"Templates"</a>
                        <a href="/jobs">"Jobs"</a>
                        <a href="/history">"History"</a>
                        <Show when=move || user.get().is_some_and(|u| u.admin)>
                            <a href="/admin/users">"Users"</a>
                        </Show>
                        <a href="/account" class="whoami" title="Your account">
                            {move || user.get().map(|u| u.display_name).unwrap_or_default()}
                            " ("
                            {move || user.get().map(|u| u.username).unwrap_or_default()}
                            ")"
                        </a>
                        <form method="post" action="/logout" class="inline-form">
                            <input
                                type="hidden"
                                name="csrf"
                                value=move || user.get().map(|u| u.csrf).unwrap_or_default()
                            />
                            <button type="submit" class="button button-small button-quiet">
                                "Sign out"
                            </button>
                        </form>
                    </Show>
                </Suspense>
            </nav>
        </header>
        <main id="main">{children()}</main>
        <Toaster />
        <footer class="footer">
            <p>"Bootler — self-service provisioning for research labs."</p>
        </footer>
    }
}
