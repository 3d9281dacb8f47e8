//! `/api/v1/instances`: virtual machines (thesis Table 2). Three answers
//! make one; every change is a job whose end reaches the owner live.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bootler_domain::accounts::{Role, User};
use bootler_domain::vms::instances::{Actor, Instance, NewInstance, VmAction, VmsError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

impl From<VmsError> for ApiError {
    fn from(err: VmsError) -> Self {
        match err {
            VmsError::NotFound(message) => ApiError::NotFound(message),
            VmsError::Invalid(message) => ApiError::Unprocessable(message),
            VmsError::Forbidden(message) => ApiError::Forbidden(message),
            VmsError::Conflict(message) => ApiError::Conflict(message),
            VmsError::Database(err) => ApiError::Internal(err.into()),
        }
    }
}

pub fn actor(user: &User) -> Actor {
    Actor {
        user_id: user.id,
        username: user.username.clone(),
        admin: user.role == Role::Admin,
    }
}

/// An instance as the API shows it: with the SSH command to copy.
pub fn view(instance: &Instance) -> Value {
    let mut value = serde_json::to_value(instance).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("ssh_command".into(), json!(instance.ssh_command()));
    }
    value
}

fn instance_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::BadRequest("An instance id is a number.".into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Administrators: everyone's.
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/instances[?all=true]` → `{"instances": [...]}`: yours
/// (administrators: everyone's with `all`), newest first.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let all = state.instances.list(&actor(&user), params.all).await?;
    Ok(Json(
        json!({ "instances": all.iter().map(view).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/instances/choices` → the flavors (each with why it does
/// not fit your quota now, if it does not), the images, your usage and
/// limits.
pub async fn choices(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.instances.choices(&actor(&user)).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    hostname: String,
    flavor: String,
    image: String,
    /// A pasted OpenSSH public key; absent: your first profile key.
    ssh_key: Option<String>,
}

/// `POST /api/v1/instances {"hostname", "flavor", "image", "ssh_key"?}` →
/// `202 {"instance", "job"}`: the VM is `creating` and turns `running`
/// (with its address) or `failed` (with the reason) when the job ends.
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let (instance, job) = state
        .instances
        .create(
            &state.jobs,
            &actor(&user),
            &NewInstance {
                hostname: body.hostname,
                flavor: body.flavor,
                image: body.image,
                ssh_key: body.ssh_key,
            },
            chrono::Utc::now(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "instance": view(&instance), "job": job })),
    ))
}

/// `GET /api/v1/instances/{id}` → `{"instance"}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let instance = state.instances.get(&actor(&user), instance_id(id)?).await?;
    Ok(Json(json!({ "instance": view(&instance) })))
}

async fn act(
    state: &AppState,
    user: &User,
    id: i64,
    action: VmAction,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (instance, job) = state
        .instances
        .request(&state.jobs, &actor(user), id, action, chrono::Utc::now())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "instance": view(&instance), "job": job })),
    ))
}

/// `DELETE /api/v1/instances/{id}` → `202 {"instance", "job"}`: destroys
/// it and its storage; the row goes when the job is done.
pub async fn destroy(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act(&state, &user, instance_id(id)?, VmAction::Destroy).await
}

/// `POST /api/v1/instances/{id}/start` → `202 {"instance", "job"}`.
pub async fn start(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act(&state, &user, instance_id(id)?, VmAction::Start).await
}

/// `POST /api/v1/instances/{id}/stop` → `202 {"instance", "job"}`.
pub async fn stop(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act(&state, &user, instance_id(id)?, VmAction::Stop).await
}

/// `GET /api/v1/instances/capacity` (administrators) → what the backend
/// holds and what Bootler's VMs use of it.
pub async fn capacity(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "Only administrators see the backend's capacity.".into(),
        ));
    }
    let capacity = state
        .vms
        .backend
        .capacity()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let all = state.instances.list(&actor(&user), true).await?;
    let held: Vec<&Instance> = all.iter().filter(|i| i.state.holds_resources()).collect();
    let rules = state.instances.rules();
    Ok(Json(json!({
        "backend": state.vms.backend.kind(),
        "capacity": capacity,
        "vcpu_budget": rules.vcpu_budget,
        "max_vcpus_per_vm": state.instances.max_vcpus_per_vm(),
        "used": {
            "instances": held.len(),
            "vcpus": held.iter().map(|i| i.vcpus).sum::<u32>(),
            "memory_mib": held.iter().map(|i| i.memory_mib).sum::<u64>(),
        },
    })))
}
