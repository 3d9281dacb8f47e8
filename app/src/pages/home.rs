use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::tabs::{TabSpec, Tabs};
use crate::pages::login::SignInForm;
use crate::server_fns::current_user::use_current_user;

const HOW_IT_WORKS: &[TabSpec] = &[
    TabSpec {
        id: "metal",
        label: "Bare-metal node",
        steps: &[
            "Click “Get a node”: Bootler leases you a free machine from the lab's pool.",
            "Pick an install (Debian, Ubuntu, Rocky, a Clonezilla image) and mark the node.",
            "Power it on from the browser (Wake-on-LAN or IPMI): it PXE-boots and installs unattended.",
            "Log in with your SSH key; release the node when you are done, or lend it to a colleague.",
        ],
    },
    TabSpec {
        id: "vm",
        label: "Virtual machine",
        steps: &[
            "Answer three questions: a hostname, a size (flavor) and an image with your SSH key.",
            "Bootler creates the VM on the lab's libvirt hosts or OpenStack and tells you when it runs.",
            "Start, stop or delete it yourself, within your quota.",
        ],
    },
    TabSpec {
        id: "vpn",
        label: "VPN access",
        steps: &[
            "Register with your institutional e-mail address and confirm it.",
            "Download your OpenVPN profile from the VPN page.",
            "Connect with the same username and password: the lab's private network is yours.",
        ],
    },
];

#[component]
pub fn HomePage() -> impl IntoView {
    let user = use_current_user();
    view! {
        <Title text="" />
        <section class="hero">
            <div class="hero-text">
                <h1>"Machines for research, without the ticket."</h1>
                <p class="lead">
                    "Bootler is the lab's self-service provisioning desk. Lease a bare-metal node "
                    "and reinstall it with one click, create a virtual machine by answering three "
                    "questions, and reach it all through the lab's VPN — no administrator in the loop."
                </p>
                <p class="hero-actions">
                    <Suspense fallback=|| ()>
                        <Show when=move || user.get().is_none()>
                            <a href="/register" class="button">"Create an account"</a>
                        </Show>
                    </Suspense>
                    <a href="#how" class="button button-quiet">"How it works"</a>
                </p>
            </div>
            <SignInCard />
        </section>

        <section class="features" aria-label="What Bootler does">
            <article class="card">
                <h2>"Bare metal"</h2>
                <p>
                    "Nodes PXE-boot into iPXE and ask Bootler what to do. Marked nodes get a clean, "
                    "unattended install; all others boot from their disk."
                </p>
            </article>
            <article class="card">
                <h2>"Virtual machines"</h2>
                <p>
                    "Hostname, flavor, image and SSH key. Bootler hides the hypervisor and the "
                    "network details and tells you when your VM is up."
                </p>
            </article>
            <article class="card">
                <h2>"VPN access"</h2>
                <p>
                    "One account for the web, the API and OpenVPN. Registration needs only an "
                    "institutional e-mail address."
                </p>
            </article>
            <article class="card">
                <h2>"Live and scriptable"</h2>
                <p>
                    "Slow work runs in the background and reports back to your browser as it "
                    "finishes. Everything the pages do, the REST API does too."
                </p>
            </article>
        </section>

        <section id="how" class="how">
            <h2>"How it works"</h2>
            <Tabs tabs=HOW_IT_WORKS label="What you want to get" />
        </section>
    }
}

/// Sign-in on the start page, or who is signed in.
#[component]
fn SignInCard() -> impl IntoView {
    let user = use_current_user();
    view! {
        <aside id="sign-in" class="card sign-in" aria-labelledby="sign-in-title">
            <Suspense fallback=|| ()>
                <Show
                    when=move || user.get().is_none()
                    fallback=move || {
                        view! {
                            <h2 id="sign-in-title">"Welcome back"</h2>
                            <p>
                                "You are signed in as "
                                <strong>{move || user.get().map(|u| u.username).unwrap_or_default()}</strong>
                                "."
                            </p>
                        }
                    }
                >
                    <h2 id="sign-in-title">"Sign in"</h2>
                    <SignInForm />
                </Show>
            </Suspense>
        </aside>
    }
}
