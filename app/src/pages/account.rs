//! `/account`: your profile (display name), SSH public keys, API tokens and
//! password. Every form is a plain post (`/account/...`) answered with a
//! redirect back here; `in=<section>` says which section the message is for.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::alert::{Csrf, SectionMessages};
use crate::components::field::Field;
use crate::hooks::query_param;
use crate::pages::password::NewPasswordFields;
use crate::server_fns::account::{AccountView, account_overview};

#[component]
pub fn AccountPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| account_overview());
    view! {
        <Title text="Your account" />
        <Suspense fallback=|| view! { <p>"Loading your account…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(account)) => EitherOf3::A(view! { <Account account /> }),
                    Ok(None) => EitherOf3::B(view! {
                        <section class="card form-card">
                            <h1>"Your account"</h1>
                            <p>
                                <a href="/login?next=/account">"Sign in"</a>
                                " to see your account."
                            </p>
                        </section>
                    }),
                    Err(_) => EitherOf3::C(view! {
                        <section class="card form-card">
                            <h1>"Your account"</h1>
                            <p class="alert alert-error" role="alert">
                                "Your account could not be loaded right now. Reload the page in a moment."
                            </p>
                        </section>
                    }),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Account(account: AccountView) -> impl IntoView {
    let csrf = account.csrf.clone();
    view! {
        <div class="page-head">
            <h1>"Your account"</h1>
            <p class="lead-small">
                "Signed in as " <strong>{account.username.clone()}</strong> " · "
                {account.email.clone()}
                {account.admin.then_some(" · administrator")}
            </p>
        </div>
        <div class="sections">
            <Profile account=account.clone() />
            <SshKeys account=account.clone() />
            <Tokens account=account.clone() />
            <section class="card" id="password" aria-labelledby="password-title">
                <h2 id="password-title">"Password"</h2>
                <p class="hint">
                    "The new password also opens the lab's VPN and the API (HTTP Basic)."
                </p>
                <SectionMessages section="password" />
                <form method="post" action="/account/password" class="form">
                    <Csrf token=csrf />
                    <Field
                        name="current_password"
                        label="Current password"
                        kind="password"
                        error=query_param("err_current_password")
                        autocomplete="current-password"
                        required=true
                    />
                    <NewPasswordFields />
                    <button type="submit" class="button">"Change password"</button>
                </form>
            </section>
        </div>
    }
}

#[component]
fn Profile(account: AccountView) -> impl IntoView {
    let typed = query_param("display_name");
    let current = account.display_name.clone();
    let value = Signal::derive(move || {
        let typed = typed.get();
        if typed.is_empty() {
            current.clone()
        } else {
            typed
        }
    });
    view! {
        <section class="card" id="profile" aria-labelledby="profile-title">
            <h2 id="profile-title">"Profile"</h2>
            <dl class="facts">
                <dt>"Username"</dt>
                <dd><code>{account.username.clone()}</code> " (your login on the lab's machines; it cannot change)"</dd>
                <dt>"E-mail address"</dt>
                <dd>{account.email.clone()}</dd>
            </dl>
            <SectionMessages section="profile" />
            <form method="post" action="/account/profile" class="form">
                <Csrf token=account.csrf.clone() />
                <Field
                    name="display_name"
                    label="Your name"
                    value=value
                    error=query_param("err_display_name")
                    hint="As colleagues know you; shown beside the machines you hold."
                    autocomplete="name"
                    required=true
                />
                <button type="submit" class="button">"Save"</button>
            </form>
        </section>
    }
}

#[component]
fn SshKeys(account: AccountView) -> impl IntoView {
    let csrf = account.csrf.clone();
    let rows = account
        .keys
        .iter()
        .map(|key| {
            let csrf = csrf.clone();
            view! {
                <tr>
                    <td>{key.name.clone()}</td>
                    <td>{format!("{} ({} bits)", key.algorithm, key.bits)}</td>
                    <td><code class="fingerprint">{key.fingerprint.clone()}</code></td>
                    <td>{key.added.clone()}</td>
                    <td class="actions">
                        <form method="post" action=format!("/account/keys/{}/delete", key.id) class="inline-form">
                            <Csrf token=csrf />
                            <button
                                type="submit"
                                class="button button-small button-quiet"
                                aria-label=format!("Remove the key {}", key.name)
                            >
                                "Remove"
                            </button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let empty = account.keys.is_empty();
    view! {
        <section class="card" id="keys" aria-labelledby="keys-title">
            <h2 id="keys-title">"SSH keys"</h2>
            <p class="hint">
                "Bootler puts these public keys on the nodes and virtual machines you get, so you can log in with "
                <code>"ssh"</code> ". Paste the contents of your " <code>"~/.ssh/id_ed25519.pub"</code>
                " (make one with " <code>"ssh-keygen -t ed25519"</code> ")."
            </p>
            <SectionMessages section="keys" />
            {if empty {
                Either::Left(view! { <p class="empty">"No keys yet."</p> })
            } else {
                Either::Right(view! {
                <table class="table">
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col">"Type"</th>
                            <th scope="col">"Fingerprint"</th>
                            <th scope="col">"Added"</th>
                            <th scope="col"><span class="sr-only">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
                })
            }}
            <form method="post" action="/account/keys" class="form">
                <Csrf token=account.csrf.clone() />
                <Field
                    name="public_key"
                    label="Public key"
                    rows=4
                    value=query_param("public_key")
                    error=query_param("err_public_key")
                    hint="One line starting with ssh-ed25519, ssh-rsa (2048 bits or more) or ecdsa-sha2-…."
                    required=true
                />
                <Field
                    name="name"
                    id="key-name"
                    label="Name (optional)"
                    value=query_param("key_name")
                    error=query_param("err_key_name")
                    hint="To tell your keys apart, such as “laptop”. Default: the key's comment."
                />
                <button type="submit" class="button">"Add key"</button>
            </form>
        </section>
    }
}

#[component]
fn Tokens(account: AccountView) -> impl IntoView {
    let csrf = account.csrf.clone();
    let rows = account
        .tokens
        .iter()
        .map(|token| {
            let csrf = csrf.clone();
            view! {
                <tr>
                    <td>{token.name.clone()}</td>
                    <td>{token.created.clone()}</td>
                    <td>{token.last_used.clone().unwrap_or_else(|| "never".into())}</td>
                    <td class="actions">
                        <form method="post" action=format!("/account/tokens/{}/revoke", token.id) class="inline-form">
                            <Csrf token=csrf />
                            <button
                                type="submit"
                                class="button button-small button-quiet"
                                aria-label=format!("Revoke the token {}", token.name)
                            >
                                "Revoke"
                            </button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let empty = account.tokens.is_empty();
    let new_token = account.new_token.clone().map(|token| {
        view! {
            <div class="secret-box" role="status">
                <p>
                    <strong>"Copy your new token “" {token.name.clone()} "” now."</strong>
                    " It is shown only this once; Bootler keeps only a hash of it."
                </p>
                <code class="secret" data-testid="new-token">{token.secret.clone()}</code>
                <p class="hint">
                    "Use it as " <code>"Authorization: Bearer …"</code> ", for example "
                    <code>"curl -H 'Authorization: Bearer " {token.secret.clone()} "' "
                    {account.base_url.clone()} "/api/v1/me"</code>
                </p>
            </div>
        }
    });
    view! {
        <section class="card" id="tokens" aria-labelledby="tokens-title">
            <h2 id="tokens-title">"API tokens"</h2>
            <p class="hint">
                "Scripts use the REST API with a token instead of your password. Revoke a token you no longer use, or one that leaked."
            </p>
            <SectionMessages section="tokens" />
            {new_token}
            {if empty {
                Either::Left(view! { <p class="empty">"No tokens yet."</p> })
            } else {
                Either::Right(view! {
                <table class="table">
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col">"Created"</th>
                            <th scope="col">"Last used"</th>
                            <th scope="col"><span class="sr-only">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
                })
            }}
            <form method="post" action="/account/tokens" class="form form-inline">
                <Csrf token=account.csrf.clone() />
                <Field
                    name="name"
                    id="token-name"
                    label="New token's name"
                    value=query_param("token_name")
                    error=query_param("err_token_name")
                    hint="Such as the script or machine that will use it."
                    required=true
                />
                <button type="submit" class="button">"Create token"</button>
            </form>
        </section>
    }
}
