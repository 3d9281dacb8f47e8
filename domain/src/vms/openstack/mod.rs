//! The OpenStack backend: Keystone v3 for a token, Nova for servers and
//! keypairs, Glance for images, Neutron for the network.
//!
//! Settings come from `[vm.openstack]`, then the `OS_*` variables, then
//! `clouds.yaml` (see [`credentials`]). Every request has a time limit;
//! OpenStack's own error messages are passed on to people.

mod client;
pub mod credentials;

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use self::client::{Client, Reply, Service};
pub use self::credentials::{AuthMethod, Credentials};
use crate::vms::backend::{Capacity, VmBackend, VmError, VmSpec, VmState, VmStatus};
use crate::vms::config::{Image, OpenStackConfig};

/// How long one request may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many pages of Glance's image list are read.
const MAX_IMAGE_PAGES: usize = 50;

pub struct OpenStackBackend {
    client: Client,
    network: Option<String>,
    image_prefix: Option<String>,
}

impl std::fmt::Debug for OpenStackBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackBackend")
            .field("credentials", &self.client.credentials)
            .field("network", &self.network)
            .field("image_prefix", &self.image_prefix)
            .finish()
    }
}

impl OpenStackBackend {
    /// From the settings, the process's `OS_*` variables and `clouds.yaml`.
    /// Nothing is asked of OpenStack yet; a missing setting is an error
    /// naming it.
    pub fn new(config: &OpenStackConfig) -> Result<OpenStackBackend, VmError> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    /// As [`new`](Self::new), with the variables read through `env` (tests
    /// give a map; `HOME` from it decides where `clouds.yaml` is looked for).
    pub fn with_env(
        config: &OpenStackConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OpenStackBackend, VmError> {
        let credentials = credentials::resolve(config, &env)?;
        Self::with_credentials(config, credentials, DEFAULT_TIMEOUT)
    }

    /// With resolved credentials and a time limit per request.
    pub fn with_credentials(
        config: &OpenStackConfig,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<OpenStackBackend, VmError> {
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        Ok(OpenStackBackend {
            client: Client::new(credentials, timeout)?,
            network: clean(&config.network),
            image_prefix: clean(&config.image_prefix),
        })
    }

    /// The same backend with another time limit per request.
    pub fn with_timeout(self, timeout: Duration) -> Result<OpenStackBackend, VmError> {
        Ok(OpenStackBackend {
            client: Client::new(self.client.credentials, timeout)?,
            network: self.network,
            image_prefix: self.image_prefix,
        })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.client.credentials
    }

    async fn call(
        &self,
        service: Service,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, VmError> {
        self.client
            .request(service, method, path, query, body)
            .await
    }

    async fn get(
        &self,
        service: Service,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Reply, VmError> {
        self.call(service, Method::GET, path, query, None).await
    }

    /// The keypair holding `key` for `owner`: `bootler-<owner>`, or
    /// `bootler-<owner>-<fingerprint>` when that name holds another key.
    /// Existing keypairs are never changed or removed.
    async fn keypair(&self, owner: &str, key: &str) -> Result<String, VmError> {
        let key = openssh_key(key);
        if key.is_empty() {
            return Err(VmError::Refused("The SSH key is empty.".into()));
        }
        let base = format!("bootler-{}", keypair_safe(owner));
        let names = [base.clone(), format!("{base}-{}", short_fingerprint(&key))];
        for name in &names {
            for _ in 0..2 {
                let reply = self
                    .get(Service::Compute, &["os-keypairs", name], &[])
                    .await?;
                if reply.status == StatusCode::NOT_FOUND {
                    let body = json!({ "keypair": { "name": name, "public_key": key } });
                    let reply = self
                        .call(
                            Service::Compute,
                            Method::POST,
                            &["os-keypairs"],
                            &[],
                            Some(&body),
                        )
                        .await?;
                    if reply.status == StatusCode::CONFLICT {
                        // Made meanwhile by another job: look again.
                        continue;
                    }
                    if !reply.is_success() {
                        return Err(reply.error());
                    }
                    tracing::info!(keypair = %name, "OpenStack keypair created");
                    return Ok(name.clone());
                }
                let found: Value = reply.json()?;
                let existing = found["keypair"]["public_key"].as_str().unwrap_or_default();
                if openssh_key(existing) == key {
                    return Ok(name.clone());
                }
                break;
            }
        }
        Err(VmError::Refused(format!(
            "OpenStack already has keypairs named {} holding other keys.",
            names.join(" and ")
        )))
    }

    /// A Nova flavor's id and disk size, by id or name.
    async fn flavor(&self, reference: &str) -> Result<(String, u64), VmError> {
        if reference.trim().is_empty() {
            return Err(VmError::Refused("No OpenStack flavor was given.".into()));
        }
        let list: Value = self
            .get(Service::Compute, &["flavors", "detail"], &[])
            .await?
            .json()?;
        let flavors = list["flavors"].as_array().cloned().unwrap_or_default();
        let disk = |f: &Value| f["disk"].as_u64().unwrap_or(0);
        let id = |f: &Value| f["id"].as_str().unwrap_or_default().to_string();
        if let Some(f) = flavors.iter().find(|f| f["id"].as_str() == Some(reference)) {
            return Ok((id(f), disk(f)));
        }
        let named: Vec<&Value> = flavors
            .iter()
            .filter(|f| f["name"].as_str() == Some(reference))
            .collect();
        match named.as_slice() {
            [f] => return Ok((id(f), disk(f))),
            [] => {}
            _ => {
                return Err(VmError::Refused(format!(
                    "OpenStack has several flavors named \"{reference}\"; use its id."
                )));
            }
        }
        // A private flavor the list left out may still be reachable by id.
        let reply = self
            .get(Service::Compute, &["flavors", reference], &[])
            .await?;
        if reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST {
            return Err(VmError::Refused(format!(
                "OpenStack has no flavor \"{reference}\"."
            )));
        }
        let found: Value = reply.json()?;
        Ok((id(&found["flavor"]), disk(&found["flavor"])))
    }

    /// A Glance image's id, by id or name (of several active images with
    /// one name, the newest).
    async fn image(&self, reference: &str) -> Result<String, VmError> {
        if reference.trim().is_empty() {
            return Err(VmError::Refused("No OpenStack image was given.".into()));
        }
        let not_active = |image: &Value| {
            VmError::Refused(format!(
                "The image \"{reference}\" cannot be used now: OpenStack says it is {}.",
                image["status"].as_str().unwrap_or("not active")
            ))
        };
        if looks_like_uuid(reference) {
            let reply = self
                .get(Service::Image, &["images", reference], &[])
                .await?;
            if reply.is_success() {
                let image: Value = reply.json()?;
                if image["status"].as_str() != Some("active") {
                    return Err(not_active(&image));
                }
                return Ok(reference.to_string());
            }
            if reply.status != StatusCode::NOT_FOUND {
                return Err(reply.error());
            }
        }
        let list: Value = self
            .get(Service::Image, &["images"], &[("name", reference)])
            .await?
            .json()?;
        let images = list["images"].as_array().cloned().unwrap_or_default();
        let newest_active = images
            .iter()
            .filter(|i| i["status"].as_str() == Some("active"))
            .max_by(|a, b| {
                a["created_at"]
                    .as_str()
                    .unwrap_or_default()
                    .cmp(b["created_at"].as_str().unwrap_or_default())
            });
        match (newest_active, images.first()) {
            (Some(image), _) => Ok(image["id"].as_str().unwrap_or_default().to_string()),
            (None, Some(image)) => Err(not_active(image)),
            (None, None) => Err(VmError::Refused(format!(
                "OpenStack has no image \"{reference}\"."
            ))),
        }
    }

    /// The Neutron network servers join: the configured one (name or id),
    /// or the project's only one.
    async fn network(&self) -> Result<String, VmError> {
        if let Some(reference) = &self.network {
            if looks_like_uuid(reference) {
                let reply = self
                    .get(Service::Network, &["networks", reference], &[])
                    .await?;
                if reply.is_success() {
                    return Ok(reference.clone());
                }
                if reply.status != StatusCode::NOT_FOUND {
                    return Err(reply.error());
                }
            }
            let list: Value = self
                .get(Service::Network, &["networks"], &[("name", reference)])
                .await?
                .json()?;
            let found = list["networks"].as_array().cloned().unwrap_or_default();
            return match found.as_slice() {
                [n] => Ok(n["id"].as_str().unwrap_or_default().to_string()),
                [] => Err(VmError::Refused(format!(
                    "OpenStack has no network \"{reference}\" (vm.openstack.network)."
                ))),
                _ => Err(VmError::Refused(format!(
                    "OpenStack has several networks named \"{reference}\": set \
                     vm.openstack.network to the id of one."
                ))),
            };
        }
        let list: Value = self
            .get(Service::Network, &["networks"], &[])
            .await?
            .json()?;
        let all = list["networks"].as_array().cloned().unwrap_or_default();
        // External (provider) networks carry floating IPs, not servers.
        let usable: Vec<&Value> = all
            .iter()
            .filter(|n| n["router:external"].as_bool() != Some(true))
            .collect();
        let project = self.client.session().await?.project_id.clone();
        let own: Vec<&Value> = usable
            .iter()
            .copied()
            .filter(|n| {
                project.is_some()
                    && (n["project_id"].as_str() == project.as_deref()
                        || n["tenant_id"].as_str() == project.as_deref())
            })
            .collect();
        let only = match (usable.as_slice(), own.as_slice()) {
            ([n], _) | (_, [n]) => *n,
            ([], _) => {
                return Err(VmError::Refused(
                    "OpenStack shows this project no network for servers: set \
                     vm.openstack.network."
                        .into(),
                ));
            }
            _ => {
                let names: Vec<&str> = usable
                    .iter()
                    .map(|n| n["name"].as_str().unwrap_or("(unnamed)"))
                    .collect();
                return Err(VmError::Refused(format!(
                    "OpenStack offers this project several networks ({}): set \
                     vm.openstack.network to one.",
                    names.join(", ")
                )));
            }
        };
        Ok(only["id"].as_str().unwrap_or_default().to_string())
    }

    /// Servers named exactly `name`.
    async fn servers_named(&self, name: &str) -> Result<Vec<String>, VmError> {
        let pattern = format!("^{}$", regex_escape(name));
        let list: Value = self
            .get(Service::Compute, &["servers"], &[("name", &pattern)])
            .await?
            .json()?;
        Ok(list["servers"]
            .as_array()
            .map(|servers| {
                servers
                    .iter()
                    .filter(|s| s["name"].as_str() == Some(name))
                    .filter_map(|s| s["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `os-start` or `os-stop`; a conflict because it already is there is
    /// fine.
    async fn action(&self, id: &str, action: &str, wanted: VmState) -> Result<(), VmError> {
        let body = json!({ action: null });
        let reply = self
            .call(
                Service::Compute,
                Method::POST,
                &["servers", id, "action"],
                &[],
                Some(&body),
            )
            .await?;
        if reply.is_success() {
            return Ok(());
        }
        if reply.status == StatusCode::NOT_FOUND {
            return Err(VmError::Refused(format!(
                "OpenStack has no server {id} (any more)."
            )));
        }
        if reply.status == StatusCode::CONFLICT {
            let now = self.status(id).await?;
            if now.state == wanted {
                return Ok(());
            }
            if now.state == VmState::Building {
                return Err(VmError::Unavailable(format!(
                    "The server is still being built: {}",
                    reply.message().unwrap_or_else(|| "try again later.".into())
                )));
            }
        }
        Err(reply.error())
    }
}

#[async_trait]
impl VmBackend for OpenStackBackend {
    fn kind(&self) -> &'static str {
        "openstack"
    }

    async fn create(&self, spec: &VmSpec) -> Result<String, VmError> {
        // What is only looked up first: a refusal there changes nothing.
        let (flavor, flavor_disk) = self.flavor(&spec.flavor).await?;
        let image = self.image(&spec.image).await?;
        let network = self.network().await?;
        let key_name = self.keypair(&spec.owner, &spec.ssh_key).await?;
        let mut server = json!({
            "name": spec.name,
            "flavorRef": flavor,
            "imageRef": image,
            "key_name": key_name,
            "networks": [{ "uuid": network }],
            "user_data": STANDARD.encode(cloud_config(&spec.hostname)),
            "metadata": {
                "bootler_hostname": shorten(&spec.hostname, 255),
                "bootler_owner": shorten(&spec.owner, 255),
            },
        });
        if flavor_disk == 0 && spec.disk_gib > 0 {
            // A flavor without a disk: the server boots from a volume of
            // the asked size, removed with it.
            server["imageRef"] = json!("");
            server["block_device_mapping_v2"] = json!([{
                "boot_index": 0,
                "uuid": image,
                "source_type": "image",
                "destination_type": "volume",
                "volume_size": spec.disk_gib,
                "delete_on_termination": true,
            }]);
        }
        let body = json!({ "server": server });
        let made = self
            .call(
                Service::Compute,
                Method::POST,
                &["servers"],
                &[],
                Some(&body),
            )
            .await
            .and_then(|reply| reply.json::<Value>());
        match made {
            Ok(made) => match made["server"]["id"].as_str() {
                Some(id) => {
                    tracing::info!(server = %id, name = %spec.name, "OpenStack server requested");
                    Ok(id.to_string())
                }
                None => Err(VmError::Unavailable(
                    "OpenStack accepted the server but gave no id for it.".into(),
                )),
            },
            Err(VmError::Unavailable(reason)) => {
                // The answer may have been lost with the server made: find
                // it by its (unique) name rather than leave it behind.
                match self.servers_named(&spec.name).await {
                    Ok(ids) if ids.len() == 1 => {
                        tracing::warn!(%reason, server = %ids[0], "OpenStack made the server despite the error");
                        Ok(ids[0].clone())
                    }
                    _ => Err(VmError::Unavailable(reason)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn status(&self, id: &str) -> Result<VmStatus, VmError> {
        let reply = self.get(Service::Compute, &["servers", id], &[]).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(VmStatus {
                state: VmState::Missing,
                addresses: Vec::new(),
                fault: None,
            });
        }
        let server: Value = reply.json()?;
        Ok(server_status(&server["server"]))
    }

    async fn start(&self, id: &str) -> Result<(), VmError> {
        self.action(id, "os-start", VmState::Running).await
    }

    async fn stop(&self, id: &str) -> Result<(), VmError> {
        self.action(id, "os-stop", VmState::Stopped).await
    }

    async fn destroy(&self, id: &str) -> Result<(), VmError> {
        let reply = self
            .call(
                Service::Compute,
                Method::DELETE,
                &["servers", id],
                &[],
                None,
            )
            .await?;
        if reply.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(reply.error())
    }

    async fn capacity(&self) -> Result<Capacity, VmError> {
        let mut capacity = Capacity::default();
        let mut parts = Vec::new();
        let hypervisors = self
            .get(Service::Compute, &["os-hypervisors", "detail"], &[])
            .await?;
        if hypervisors.is_success() {
            let list: Value = hypervisors.json()?;
            let all = list["hypervisors"].as_array().cloned().unwrap_or_default();
            let cores: Vec<u32> = all
                .iter()
                .filter_map(|h| h["vcpus"].as_u64())
                .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
                .collect();
            let memory: Vec<u64> = all.iter().filter_map(|h| h["memory_mb"].as_u64()).collect();
            capacity.max_host_cores = cores.iter().copied().max();
            capacity.total_cores = (!cores.is_empty()).then(|| cores.iter().sum());
            capacity.total_memory_mib = (!memory.is_empty()).then(|| memory.iter().sum());
            parts.push(format!("{} hypervisors", all.len()));
        } else if matches!(
            hypervisors.status,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ) {
            parts.push("hypervisors visible only to OpenStack administrators".to_string());
        } else {
            return Err(hypervisors.error());
        }
        let limits = self.get(Service::Compute, &["limits"], &[]).await?;
        if limits.is_success() {
            let limits: Value = limits.json()?;
            let absolute = &limits["limits"]["absolute"];
            let used = |used: &str, max: &str, unit: &str| {
                let max = absolute[max].as_i64()?;
                let used = absolute[used].as_i64().unwrap_or(0);
                Some(if max < 0 {
                    format!("{used} {unit} (no limit)")
                } else {
                    format!("{used} of {max} {unit}")
                })
            };
            let quota: Vec<String> = [
                used("totalCoresUsed", "maxTotalCores", "cores"),
                used("totalRAMUsed", "maxTotalRAMSize", "MiB memory"),
                used("totalInstancesUsed", "maxTotalInstances", "servers"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !quota.is_empty() {
                parts.push(format!("project uses {}", quota.join(", ")));
            }
        } else if matches!(limits.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            parts.push("project limits not visible".to_string());
        } else {
            return Err(limits.error());
        }
        let credentials = &self.client.credentials;
        let host = reqwest::Url::parse(&credentials.auth_url)
            .ok()
            .and_then(|u| u.host_str().map(String::from))
            .unwrap_or_else(|| credentials.auth_url.clone());
        let region = credentials
            .region
            .as_deref()
            .map(|r| format!(", region {r}"))
            .unwrap_or_default();
        capacity.description = format!("OpenStack at {host}{region}: {}", parts.join("; "));
        Ok(capacity)
    }

    async fn images(&self) -> Result<Vec<Image>, VmError> {
        let mut images = Vec::new();
        let mut query: Vec<(String, String)> = vec![("status".into(), "active".into())];
        for _ in 0..MAX_IMAGE_PAGES {
            let pairs: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let page: Value = self
                .get(Service::Image, &["images"], &pairs)
                .await?
                .json()?;
            for image in page["images"].as_array().into_iter().flatten() {
                let (Some(id), Some(name)) = (image["id"].as_str(), image["name"].as_str()) else {
                    continue;
                };
                if image["status"].as_str().is_some_and(|s| s != "active") {
                    continue;
                }
                if self
                    .image_prefix
                    .as_deref()
                    .is_some_and(|prefix| !name.starts_with(prefix))
                {
                    continue;
                }
                images.push(Image {
                    name: name.to_string(),
                    reference: id.to_string(),
                    login: None,
                });
            }
            // Glance's `next` is a link with the marker (and the filters).
            let next = page["next"].as_str().and_then(|next| {
                reqwest::Url::parse("http://glance.invalid/")
                    .ok()?
                    .join(next)
                    .ok()
            });
            match next {
                Some(next) => {
                    query = next
                        .query_pairs()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    if !query.iter().any(|(k, _)| k == "status") {
                        query.push(("status".into(), "active".into()));
                    }
                }
                None => break,
            }
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }
}

/// Nova's view of a server, as Bootler's.
fn server_status(server: &Value) -> VmStatus {
    let status = server["status"].as_str().unwrap_or("UNKNOWN");
    let state = match status {
        "BUILD" | "REBUILD" => VmState::Building,
        "ACTIVE" | "REBOOT" | "HARD_REBOOT" | "RESIZE" | "VERIFY_RESIZE" | "REVERT_RESIZE"
        | "MIGRATING" | "PASSWORD" | "RESCUE" => VmState::Running,
        "SHUTOFF" | "PAUSED" | "SUSPENDED" | "SHELVED" | "SHELVED_OFFLOADED" | "STOPPED" => {
            VmState::Stopped
        }
        "DELETED" | "SOFT_DELETED" => VmState::Missing,
        _ => VmState::Error,
    };
    let fault = (state == VmState::Error).then(|| {
        server["fault"]["message"]
            .as_str()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from)
            .unwrap_or_else(|| {
                format!("OpenStack reports the server as {status} without saying why.")
            })
    });
    // Fixed addresses first, then floating ones; each once.
    let mut found: Vec<(bool, String)> = Vec::new();
    if let Some(networks) = server["addresses"].as_object() {
        for address in networks.values().filter_map(Value::as_array).flatten() {
            if let Some(addr) = address["addr"].as_str() {
                let floating = address["OS-EXT-IPS:type"].as_str() == Some("floating");
                if !found.iter().any(|(_, a)| a == addr) {
                    found.push((floating, addr.to_string()));
                }
            }
        }
    }
    found.sort_by_key(|(floating, _)| *floating);
    VmStatus {
        state,
        addresses: found.into_iter().map(|(_, a)| a).collect(),
        fault,
    }
}

/// The cloud-config that names the guest.
fn cloud_config(hostname: &str) -> String {
    // A JSON string is a YAML string.
    let name = Value::String(hostname.to_string());
    format!("#cloud-config\nhostname: {name}\npreserve_hostname: false\n")
}

/// `algorithm blob`, without the comment.
fn openssh_key(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first 12 hex digits of the key's SHA-256.
fn short_fingerprint(key: &str) -> String {
    let blob = key.split_whitespace().nth(1).unwrap_or(key);
    let digest = match STANDARD.decode(blob) {
        Ok(bytes) => Sha256::digest(&bytes),
        Err(_) => Sha256::digest(key.as_bytes()),
    };
    hex::encode(digest)[..12].to_string()
}

/// What Nova accepts in a keypair name: letters, digits, `-` and `_`.
fn keypair_safe(owner: &str) -> String {
    let safe: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    shorten(&safe, 200)
}

fn shorten(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn looks_like_uuid(text: &str) -> bool {
    let hex: Vec<char> = text.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.iter().all(char::is_ascii_hexdigit)
}

/// `text` as a regular expression matching itself (Nova filters names by
/// regular expression).
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fixed_first_and_faults() {
        let server = json!({
            "status": "ERROR",
            "fault": { "code": 500, "message": "No valid host was found. " },
            "addresses": { "net": [
                { "addr": "203.0.113.5", "OS-EXT-IPS:type": "floating" },
                { "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed" },
                { "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed" },
            ] },
        });
        let status = server_status(&server);
        assert_eq!(status.state, VmState::Error);
        assert_eq!(status.fault.as_deref(), Some("No valid host was found."));
        assert_eq!(status.addresses, ["10.0.0.5", "203.0.113.5"]);
        assert_eq!(
            server_status(&json!({"status": "SHELVED_OFFLOADED"})).state,
            VmState::Stopped
        );
        assert!(server_status(&json!({"status": "ACTIVE"})).fault.is_none());
    }

    #[test]
    fn error_bodies() {
        let m = |body: &str| client::error_message(body.as_bytes());
        assert_eq!(
            m(r#"{"overLimit": {"code": 403, "message": "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores"}}"#).as_deref(),
            Some("Quota exceeded for cores: Requested 4, but already used 18 of 20 cores")
        );
        assert_eq!(
            m(r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#).as_deref(),
            Some("The request you have made requires authentication.")
        );
        assert_eq!(
            m(r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}"#).as_deref(),
            Some("Network x could not be found.")
        );
        assert_eq!(
            m("<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1>No image found with ID x<br /><br /></body></html>").as_deref(),
            Some("No image found with ID x")
        );
        assert_eq!(
            m("404 Not Found\n\nThe resource could not be found.\n\n   ").as_deref(),
            Some("404 Not Found The resource could not be found.")
        );
        assert_eq!(m(""), None);
    }

    #[test]
    fn names_and_keys() {
        assert_eq!(keypair_safe("jane.doe@example.org"), "jane-doe-example-org");
        assert_eq!(
            openssh_key("ssh-ed25519 AAAA comment here"),
            "ssh-ed25519 AAAA"
        );
        assert_eq!(short_fingerprint("ssh-ed25519 AAAA").len(), 12);
        assert!(looks_like_uuid("0b5e9c2a-1f3d-4c5e-9a7b-2c3d4e5f6a7b"));
        assert!(!looks_like_uuid("debian-12"));
        assert_eq!(regex_escape("bootler-1-a.b"), "bootler-1-a\\.b");
        assert!(cloud_config("web-1").contains("hostname: \"web-1\"\n"));
    }
}
