//! `/vms`: virtual machines. Three questions make one (host name, flavor,
//! image, with the profile's SSH key or a pasted one); the list shows each
//! VM's state, address and SSH command, with start, stop and destroy.
//! Administrators also see every VM and the backend's capacity. Refreshed
//! by live instance events.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::alert::{Alert, Notice, load_error, signed_out};
use crate::hooks::query_param;
use crate::live::use_live;
use crate::server_fns::vms::{VmRow, VmsView, vms_overview};

#[component]
pub fn VmsPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| vms_overview());
    let live = use_live();
    Effect::watch(
        move || live.last_instance.get(),
        move |_, _, _| data.refetch(),
        false,
    );
    view! {
        <Title text="Virtual machines" />
        <Transition fallback=|| view! { <p>"Loading your VMs…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! { <Vms view /> }),
                    Ok(None) => EitherOf3::B(signed_out("Virtual machines", "create and manage VMs", "/vms".into())),
                    Err(_) => EitherOf3::C(load_error("Virtual machines")),
                }
            })}
        </Transition>
    }
}

/// A state in words.
fn state_label(state: &str) -> &'static str {
    match state {
        "creating" => "creating",
        "running" => "running",
        "stopped" => "stopped",
        "starting" => "starting",
        "stopping" => "stopping",
        "destroying" => "destroying",
        "failed" => "failed",
        "missing" => "missing",
        _ => "unknown",
    }
}

#[component]
fn Vms(view: VmsView) -> impl IntoView {
    let backend = if view.backend == "openstack" {
        "OpenStack"
    } else {
        "libvirt"
    };
    let csrf = view.csrf.clone();
    let mine = if view.mine.is_empty() {
        Either::Left(
            view! { <p class="empty">"You have no VMs yet: answer the three questions above."</p> },
        )
    } else {
        let rows = view
            .mine
            .iter()
            .cloned()
            .map(|vm| view! { <VmRowView vm csrf=csrf.clone() owner=false /> })
            .collect_view();
        Either::Right(view! { <VmTable rows=rows.into_any() owner=false /> })
    };
    let admin = view.admin.clone().map(|admin| {
        let rows = admin
            .all
            .iter()
            .cloned()
            .map(|vm| view! { <VmRowView vm csrf=csrf.clone() owner=true /> })
            .collect_view();
        let empty = admin.all.is_empty();
        view! {
            <section class="card" aria-labelledby="all-vms-title">
                <h2 id="all-vms-title">"All VMs (administrators)"</h2>
                <p data-testid="vm-capacity">{format!("Backend: {}", admin.capacity)}</p>
                <p class="hint" data-testid="vm-used">{admin.used.clone()}</p>
                {if empty {
                    Either::Left(view! { <p class="empty">"Nobody has a VM yet."</p> })
                } else {
                    Either::Right(view! { <VmTable rows=rows.into_any() owner=true /> })
                }}
                <h3 id="vm-quotas">"Quotas"</h3>
                <p class="hint">{format!("Everyone: {}.", admin.default_quota)}</p>
                {(!admin.quotas.is_empty()).then(|| {
                    let items = admin
                        .quotas
                        .iter()
                        .map(|(name, limits)| view! { <li><strong>{name.clone()}</strong>": " {limits.clone()}</li> })
                        .collect_view();
                    view! { <ul class="quota-list" data-testid="vm-quotas">{items}</ul> }
                })}
                <form method="post" action="/vms/quota" class="form">
                    <input type="hidden" name="csrf" value=csrf.clone() />
                    <div class="form-row">
                        <div class="field">
                            <label for="quota-user">"Username"</label>
                            <input id="quota-user" name="username" required=true autocomplete="off" />
                        </div>
                        <div class="field">
                            <label for="quota-vms">"VMs"</label>
                            <input id="quota-vms" name="max_vms" type="number" min="0" placeholder="default" />
                        </div>
                        <div class="field">
                            <label for="quota-vcpus">"vCPUs"</label>
                            <input id="quota-vcpus" name="max_vm_vcpus" type="number" min="0" placeholder="default" />
                        </div>
                        <div class="field">
                            <label for="quota-memory">"Memory (MiB)"</label>
                            <input id="quota-memory" name="max_vm_memory_mib" type="number" min="0" placeholder="default" />
                        </div>
                    </div>
                    <p class="hint">"A person's own limits: empty is the default, 0 no limit. Their VMs stay."</p>
                    <button type="submit" class="button button-small" data-testid="set-vm-quota">"Set quota"</button>
                </form>
            </section>
        }
    });
    view! {
        <div class="page-head">
            <h1>"Virtual machines"</h1>
            <p class="lead-small">
                {format!("Answer three questions; Bootler builds the VM on {backend} and tells you when it runs.")}
            </p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <div class="sections">
            <NewVm view=view.clone() />
            <section class="card" aria-labelledby="my-vms-title">
                <h2 id="my-vms-title">"Your VMs"</h2>
                {mine}
            </section>
            {admin}
        </div>
    }
}

/// The three questions.
#[component]
fn NewVm(view: VmsView) -> impl IntoView {
    let asked_hostname = query_param("hostname");
    let asked_flavor = query_param("flavor");
    let asked_image = query_param("image");
    if view.images.is_empty() {
        return Either::Left(view! {
            <section class="card" id="new-vm" aria-labelledby="new-vm-title">
                <h2 id="new-vm-title">"New VM"</h2>
                <p class="empty">
                    "No images are set up yet, so no VM can be made. Administrators list them in the configuration ([[vm.images]])."
                </p>
            </section>
        });
    }
    let first_fit = view
        .flavors
        .iter()
        .find(|f| f.unavailable.is_none())
        .map(|f| f.name.clone());
    let flavors = view
        .flavors
        .iter()
        .map(|f| {
            let id = format!("flavor-{}", f.name);
            let chosen = {
                let name = f.name.clone();
                let first_fit = first_fit.clone();
                move || {
                    let asked = asked_flavor.get();
                    if asked.is_empty() {
                        first_fit.as_deref() == Some(name.as_str())
                    } else {
                        asked == name
                    }
                }
            };
            let disabled = f.unavailable.is_some();
            view! {
                <label class="choice" class:choice-off=disabled for=id.clone()>
                    <input type="radio" id=id.clone() name="flavor" value=f.name.clone() checked=chosen disabled=disabled required=true />
                    <span class="choice-name">{f.name.clone()}</span>
                    <span class="choice-size">{f.size.clone()}</span>
                    {f.unavailable.clone().map(|why| view! { <span class="choice-why">{why}</span> })}
                </label>
            }
        })
        .collect_view();
    let images = view
        .images
        .iter()
        .map(|name| {
            let selected = {
                let name = name.clone();
                move || asked_image.get() == name
            };
            view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    let (key_hint, key_required) = match &view.profile_key {
        Some(key) => (
            format!("Empty: your profile's key {key}. Or paste another public key (the .pub file)."),
            false,
        ),
        None => (
            "Paste your public key (the contents of ~/.ssh/id_ed25519.pub), or add one to your account first.".to_string(),
            true,
        ),
    };
    let none_fits = first_fit.is_none();
    Either::Right(view! {
        <section class="card" id="new-vm" aria-labelledby="new-vm-title">
            <h2 id="new-vm-title">"New VM"</h2>
            <form method="post" action="/vms" class="form">
                <input type="hidden" name="csrf" value=view.csrf.clone() />
                <div class="field">
                    <label for="vm-hostname">"1. Host name"</label>
                    <input id="vm-hostname" name="hostname" required=true maxlength="63" autocomplete="off"
                        placeholder="e.g. experiment-1" value=move || asked_hostname.get() />
                    <p class="field-hint hint">"Letters, digits and dashes; unique among your VMs."</p>
                </div>
                <fieldset class="fieldset">
                    <legend>"2. Flavor"</legend>
                    <div class="choices">{flavors}</div>
                    <p class="hint" data-testid="vm-usage">{view.usage.clone()}</p>
                </fieldset>
                <div class="form-row">
                    <div class="field">
                        <label for="vm-image">"3. Image"</label>
                        <select id="vm-image" name="image">{images}</select>
                    </div>
                </div>
                <div class="field">
                    <label for="vm-key">"SSH public key"</label>
                    <textarea id="vm-key" name="ssh_key" rows="3" required=key_required
                        placeholder="ssh-ed25519 AAAA… you@laptop"></textarea>
                    <p class="field-hint hint">{key_hint}</p>
                </div>
                <button type="submit" class="button" disabled=none_fits data-testid="create-vm">"Create VM"</button>
                {none_fits.then(|| view! { <p class="hint">"No flavor fits your quota now: destroy a VM first."</p> })}
            </form>
        </section>
    })
}

#[component]
fn VmTable(rows: AnyView, owner: bool) -> impl IntoView {
    view! {
        <table class="table vms">
            <thead>
                <tr>
                    <th scope="col">"VM"</th>
                    {owner.then(|| view! { <th scope="col">"Owner"</th> })}
                    <th scope="col">"State"</th>
                    <th scope="col">"Log in"</th>
                    <th scope="col">"Size"</th>
                    <th scope="col"><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
fn VmRowView(vm: VmRow, csrf: String, owner: bool) -> impl IntoView {
    let action = |path: &'static str, label: &'static str, quiet: bool| {
        view! {
            <form method="post" action=format!("/vms/{}/{path}", vm.id) class="inline-form">
                <input type="hidden" name="csrf" value=csrf.clone() />
                <button type="submit" class="button button-small" class:button-quiet=quiet
                    data-testid=format!("vm-{path}-{}", vm.hostname)>
                    {label}
                </button>
            </form>
        }
    };
    let toggle = match vm.state.as_str() {
        "running" => Some(action("stop", "Stop", true)),
        "stopped" => Some(action("start", "Start", false)),
        _ => None,
    };
    let destroy = (!matches!(vm.state.as_str(), "creating" | "destroying")).then(|| {
        let label = if matches!(vm.state.as_str(), "failed" | "missing") {
            "Remove…"
        } else {
            "Destroy…"
        };
        view! {
            <details class="confirm">
                <summary class="button button-small button-quiet" data-testid=format!("vm-destroy-open-{}", vm.hostname)>{label}</summary>
                <div class="confirm-box">
                    <p>{format!("Destroy {} and its disk? This cannot be undone.", vm.hostname)}</p>
                    {action("destroy", "Destroy", false)}
                </div>
            </details>
        }
    });
    let login = match (&vm.ssh_command, vm.addresses.is_empty()) {
        (Some(command), _) => Either::Left(
            view! { <code class="copy" title="Select to copy">{command.clone()}</code> },
        ),
        (None, true) => {
            Either::Right(view! { <span class="hint">"no address yet"</span> }.into_any())
        }
        (None, false) => {
            Either::Right(view! { <span class="hint">{vm.addresses.join(", ")}</span> }.into_any())
        }
    };
    view! {
        <tr data-vm=vm.id data-state=vm.state.clone()>
            <td>
                <strong>{vm.hostname.clone()}</strong>
                <span class="hint">" " {vm.image.clone()}</span>
            </td>
            {owner.then(|| view! { <td>{vm.owner.clone()}</td> })}
            <td>
                <span class=format!("status status-vm-{}", vm.state) data-testid=format!("vm-state-{}", vm.hostname)>
                    {state_label(&vm.state)}
                </span>
                {vm.error.clone().map(|e| {
                    // A failure in red; a note on a VM still on its way in grey.
                    let broken = matches!(vm.state.as_str(), "failed" | "missing" | "running" | "stopped");
                    view! { <p class:field-error=broken class:hint=!broken data-testid=format!("vm-error-{}", vm.hostname)>{e}</p> }
                })}
            </td>
            <td>{login}</td>
            <td><span class="nowrap">{vm.flavor.clone()}</span>" "<span class="hint">{vm.size.clone()}</span></td>
            <td class="row-actions">{toggle}{destroy}</td>
        </tr>
    }
}
