//! `/power?action=…&hosts=1,2,3`: what a bulk power request would touch,
//! and the button that does it. The hosts list sends people here first.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::alert::{Alert, load_error, signed_out};
use crate::hooks::query_param;
use crate::server_fns::hosts::{PowerPlan, power_scope};

fn action_words(action: &str) -> &'static str {
    match action {
        "on" => "Power on",
        "off" => "Power off",
        "cycle" => "Restart",
        "soft" => "Shut down",
        "wake" => "Wake",
        _ => "Power",
    }
}

#[component]
pub fn PowerPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |key: &'static str| query.read().get(key).unwrap_or_default();
    let data = Resource::new(
        move || (param("action"), param("hosts")),
        |(action, hosts)| power_scope(action, hosts),
    );
    view! {
        <Title text="Power nodes" />
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(scope)) => EitherOf3::A(view! { <Confirm scope /> }),
                    Ok(None) => EitherOf3::B(signed_out("Power nodes", "power your nodes", "/hosts".into())),
                    Err(_) => EitherOf3::C(load_error("Power nodes")),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Confirm(scope: PowerPlan) -> impl IntoView {
    let words = action_words(&scope.action);
    let count = scope.hosts.len();
    let starts = matches!(scope.action.as_str(), "on" | "cycle" | "wake");
    let (per, window) = scope.pace;
    let list = scope
        .hosts
        .iter()
        .map(|(id, name, pool)| {
            view! {
                <li>
                    <input type="hidden" name="host" value=*id form="confirm-power" />
                    <strong>{name.clone()}</strong>
                    {pool.clone().map(|p| view! { <span class="hint">" · pool " {p}</span> })}
                </li>
            }
        })
        .collect_view();
    let problems = scope
        .problems
        .iter()
        .map(|p| view! { <li>{p.clone()}</li> })
        .collect_view();
    let blocked = !scope.problems.is_empty() || count == 0;
    view! {
        <div class="page-head">
            <p class="crumbs"><a href="/hosts">"Hosts"</a> " / "</p>
            <h1>{format!("{words} {count} node{}?", if count == 1 { "" } else { "s" })}</h1>
            <p class="lead-small">
                {if starts {
                    format!("Power-ons are paced: at most {per} per pool every {window} s, so a rack does not boot at once; the rest wait their turn. Each node's result arrives on its page.")
                } else {
                    "Each node's result arrives on its page.".to_string()
                }}
            </p>
        </div>
        <Alert message=query_param("err") />
        <section class="card">
            <ul class="scope" data-testid="power-scope">{list}</ul>
            {(!scope.problems.is_empty()).then(|| view! {
                <div class="alert alert-error" role="alert">
                    <p>"Nothing will be done until these are sorted out:"</p>
                    <ul>{problems}</ul>
                </div>
            })}
            <form method="post" action="/hosts/power" id="confirm-power" class="card-actions">
                <input type="hidden" name="csrf" value=scope.csrf.clone() />
                <input type="hidden" name="action" value=scope.action.clone() />
                <input type="hidden" name="confirm" value="yes" />
                {if blocked {
                    Either::Left(view! { <a class="button button-quiet" href="/hosts">"Back to the hosts"</a> })
                } else {
                    Either::Right(view! {
                        <button type="submit" class="button" data-testid="confirm-power">
                            {format!("{words} {count} node{}", if count == 1 { "" } else { "s" })}
                        </button>
                        <a class="button button-quiet" href="/hosts">"Cancel"</a>
                    })
                }}
            </form>
        </section>
    }
}
