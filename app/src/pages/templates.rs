//! `/templates` and `/templates/{id}`: the template list, the editor with a
//! preview for a chosen host, and the version history.
//!
//! Everything is a plain form: creating, saving, copying and deleting post
//! to `/templates…` and are answered with a redirect; the preview is a GET
//! form (`?host=N`) rendered on the server. `in=<section>` says which
//! section a message is for.

use leptos::either::{Either, EitherOf3, EitherOf4};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::alert::{Csrf, SectionMessages, load_error, signed_out};
use crate::components::field::Field;
use crate::hooks::query_param;
use crate::server_fns::templates::{
    HostChoice, Preview, PreviewResult, TemplateDetail, TemplatePageData, TemplateRow,
    TemplatesView, VersionView, template_page, templates_overview,
};

/// The text of a `<textarea>` or `<pre>`. An HTML parser drops the first
/// newline right after the opening tag, so a text that starts with one
/// gets another in the server's HTML (the browser builds the element
/// itself and needs none).
fn block_text(text: String) -> String {
    if cfg!(feature = "ssr") && text.starts_with('\n') {
        format!("\n{text}")
    } else {
        text
    }
}

#[component]
fn KindBadge(kind: String) -> impl IntoView {
    view! { <span class=format!("status status-{kind}")>{kind.clone()}</span> }
}

#[component]
pub fn TemplatesPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| templates_overview());
    view! {
        <Title text="Templates" />
        <Suspense fallback=|| view! { <p>"Loading templates…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! { <Templates view /> }),
                    Ok(None) => EitherOf3::B(signed_out("Templates", "see and write templates", "/templates".into())),
                    Err(_) => EitherOf3::C(load_error("Templates")),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Templates(view: TemplatesView) -> impl IntoView {
    let others = (view.admin && !view.others.is_empty()).then(|| {
        view! {
            <section class="card" aria-labelledby="others-title">
                <h2 id="others-title">"Other people's templates"</h2>
                <p class="hint">"Private templates of other accounts; as an administrator you can see and change them."</p>
                <TemplateTable rows=view.others.clone() owner=true empty="" />
            </section>
        }
    });
    let mine_empty = if view.admin {
        "No private templates yet: the ones you create are global unless you tick “Private”."
    } else {
        "No templates of your own yet. Create one below, or copy a global one from its page."
    };
    view! {
        <div class="page-head">
            <h1>"Templates"</h1>
            <p class="lead-small template-lead">
                "A " <strong>"system"</strong> " template is an iPXE script: Bootler serves it to a host marked for an install when the host network-boots. "
                "An " <strong>"unattended"</strong> " template is the installer's answer file (a preseed, a kickstart, Clonezilla commands or any text), fetched by the installer from "
                <code>"{{ unattended_url }}"</code> ". "
                "Templates are written in " <a href="https://docs.rs/minijinja/latest/minijinja/syntax/index.html">"minijinja (Jinja2) syntax"</a>
                " with the variables listed at the end of this page. Global templates are for everyone and changed by administrators; yours are private. "
                "Every change of a body is kept as a version."
            </p>
        </div>
        <SectionMessages section="" />
        <div class="sections">
            <section class="card" aria-labelledby="global-title">
                <h2 id="global-title">"Global templates"</h2>
                <TemplateTable
                    rows=view.global.clone()
                    owner=false
                    empty="No global templates yet."
                />
            </section>
            <section class="card" aria-labelledby="mine-title">
                <h2 id="mine-title">"Your templates"</h2>
                <TemplateTable rows=view.mine.clone() owner=false empty=mine_empty />
            </section>
            {others}
            <NewTemplate csrf=view.csrf.clone() admin=view.admin />
            <Variables />
        </div>
    }
}

#[component]
fn TemplateTable(rows: Vec<TemplateRow>, owner: bool, empty: &'static str) -> impl IntoView {
    if rows.is_empty() {
        return Either::Left(view! { <p class="empty">{empty}</p> });
    }
    let body = rows
        .into_iter()
        .map(|t| {
            view! {
                <tr data-template=t.id>
                    <td>
                        <a href=format!("/templates/{}", t.id)><strong>{t.name.clone()}</strong></a>
                    </td>
                    <td><KindBadge kind=t.kind.clone() /></td>
                    <td>{t.version}</td>
                    <td class="template-when">{t.updated.clone()}</td>
                    {owner.then(|| view! { <td>{t.owner.clone().unwrap_or_default()}</td> })}
                    <td class="template-description">{t.description.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    Either::Right(view! {
        <table class="table templates">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Kind"</th>
                    <th scope="col">"Version"</th>
                    <th scope="col">"Updated"</th>
                    {owner.then(|| view! { <th scope="col">"Owner"</th> })}
                    <th scope="col">"Description"</th>
                </tr>
            </thead>
            <tbody>{body}</tbody>
        </table>
    })
}

#[component]
fn NewTemplate(csrf: String, admin: bool) -> impl IntoView {
    let kind = query_param("kind");
    let private = query_param("private");
    let lost = query_param("body_lost");
    let body_hint = Signal::derive(move || {
        if lost.get().is_empty() {
            "System templates start with #!ipxe. Undefined names are errors: write {{ vars.disk | default(\"/dev/sda\") }} for a value that may be missing."
                .to_string()
        } else {
            "Your text was too long to keep after the error: paste it again.".to_string()
        }
    });
    let private_box = admin.then(|| {
        view! {
            <label class="check">
                <input
                    type="checkbox"
                    name="private"
                    value="1"
                    checked=move || !private.get().is_empty()
                />
                " Private (only mine)"
            </label>
            <p class="hint template-form-hint">
                "Without it, the template is global: everyone can use it and copy it; only administrators change it."
            </p>
        }
    });
    view! {
        <section class="card" id="new" aria-labelledby="new-title">
            <h2 id="new-title">"New template"</h2>
            <SectionMessages section="new" />
            <form method="post" action="/templates" class="form">
                <Csrf token=csrf />
                <div class="template-form-row">
                    <Field
                        name="name"
                        label="Name"
                        value=query_param("name")
                        hint="Letters, digits, '-', '_' and '.', such as debian-12-preseed."
                        required=true
                    />
                    <div class="field">
                        <label for="field-kind">"Kind"</label>
                        <select id="field-kind" name="kind" class="template-select">
                            <option value="system" selected=move || kind.get() != "unattended">
                                "system (iPXE script)"
                            </option>
                            <option value="unattended" selected=move || kind.get() == "unattended">
                                "unattended (answer file)"
                            </option>
                        </select>
                    </div>
                </div>
                <Field
                    name="description"
                    label="Description (optional)"
                    value=query_param("description")
                    hint="What it installs and which vars it reads."
                />
                <Field
                    name="body"
                    label="Body"
                    rows=12
                    value=Signal::derive(move || block_text(query_param("body").get()))
                    hint=body_hint
                />
                {private_box}
                <button type="submit" class="button">"Create template"</button>
            </form>
        </section>
    }
}

/// What a template can use.
const VARIABLES: &[(&str, &str)] = &[
    ("host.name", "the host's name, e.g. node1"),
    (
        "host.interface",
        "the installer's network interface, e.g. eth0",
    ),
    (
        "host.mac",
        "the MAC address it boots with, 52:54:00:12:34:56",
    ),
    ("host.ip", "the address it last booted from"),
    ("host.id", "Bootler's number for the host"),
    (
        "mac.mac_address",
        "the MAC address as in the boot URLs, 52-54-00-12-34-56",
    ),
    (
        "vars.*",
        "the host's variables, set on its page (e.g. vars.disk, vars.release)",
    ),
    ("base_url", "Bootler's address, without a trailing slash"),
    ("email", "the holder's e-mail address"),
    (
        "user.username",
        "the holder's username (their login on the installed system)",
    ),
    ("user.display_name", "the holder's name"),
    ("user.email", "the holder's e-mail address"),
    (
        "ssh_keys",
        "the holder's SSH public keys, a list of authorized_keys lines",
    ),
    (
        "unattended_url",
        "where the installer fetches this host's unattended template",
    ),
    (
        "done_url",
        "what the installer calls at the end, so Bootler knows the install finished",
    ),
];

#[component]
fn Variables() -> impl IntoView {
    let items = VARIABLES
        .iter()
        .map(|(name, what)| {
            view! {
                <dt><code>{*name}</code></dt>
                <dd>{*what}</dd>
            }
        })
        .collect_view();
    view! {
        <section class="card" id="variables" aria-labelledby="variables-title">
            <h2 id="variables-title">"Variables"</h2>
            <p class="hint">
                "Write " <code>"{{ host.name }}"</code> " to insert a value, "
                <code>"{% if vars.disk %}…{% endif %}"</code> " and "
                <code>"{% for key in ssh_keys %}…{% endfor %}"</code> " for conditions and loops. "
                "A name that is not defined is an error (the preview names the line) unless it has a default: "
                <code>"{{ vars.release | default(\"bookworm\") }}"</code> "."
                " “The holder” is the person who holds the host, else whoever marked it for the install; "
                "in a preview of a host nobody holds, you."
            </p>
            <dl class="facts template-variables">{items}</dl>
        </section>
    }
}

#[component]
pub fn TemplatePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let host = move || query.read().get("host").unwrap_or_default();
    let data = Resource::new(move || (id(), host()), |(id, host)| template_page(id, host));
    view! {
        <Title text="Template" />
        <Suspense fallback=|| view! { <p>"Loading the template…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(TemplatePageData::Found(detail)) => EitherOf4::A(view! { <Template detail=*detail /> }),
                    Ok(TemplatePageData::SignedOut) => {
                        EitherOf4::B(signed_out("Template", "see and write templates", format!("/templates/{}", id())))
                    }
                    Ok(TemplatePageData::Missing(message)) => EitherOf4::C(view! {
                        <section class="card form-card">
                            <h1>"Template"</h1>
                            <p class="alert alert-error" role="alert">{message}</p>
                            <p><a href="/templates">"All templates"</a></p>
                        </section>
                    }),
                    Err(_) => EitherOf4::D(load_error("Template")),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Template(detail: TemplateDetail) -> impl IntoView {
    let t = detail.template.clone();
    let whose = match &t.owner {
        None => "global".to_string(),
        Some(owner) => format!("private to {owner}"),
    };
    // A read-only template offers its copy beside the body instead.
    let copy = detail.editable.then(|| {
        view! {
            <form method="post" action=format!("/templates/{}/copy", t.id) class="inline-form">
                <Csrf token=detail.csrf.clone() />
                <button
                    type="submit"
                    class="button button-small button-quiet"
                    title="A private copy of this template, for you"
                >
                    "Copy"
                </button>
            </form>
        }
    });
    let main = if detail.editable {
        Either::Left(view! { <Editor detail=detail.clone() /> })
    } else {
        Either::Right(view! { <ReadOnly detail=detail.clone() /> })
    };
    let delete = detail.editable.then(|| {
        view! {
            <section class="card" id="delete" aria-labelledby="delete-title">
                <h2 id="delete-title">"Delete"</h2>
                <p class="hint">
                    "Deletes the template and all its versions. A template that hosts use as a boot option cannot be deleted: choose another template for them first."
                </p>
                <SectionMessages section="delete" />
                <form method="post" action=format!("/templates/{}/delete", t.id) class="form">
                    <Csrf token=detail.csrf.clone() />
                    <button type="submit" class="button button-danger">
                        {format!("Delete “{}”", t.name)}
                    </button>
                </form>
            </section>
        }
    });
    view! {
        <Title text=t.name.clone() />
        <div class="page-head template-head">
            <p class="template-crumbs"><a href="/templates">"Templates"</a> " /"</p>
            <div class="toolbar">
                <h1>{t.name.clone()} " " <KindBadge kind=t.kind.clone() /></h1>
                {copy}
            </div>
            <p class="lead-small">
                {whose} " · version " <span data-testid="template-version">{t.version}</span>
                " · updated " {t.updated.clone()} " · created " {t.created.clone()}
            </p>
            {(!t.description.is_empty()).then(|| view! { <p class="template-description-lead">{t.description.clone()}</p> })}
        </div>
        <SectionMessages section="" />
        <div class="sections">
            {main}
            <PreviewCard detail=detail.clone() />
            <History versions=detail.versions.clone() />
            {delete}
        </div>
    }
}

#[component]
fn Editor(detail: TemplateDetail) -> impl IntoView {
    let t = detail.template.clone();
    let typed = query_param("typed");
    let lost = query_param("body_lost");
    // After a refused save, the typed values; else the saved ones.
    let value = move |key: &'static str, saved: String| {
        let query = query_param(key);
        Signal::derive(move || {
            if typed.get().is_empty() || (key == "body" && !lost.get().is_empty()) {
                saved.clone()
            } else {
                query.get()
            }
        })
    };
    let body = value("body", t.body.clone());
    let body_hint = Signal::derive(move || {
        if lost.get().is_empty() {
            "Saving a changed body makes a new version; the earlier ones stay in the history below. The preview uses the saved body."
                .to_string()
        } else {
            "Your text was too long to keep after the error; this is the saved body. Paste your text again."
                .to_string()
        }
    });
    view! {
        <section class="card" id="edit" aria-labelledby="edit-title">
            <h2 id="edit-title">"Edit"</h2>
            <SectionMessages section="edit" />
            <form method="post" action=format!("/templates/{}", t.id) class="form">
                <Csrf token=detail.csrf.clone() />
                <input type="hidden" name="stamp" value=t.stamp.clone() />
                <div class="template-form-row">
                    <Field name="name" label="Name" value=value("name", t.name.clone()) required=true />
                    <Field
                        name="description"
                        label="Description"
                        value=value("description", t.description.clone())
                    />
                </div>
                <Field
                    name="body"
                    label="Body"
                    rows=24
                    value=Signal::derive(move || block_text(body.get()))
                    hint=body_hint
                />
                <button type="submit" class="button">"Save"</button>
            </form>
        </section>
    }
}

#[component]
fn ReadOnly(detail: TemplateDetail) -> impl IntoView {
    let t = detail.template;
    view! {
        <section class="card" id="edit" aria-labelledby="body-title">
            <h2 id="body-title">"Body"</h2>
            <p class="hint">
                "This is a global template: only administrators change it. "
                "To change it, copy it into a template of your own (a private copy named “" {t.name.clone()} "-copy”, or the next free name)."
            </p>
            <form method="post" action=format!("/templates/{}/copy", t.id) class="form">
                <Csrf token=detail.csrf.clone() />
                <button type="submit" class="button">"Copy into a template of your own"</button>
            </form>
            <pre class="template-code" aria-label="Template body">{block_text(t.body.clone())}</pre>
        </section>
    }
}

#[component]
fn PreviewCard(detail: TemplateDetail) -> impl IntoView {
    let t = &detail.template;
    let chosen = detail.preview.as_ref().map(|p| p.host_id);
    let form = if detail.hosts.is_empty() {
        Either::Left(view! {
            <p class="empty">
                {if detail.admin {
                    "There are no hosts to preview with yet. Hosts appear when nodes PXE-boot against Bootler."
                } else {
                    "You hold no hosts to preview with yet. Hosts appear when nodes PXE-boot against Bootler; the ones you hold are listed here."
                }}
            </p>
        })
    } else {
        let options = detail
            .hosts
            .iter()
            .map(|h: &HostChoice| {
                view! {
                    <option value=h.id selected=chosen == Some(h.id)>
                        {format!("{} ({}, {})", h.name, h.mac, h.state.replace('_', " "))}
                    </option>
                }
            })
            .collect_view();
        let cut = (detail.hosts_total > detail.hosts.len() as i64).then(|| {
            view! {
                <p class="hint">
                    {format!(
                        "The first {} of {} hosts are listed.",
                        detail.hosts.len(),
                        detail.hosts_total
                    )}
                </p>
            }
        });
        Either::Right(view! {
            <form method="get" action=format!("/templates/{}#preview", t.id) class="form form-row">
                <div class="field">
                    <label for="preview-host">"Host"</label>
                    <select id="preview-host" name="host" class="template-select">{options}</select>
                </div>
                <button type="submit" class="button">"Preview"</button>
            </form>
            {cut}
        })
    };
    let result = detail
        .preview
        .clone()
        .map(|preview| view! { <PreviewResultView preview version=t.version /> });
    view! {
        <section class="card" id="preview" aria-labelledby="preview-title">
            <h2 id="preview-title">"Preview"</h2>
            <p class="hint">
                "Renders the saved body (version " {t.version}
                ") for a host, with the values that host would get when it boots."
            </p>
            {form}
            {result}
        </section>
    }
}

#[component]
fn PreviewResultView(preview: Preview, version: i32) -> impl IntoView {
    let host = preview
        .host_name
        .clone()
        .unwrap_or_else(|| format!("host {}", preview.host_id));
    match preview.result {
        PreviewResult::Output(output) => EitherOf3::A(view! {
            <div class="template-preview" data-testid="preview-output">
                <p class="hint">{format!("Version {version} rendered for {host}:")}</p>
                <pre class="template-code">{block_text(output)}</pre>
            </div>
        }),
        PreviewResult::RenderError {
            message,
            line,
            source,
        } => EitherOf3::B(view! {
            <div class="alert alert-error template-render-error" role="alert" data-testid="preview-error">
                <p><strong>{format!("Version {version} does not render for {host}:")}</strong></p>
                <p class="template-error-message">{message}</p>
                {line.zip(source).map(|(line, source)| view! {
                    <pre class="template-code template-error-line">
                        <span class="template-line-number">{format!("{line:>4} | ")}</span>
                        {source}
                    </pre>
                })}
            </div>
        }),
        PreviewResult::Problem(message) => EitherOf3::C(view! {
            <p class="alert alert-error" role="alert" data-testid="preview-error">{message}</p>
        }),
    }
}

#[component]
fn History(versions: Vec<VersionView>) -> impl IntoView {
    let current = versions.first().map(|v| v.version);
    let items = versions
        .into_iter()
        .map(|v| {
            let is_current = Some(v.version) == current;
            view! {
                <li>
                    <details data-version=v.version>
                        <summary>
                            <strong>{format!("Version {}", v.version)}</strong>
                            {is_current.then(|| view! { <span class="badge">"current"</span> })}
                            <span class="hint">
                                {format!(
                                    " · by {} · {}",
                                    v.by.clone().unwrap_or_else(|| {
                                        // No author: shipped (seeded), or the account is gone.
                                        if v.version == 1 { "Bootler" } else { "a deleted account" }.into()
                                    }),
                                    v.when
                                )}
                            </span>
                        </summary>
                        <pre class="template-code">{block_text(v.body.clone())}</pre>
                    </details>
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="card" id="history" aria-labelledby="history-title">
            <h2 id="history-title">"Version history"</h2>
            <p class="hint">"Every body this template had, newest first. Open one to read it."</p>
            <ol class="template-versions">{items}</ol>
        </section>
    }
}
