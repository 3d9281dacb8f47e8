//! `/jobs`: the jobs you started (everyone's for admins), live. Failed and
//! cancelled jobs can be retried, queued ones cancelled (plain form posts).
//! Admins can start a diagnostic job to check that the workers run.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::alert::{Alert, Notice};
use crate::components::toasts::{Level, use_toasts};
use crate::hooks::query_param;
use crate::live::use_live;
use crate::server_fns::jobs::{JobView, JobsView, jobs_overview, start_diagnostic_job};

#[component]
pub fn JobsPage() -> impl IntoView {
    let query = use_query_map();
    let everyone = move || query.read().get("scope").as_deref() != Some("mine");
    let live = use_live();
    // Refetched whenever a job event arrives (in the browser).
    let data = Resource::new(
        move || (everyone(), live.last_job.get().map(|j| (j.id, j.state))),
        |(everyone, _)| jobs_overview(everyone),
    );
    view! {
        <Title text="Jobs" />
        <Suspense fallback=|| view! { <p>"Loading jobs…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! { <Jobs view refetch=move || data.refetch() /> }),
                    Ok(None) => EitherOf3::B(view! {
                        <section class="card form-card">
                            <h1>"Jobs"</h1>
                            <p>
                                <a href="/login?next=/jobs">"Sign in"</a>
                                " to see your jobs."
                            </p>
                        </section>
                    }),
                    Err(_) => EitherOf3::C(view! {
                        <section class="card form-card">
                            <h1>"Jobs"</h1>
                            <p class="alert alert-error" role="alert">
                                "The jobs could not be loaded right now. Reload the page in a moment."
                            </p>
                        </section>
                    }),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Jobs(view: JobsView, refetch: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let rows = view
        .jobs
        .iter()
        .map(|job| view! { <JobRow job=job.clone() csrf=view.csrf.clone() show_owner=view.everyone /> })
        .collect_view();
    let empty = view.jobs.is_empty();
    let scope = view.admin.then(|| {
        view! {
            <nav class="filters" aria-label="Whose jobs">
                <a href="/jobs" class="filter" class:active=view.everyone aria-current=view.everyone.then_some("page")>"Everyone's"</a>
                <a href="/jobs?scope=mine" class="filter" class:active=!view.everyone aria-current=(!view.everyone).then_some("page")>"Mine"</a>
            </nav>
        }
    });
    let diagnostic = view
        .admin
        .then(|| view! { <Diagnostic csrf=view.csrf.clone() refetch /> });
    view! {
        <div class="page-head">
            <h1>"Jobs"</h1>
            <p class="lead-small">
                "Slow work (power, installs, virtual machines, mail) runs in the background. "
                "You are told here and in a notification when it ends; this page updates by itself."
            </p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <div class="sections">
            {diagnostic}
            <section class="card" aria-labelledby="jobs-title">
                <div class="toolbar">
                    <h2 id="jobs-title">{if view.everyone { "Everyone's jobs" } else { "Your jobs" }}</h2>
                    {scope}
                </div>
                {if empty {
                    Either::Left(view! { <p class="empty">"No jobs yet."</p> })
                } else {
                    Either::Right(view! {
                        <table class="table jobs">
                            <thead>
                                <tr>
                                    <th scope="col">"Job"</th>
                                    <th scope="col">"State"</th>
                                    {view.everyone.then(|| view! { <th scope="col">"Asked by"</th> })}
                                    <th scope="col">"Attempts"</th>
                                    <th scope="col">"Sent"</th>
                                    <th scope="col">"Ended"</th>
                                    <th scope="col"><span class="sr-only">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    })
                }}
            </section>
        </div>
    }
}

#[component]
fn JobRow(job: JobView, csrf: String, show_owner: bool) -> impl IntoView {
    let action = match job.state.as_str() {
        "failed" | "cancelled" => Some(("retry", "Retry", false)),
        "queued" => Some(("cancel", "Cancel", true)),
        _ => None,
    };
    let action = action.map(|(path, label, quiet)| {
        view! {
            <form method="post" action=format!("/jobs/{}/{path}", job.id) class="inline-form">
                <input type="hidden" name="csrf" value=csrf.clone() />
                <button
                    type="submit"
                    class="button button-small"
                    class:button-quiet=quiet
                    aria-label=format!("{label} job {}", job.id)
                >
                    {label}
                </button>
            </form>
        }
    });
    let detail = match (&job.error, &job.next_run) {
        (Some(error), _) => Some(view! { <p class="job-error">{error.clone()}</p> }),
        _ => None,
    };
    view! {
        <tr data-job=job.id data-state=job.state.clone()>
            <td>
                <strong>{job.title.clone()}</strong>
                " #" {job.id}
                {job.target.clone().map(|t| view! { <span class="hint">" · " {t}</span> })}
                {detail}
            </td>
            <td><span class=format!("status status-{}", job.state)>{job.state.clone()}</span></td>
            {show_owner.then(|| view! { <td>{job.requested_by.clone().unwrap_or_else(|| "system".into())}</td> })}
            <td>{format!("{} of {}", job.attempts, job.max_attempts)}</td>
            <td>{job.created.clone()}</td>
            <td>{job.finished.clone().or_else(|| job.next_run.clone().map(|t| format!("next try {t}"))).unwrap_or_default()}</td>
            <td class="actions">{action}</td>
        </tr>
    }
}

/// "Run a diagnostic job": a plain form post without JavaScript; in the
/// browser it says "work sent" at once and calls the server function.
#[component]
fn Diagnostic(csrf: String, refetch: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let toasts = use_toasts();
    let sleep_ms = NodeRef::<leptos::html::Input>::new();
    let fail = NodeRef::<leptos::html::Input>::new();
    let csrf_value = csrf.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let sleep = sleep_ms
            .get()
            .and_then(|input| input.value().trim().parse::<u64>().ok())
            .unwrap_or(0);
        let fail = fail.get().map(|input| input.checked()).unwrap_or(false);
        let toast = toasts.push(Level::Info, "Work sent: starting a diagnostic job…");
        let csrf = csrf_value.clone();
        leptos::task::spawn_local(async move {
            match start_diagnostic_job(csrf, sleep, fail).await {
                Ok(id) => {
                    toasts.replace(
                        toast,
                        Level::Info,
                        format!("Work sent: diagnostic job #{id} is queued; you will be told when it ends."),
                    );
                    refetch();
                }
                Err(err) => toasts.replace(toast, Level::Error, server_error_text(&err)),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="diagnostic-title">
            <h2 id="diagnostic-title">"Check the workers"</h2>
            <p class="hint">
                "A diagnostic job waits, then succeeds or fails as asked: if its notification arrives, "
                "the workers and live notifications work."
            </p>
            <form method="post" action="/jobs/diagnostic" class="form form-row" on:submit=on_submit>
                <input type="hidden" name="csrf" value=csrf />
                <div class="field">
                    <label for="sleep-ms">"Wait (milliseconds)"</label>
                    <input id="sleep-ms" name="sleep_ms" type="number" min="0" max="600000" value="1500" node_ref=sleep_ms />
                </div>
                <label class="check">
                    <input type="checkbox" name="fail" value="true" node_ref=fail />
                    " Fail on purpose"
                </label>
                <button type="submit" class="button">"Run a diagnostic job"</button>
            </form>
        </section>
    }
}

/// The sentence of a server function error, without its type prefix.
fn server_error_text(err: &ServerFnError) -> String {
    let text = err.to_string();
    text.split_once(": ")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(text)
}
