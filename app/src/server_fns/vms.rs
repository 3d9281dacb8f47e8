//! The VM page's data: the person's VMs, the three questions' choices
//! (each flavor with whether it fits their quota), and for administrators
//! every VM and the backend's capacity.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRow {
    pub id: i64,
    pub hostname: String,
    pub owner: String,
    pub flavor: String,
    pub image: String,
    /// "2 vCPU · 4 GiB · 20 GiB disk".
    pub size: String,
    /// creating, running, stopped, starting, stopping, destroying, failed,
    /// missing.
    pub state: String,
    pub addresses: Vec<String>,
    pub ssh_command: Option<String>,
    pub error: Option<String>,
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorOption {
    pub name: String,
    pub size: String,
    /// Why it cannot be chosen now.
    pub unavailable: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmAdminView {
    pub all: Vec<VmRow>,
    /// The backend's own words on its size, or why it does not answer.
    pub capacity: String,
    /// "3 VMs · 6 of 32 vCPUs (budget) · 12 GiB".
    pub used: String,
    /// The default per-person limits, in words.
    pub default_quota: String,
    /// People with limits of their own: (username, limits in words).
    pub quotas: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmsView {
    pub mine: Vec<VmRow>,
    pub flavors: Vec<FlavorOption>,
    pub images: Vec<String>,
    /// "You use 1 of 5 VMs, 2 of 8 vCPUs, 4 of 16 GiB."
    pub usage: String,
    /// The profile key used when none is pasted.
    pub profile_key: Option<String>,
    pub backend: String,
    pub admin: Option<VmAdminView>,
    pub csrf: String,
}

#[cfg(feature = "ssr")]
fn size(vcpus: u32, memory_mib: u64, disk_gib: u64) -> String {
    format!("{vcpus} vCPU · {} · {disk_gib} GiB disk", mib(memory_mib))
}

#[cfg(feature = "ssr")]
fn row(instance: &bootler_domain::vms::instances::Instance) -> VmRow {
    VmRow {
        id: instance.id,
        hostname: instance.hostname.clone(),
        owner: instance.owner.clone(),
        flavor: instance.flavor.clone(),
        image: instance.image.clone(),
        size: size(instance.vcpus, instance.memory_mib, instance.disk_gib),
        state: instance.state.as_str().to_string(),
        addresses: instance.addresses.clone(),
        ssh_command: instance.ssh_command(),
        error: instance.error.clone(),
        created: super::account::when(instance.created_at),
    }
}

/// "128 MiB", "4 GiB", "1.5 GiB".
#[cfg(feature = "ssr")]
fn mib(value: u64) -> String {
    if value < 1024 {
        format!("{value} MiB")
    } else if value.is_multiple_of(1024) {
        format!("{} GiB", value / 1024)
    } else {
        format!("{:.1} GiB", value as f64 / 1024.0)
    }
}

#[cfg(feature = "ssr")]
fn limit(used: u64, limit: u64, unit: &str) -> String {
    if limit == 0 {
        format!("{used}{unit} (no limit)")
    } else {
        format!("{used} of {limit}{unit}")
    }
}

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "vms_overview")]
pub async fn vms_overview() -> Result<Option<VmsView>, ServerFnError> {
    use super::current_user::request_session;
    use bootler_domain::accounts::Role;
    use bootler_domain::jobs::kinds::vm::VmJob;
    use bootler_domain::vms::instances::{Actor, Instances};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let instances = use_context::<Instances>()
        .ok_or_else(|| ServerFnError::new("instances service missing"))?;
    let user = session.user;
    let actor = Actor {
        user_id: user.id,
        username: user.username.clone(),
        admin: user.role == Role::Admin,
    };
    let error = |e: bootler_domain::vms::instances::VmsError| ServerFnError::new(e.to_string());
    let mine = instances.list(&actor, false).await.map_err(error)?;
    let choices = instances.choices(&actor).await.map_err(error)?;
    let accounts = use_context::<bootler_domain::accounts::Accounts>()
        .ok_or_else(|| ServerFnError::new("accounts service missing"))?;
    let profile_key = accounts
        .list_ssh_keys(&user)
        .await
        .ok()
        .and_then(|keys| keys.into_iter().next())
        .map(|k| format!("{} ({})", k.name, k.fingerprint));
    let usage = format!(
        "You use {} VMs, {} vCPUs and {} of memory.",
        limit(
            u64::from(choices.usage.instances),
            u64::from(choices.limits.instances),
            ""
        ),
        limit(
            u64::from(choices.usage.vcpus),
            u64::from(choices.limits.vcpus),
            ""
        ),
        match choices.limits.memory_mib {
            0 => format!("{} (no limit)", mib(choices.usage.memory_mib)),
            max => format!("{} of {}", mib(choices.usage.memory_mib), mib(max)),
        },
    );
    let admin = if actor.admin {
        let all = instances.list(&actor, true).await.map_err(error)?;
        let vms = use_context::<VmJob>().ok_or_else(|| ServerFnError::new("VM service missing"))?;
        let capacity = match vms.backend.capacity().await {
            Ok(c) => c.description,
            Err(e) => e.to_string(),
        };
        let held: Vec<_> = all.iter().filter(|i| i.state.holds_resources()).collect();
        let words = |instances: u32, vcpus: u32, memory: u64| {
            let n = |v: u64| {
                if v == 0 {
                    "no limit".to_string()
                } else {
                    v.to_string()
                }
            };
            format!(
                "VMs: {}, vCPUs: {}, memory: {}",
                n(u64::from(instances)),
                n(u64::from(vcpus)),
                if memory == 0 {
                    "no limit".to_string()
                } else {
                    mib(memory)
                }
            )
        };
        let per_user = instances.rules().per_user;
        let quotas = instances
            .own_quotas(&actor)
            .await
            .map_err(error)?
            .into_iter()
            .map(|q| {
                let limits = words(
                    q.own.instances.unwrap_or(per_user.instances),
                    q.own.vcpus.unwrap_or(per_user.vcpus),
                    q.own.memory_mib.unwrap_or(per_user.memory_mib),
                );
                (q.username, limits)
            })
            .collect();
        let rules = instances.rules();
        let vcpus: u32 = held.iter().map(|i| i.vcpus).sum();
        let memory: u64 = held.iter().map(|i| i.memory_mib).sum();
        Some(VmAdminView {
            default_quota: words(per_user.instances, per_user.vcpus, per_user.memory_mib),
            quotas,
            all: all.iter().map(row).collect(),
            capacity,
            used: format!(
                "{} {} vCPUs and {} of memory. Largest VM: {}.",
                match held.len() {
                    1 => "1 VM holds".to_string(),
                    n => format!("{n} VMs hold"),
                },
                limit(u64::from(vcpus), u64::from(rules.vcpu_budget), " (budget)"),
                mib(memory),
                match instances.max_vcpus_per_vm() {
                    0 => "not known yet".to_string(),
                    n => format!("{n} vCPUs"),
                }
            ),
        })
    } else {
        None
    };
    Ok(Some(VmsView {
        mine: mine.iter().map(row).collect(),
        flavors: choices
            .flavors
            .into_iter()
            .map(|f| FlavorOption {
                size: size(f.vcpus, f.memory_mib, f.disk_gib),
                name: f.name,
                unavailable: f.unavailable,
            })
            .collect(),
        images: choices.images.into_iter().map(|i| i.name).collect(),
        usage,
        profile_key,
        backend: choices.backend,
        admin,
        csrf: session.csrf_token,
    }))
}
