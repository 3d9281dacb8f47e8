//! Where the OpenStack backend's settings come from, in this order: the
//! `[vm.openstack]` settings, then the standard `OS_*` variables, then the
//! cloud named by `vm.openstack.cloud` (or `OS_CLOUD`) in `clouds.yaml`.
//! The first place that says something about a setting wins; a setting
//! nobody gives is an error naming the places it may come from.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::vms::backend::VmError;
use crate::vms::config::OpenStackConfig;

/// The domain users and projects are in when nobody names one (Keystone's
/// own default domain, what `openrc` files of small clouds use).
pub const DEFAULT_DOMAIN: &str = "Default";

/// Everything needed to log in to Keystone and pick endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Keystone v3, ending in `/v3` (added when missing).
    pub auth_url: String,
    pub method: AuthMethod,
    /// Only endpoints of this region; `None`: the first one listed.
    pub region: Option<String>,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// The `clouds.yaml` the cloud came from, if one did.
    pub clouds_yaml: Option<PathBuf>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A user's password, scoped to a project.
    Password {
        username: String,
        password: String,
        user_domain: NameOrId,
        project: Project,
    },
    /// An application credential (scoped to its project already).
    ApplicationCredential { id: String, secret: String },
}

impl AuthMethod {
    /// `password` or `application_credential` (Keystone's method names).
    pub fn name(&self) -> &'static str {
        match self {
            AuthMethod::Password { .. } => "password",
            AuthMethod::ApplicationCredential { .. } => "application_credential",
        }
    }
}

/// A domain by name or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(String),
}

/// The project a password login is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Project {
    Id(String),
    Name { name: String, domain: NameOrId },
}

// Never print secrets.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_url", &self.auth_url)
            .field("method", &self.method)
            .field("region", &self.region)
            .field("interface", &self.interface)
            .field("clouds_yaml", &self.clouds_yaml)
            .finish()
    }
}

impl fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::Password {
                username,
                user_domain,
                project,
                ..
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"<hidden>")
                .field("user_domain", user_domain)
                .field("project", project)
                .finish(),
            AuthMethod::ApplicationCredential { id, .. } => f
                .debug_struct("ApplicationCredential")
                .field("id", id)
                .field("secret", &"<hidden>")
                .finish(),
        }
    }
}

/// One place settings come from; `None`: it does not say.
#[derive(Default)]
struct Layer {
    auth_url: Option<String>,
    auth_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
    /// clouds.yaml's `domain_name`/`domain_id`: both user and project domain.
    domain_name: Option<String>,
    domain_id: Option<String>,
    application_credential_id: Option<String>,
    application_credential_secret: Option<String>,
    region: Option<String>,
    interface: Option<String>,
}

impl Layer {
    fn says_how_to_log_in(&self) -> bool {
        self.application_credential_id.is_some()
            || self.username.is_some()
            || self.auth_type.is_some()
    }

    fn uses_application_credential(&self) -> bool {
        self.application_credential_id.is_some()
            || self
                .auth_type
                .as_deref()
                .is_some_and(|t| t.contains("applicationcredential"))
    }
}

/// Resolves the settings. `env` reads a variable (`None` or empty: unset);
/// `HOME`, `XDG_CONFIG_HOME` and `OS_CLIENT_CONFIG_FILE` from it decide
/// where `clouds.yaml` is looked for.
pub fn resolve(
    config: &OpenStackConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, VmError> {
    let env = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let from_config = config_layer(config)?;
    let from_env = env_layer(&env);
    let cloud = clean(config.cloud.as_deref()).or_else(|| env("OS_CLOUD"));
    let (from_yaml, clouds_yaml) = match &cloud {
        Some(cloud) => {
            let (layer, path) = clouds_yaml_layer(cloud, &clouds_yaml_candidates(&env))?;
            (layer, Some(path))
        }
        None => (Layer::default(), None),
    };
    let layers = [&from_config, &from_env, &from_yaml];
    let pick = |get: fn(&Layer) -> &Option<String>| layers.iter().find_map(|l| get(l).clone());

    let auth_url = pick(|l| &l.auth_url).ok_or_else(|| {
        missing(
            "Keystone's address",
            "vm.openstack.auth_url",
            "OS_AUTH_URL",
            "auth.auth_url",
        )
    })?;
    let auth_url = normalize_auth_url(&auth_url)?;

    let uses_application_credential = layers
        .iter()
        .find(|l| l.says_how_to_log_in())
        .is_some_and(|l| l.uses_application_credential());
    let method = if uses_application_credential {
        let id = pick(|l| &l.application_credential_id).ok_or_else(|| {
            missing(
                "the application credential's id",
                "vm.openstack.application_credential_id",
                "OS_APPLICATION_CREDENTIAL_ID",
                "auth.application_credential_id",
            )
        })?;
        let secret = pick(|l| &l.application_credential_secret).ok_or_else(|| {
            missing(
                "the application credential's secret",
                "vm.openstack.application_credential_secret_file",
                "OS_APPLICATION_CREDENTIAL_SECRET",
                "auth.application_credential_secret",
            )
        })?;
        AuthMethod::ApplicationCredential { id, secret }
    } else {
        let username = pick(|l| &l.username).ok_or_else(|| {
            VmError::Refused(
                "OpenStack is not configured: no credentials. Set a user (vm.openstack.username, \
                 OS_USERNAME or auth.username in clouds.yaml) with a password, or an application \
                 credential (vm.openstack.application_credential_id, OS_APPLICATION_CREDENTIAL_ID \
                 or auth.application_credential_id in clouds.yaml)."
                    .into(),
            )
        })?;
        let password = pick(|l| &l.password).ok_or_else(|| {
            missing(
                "the password",
                "vm.openstack.password_file",
                "OS_PASSWORD",
                "auth.password",
            )
        })?;
        let domain = |name: fn(&Layer) -> &Option<String>, id: fn(&Layer) -> &Option<String>| {
            // Within one place, an id beats a name; an earlier place beats a later one.
            layers
                .iter()
                .find_map(|l| {
                    id(l)
                        .clone()
                        .map(NameOrId::Id)
                        .or_else(|| name(l).clone().map(NameOrId::Name))
                })
                .or_else(|| {
                    layers.iter().find_map(|l| {
                        l.domain_id
                            .clone()
                            .map(NameOrId::Id)
                            .or_else(|| l.domain_name.clone().map(NameOrId::Name))
                    })
                })
                .unwrap_or_else(|| NameOrId::Name(DEFAULT_DOMAIN.into()))
        };
        let user_domain = domain(|l| &l.user_domain_name, |l| &l.user_domain_id);
        let project_domain = domain(|l| &l.project_domain_name, |l| &l.project_domain_id);
        let project = layers
            .iter()
            .find_map(|l| match (&l.project_id, &l.project_name) {
                (Some(id), _) => Some(Project::Id(id.clone())),
                (None, Some(name)) => Some(Project::Name {
                    name: name.clone(),
                    domain: project_domain.clone(),
                }),
                (None, None) => None,
            })
            .ok_or_else(|| {
                missing(
                    "the project",
                    "vm.openstack.project_name",
                    "OS_PROJECT_NAME or OS_PROJECT_ID",
                    "auth.project_name or auth.project_id",
                )
            })?;
        AuthMethod::Password {
            username,
            password,
            user_domain,
            project,
        }
    };

    let interface = match pick(|l| &l.interface) {
        None => "public".to_string(),
        Some(i) => {
            let i = i.to_ascii_lowercase();
            let i = i.strip_suffix("url").unwrap_or(&i).to_string();
            if !matches!(i.as_str(), "public" | "internal" | "admin") {
                return Err(VmError::Refused(format!(
                    "OpenStack is not configured right: the interface is \"{i}\"; it must be \
                     public, internal or admin."
                )));
            }
            i
        }
    };

    Ok(Credentials {
        auth_url,
        method,
        region: pick(|l| &l.region),
        interface,
        clouds_yaml,
    })
}

fn missing(what: &str, setting: &str, variable: &str, yaml: &str) -> VmError {
    VmError::Refused(format!(
        "OpenStack is not configured: {what} is missing. Set {setting}, {variable}, or \
         {yaml} of the cloud in clouds.yaml."
    ))
}

fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// Keystone v3's base, whether the setting ends in `/v3` or not.
fn normalize_auth_url(url: &str) -> Result<String, VmError> {
    let trimmed = url.trim().trim_end_matches('/');
    if reqwest::Url::parse(trimmed).is_err() {
        return Err(VmError::Refused(format!(
            "OpenStack is not configured right: the auth URL \"{url}\" is not a URL."
        )));
    }
    Ok(if trimmed.ends_with("/v3") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v3")
    })
}

fn read_secret(setting: &str, path: &Path) -> Result<String, VmError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        VmError::Refused(format!(
            "OpenStack is not configured right: {setting} {} cannot be read ({e}).",
            path.display()
        ))
    })?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(VmError::Refused(format!(
            "OpenStack is not configured right: {setting} {} is empty.",
            path.display()
        )));
    }
    Ok(secret)
}

fn config_layer(config: &OpenStackConfig) -> Result<Layer, VmError> {
    let c = |v: &Option<String>| clean(v.as_deref());
    Ok(Layer {
        auth_url: c(&config.auth_url),
        auth_type: None,
        username: c(&config.username),
        password: match &config.password_file {
            Some(path) => Some(read_secret("vm.openstack.password_file", path)?),
            None => None,
        },
        project_name: c(&config.project_name),
        project_id: None,
        user_domain_name: c(&config.user_domain_name),
        user_domain_id: None,
        project_domain_name: c(&config.project_domain_name),
        project_domain_id: None,
        domain_name: None,
        domain_id: None,
        application_credential_id: c(&config.application_credential_id),
        application_credential_secret: match &config.application_credential_secret_file {
            Some(path) => Some(read_secret(
                "vm.openstack.application_credential_secret_file",
                path,
            )?),
            None => None,
        },
        region: c(&config.region),
        interface: c(&config.interface),
    })
}

fn env_layer(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    Layer {
        auth_url: env("OS_AUTH_URL"),
        auth_type: env("OS_AUTH_TYPE"),
        username: env("OS_USERNAME"),
        password: env("OS_PASSWORD"),
        project_name: env("OS_PROJECT_NAME").or_else(|| env("OS_TENANT_NAME")),
        project_id: env("OS_PROJECT_ID").or_else(|| env("OS_TENANT_ID")),
        user_domain_name: env("OS_USER_DOMAIN_NAME"),
        user_domain_id: env("OS_USER_DOMAIN_ID"),
        project_domain_name: env("OS_PROJECT_DOMAIN_NAME"),
        project_domain_id: env("OS_PROJECT_DOMAIN_ID"),
        domain_name: None,
        domain_id: None,
        application_credential_id: env("OS_APPLICATION_CREDENTIAL_ID"),
        application_credential_secret: env("OS_APPLICATION_CREDENTIAL_SECRET"),
        region: env("OS_REGION_NAME"),
        interface: env("OS_INTERFACE").or_else(|| env("OS_ENDPOINT_TYPE")),
    }
}

/// Where `clouds.yaml` is looked for, in order (the first file naming the
/// cloud is used): `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
/// `~/.config/openstack/clouds.yaml` (or under `XDG_CONFIG_HOME`),
/// `/etc/openstack/clouds.yaml`.
pub fn clouds_yaml_candidates(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = env("OS_CLIENT_CONFIG_FILE") {
        paths.push(PathBuf::from(file));
    }
    paths.push(PathBuf::from("clouds.yaml"));
    if let Some(config_home) = env("XDG_CONFIG_HOME") {
        paths.push(PathBuf::from(config_home).join("openstack/clouds.yaml"));
    }
    if let Some(home) = env("HOME") {
        paths.push(PathBuf::from(home).join(".config/openstack/clouds.yaml"));
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths.dedup();
    paths
}

fn clouds_yaml_layer(cloud: &str, candidates: &[PathBuf]) -> Result<(Layer, PathBuf), VmError> {
    for path in candidates {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(VmError::Refused(format!(
                    "OpenStack is not configured right: {} cannot be read ({e}).",
                    path.display()
                )));
            }
        };
        let file: Value = yaml_serde::from_str(&text).map_err(|e| {
            VmError::Refused(format!(
                "OpenStack is not configured right: {} is not valid YAML ({e}).",
                path.display()
            ))
        })?;
        if let Some(entry) = file.get("clouds").and_then(|c| c.get(cloud)) {
            return Ok((yaml_layer(entry), path.clone()));
        }
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(VmError::Refused(format!(
        "OpenStack is not configured right: the cloud \"{cloud}\" is in no clouds.yaml \
         (looked in {}).",
        looked.join(", ")
    )))
}

fn yaml_layer(entry: &Value) -> Layer {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => clean(Some(s)),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let auth = |key: &str| text(entry.get("auth").and_then(|a| a.get(key)));
    let top = |key: &str| text(entry.get(key));
    Layer {
        auth_url: auth("auth_url"),
        auth_type: top("auth_type"),
        username: auth("username"),
        password: auth("password"),
        project_name: auth("project_name").or_else(|| auth("tenant_name")),
        project_id: auth("project_id").or_else(|| auth("tenant_id")),
        user_domain_name: auth("user_domain_name"),
        user_domain_id: auth("user_domain_id"),
        project_domain_name: auth("project_domain_name"),
        project_domain_id: auth("project_domain_id"),
        domain_name: auth("domain_name"),
        domain_id: auth("domain_id"),
        application_credential_id: auth("application_credential_id"),
        application_credential_secret: auth("application_credential_secret"),
        region: top("region_name").or_else(|| {
            // `regions: [a, b]` or `regions: [{name: a}]`: the first.
            entry
                .get("regions")
                .and_then(|r| r.get(0))
                .and_then(|r| text(Some(r)).or_else(|| text(r.get("name"))))
        }),
        interface: top("interface").or_else(|| top("endpoint_type")),
    }
}
