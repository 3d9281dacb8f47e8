//! The VM page's forms (`/vms`): the three questions, and start, stop and
//! destroy. Each answers with a redirect back to the page and a sentence.

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use bootler_domain::vms::instances::{NewInstance, VmAction};
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::api::instances::actor;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vms", post(create))
        .route("/vms/quota", post(quota))
        .route("/vms/{id}/{action}", post(act))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    flavor: String,
    #[serde(default)]
    image: String,
    /// Empty: the first key of the profile.
    #[serde(default)]
    ssh_key: String,
}

/// The three questions.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/vms",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/vms").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let new = NewInstance {
        hostname: form.hostname.clone(),
        flavor: form.flavor.clone(),
        image: form.image.clone(),
        ssh_key: Some(form.ssh_key.clone()).filter(|k| !k.trim().is_empty()),
    };
    match state
        .instances
        .create(&state.jobs, &actor(&session.user), &new, chrono::Utc::now())
        .await
    {
        Ok((instance, job)) => to(
            "/vms",
            &[(
                "notice",
                format!(
                    "Creating {} (job #{}); this page shows when it runs.",
                    instance.hostname, job.id
                ),
            )],
        ),
        // The answers come back so nothing has to be typed again.
        Err(err) => to(
            "/vms#new-vm",
            &[
                ("err", general_message(err)),
                ("hostname", form.hostname),
                ("flavor", form.flavor),
                ("image", form.image),
            ],
        ),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Start, stop or destroy one VM.
pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/vms",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/vms").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Ok(id) = id.parse::<i64>() else {
        return to("/vms", &[("err", "There is no such VM.")]);
    };
    let action = match action.as_str() {
        "start" => VmAction::Start,
        "stop" => VmAction::Stop,
        "destroy" => VmAction::Destroy,
        _ => return to("/vms", &[("err", "That is not something a VM can do.")]),
    };
    match state
        .instances
        .request(
            &state.jobs,
            &actor(&session.user),
            id,
            action,
            chrono::Utc::now(),
        )
        .await
    {
        Ok((instance, _)) => {
            let what = match action {
                VmAction::Start => "Starting",
                VmAction::Stop => "Stopping",
                _ => "Destroying",
            };
            to(
                "/vms",
                &[("notice", format!("{what} {}.", instance.hostname))],
            )
        }
        Err(err) => to("/vms", &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct QuotaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    max_vms: String,
    #[serde(default)]
    max_vm_vcpus: String,
    #[serde(default)]
    max_vm_memory_mib: String,
}

/// A limit field: empty is the default.
fn limit(label: &str, text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "" => Ok(None),
        text => text.parse::<u64>().map(Some).map_err(|_| {
            format!(
                "“{}” is not a number of {label}: give a whole number, 0 for no limit, or leave it empty for the default.",
                text.chars().take(20).collect::<String>()
            )
        }),
    }
}

/// Administrators: a person's own VM limits.
pub async fn quota(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<QuotaForm>, FormRejection>,
) -> Redirect {
    let back = "/vms#vm-quotas";
    let Ok(Form(form)) = form else {
        return to(
            back,
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let parsed = (
        limit("VMs", &form.max_vms),
        limit("vCPUs", &form.max_vm_vcpus),
        limit("MiB", &form.max_vm_memory_mib),
    );
    let (instances, vcpus, memory_mib) = match parsed {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(message), _, _) | (_, Err(message), _) | (_, _, Err(message)) => {
            return to(back, &[("err", message)]);
        }
    };
    let own = bootler_domain::vms::instances::OwnLimits {
        instances: instances.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        vcpus: vcpus.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        memory_mib,
    };
    let username = form.username.trim().to_string();
    match state
        .instances
        .set_quota(&actor(&session.user), &username, own)
        .await
    {
        Ok(quota) => to(
            back,
            &[(
                "notice",
                if quota.own == bootler_domain::vms::instances::OwnLimits::default() {
                    format!("“{}” has the default VM quota again.", quota.username)
                } else {
                    format!("Set the VM quota of “{}”.", quota.username)
                },
            )],
        ),
        Err(err) => to(back, &[("err", general_message(err))]),
    }
}
