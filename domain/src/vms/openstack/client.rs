//! Talking to OpenStack: a Keystone v3 token (kept until shortly before it
//! expires, renewed once when a service answers 401), endpoints from its
//! service catalog, and OpenStack's error bodies turned into sentences.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::credentials::{AuthMethod, Credentials, NameOrId, Project};
use crate::vms::backend::VmError;

/// A token is renewed when it has less than this left.
const RENEW_BEFORE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The OpenStack services Bootler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Nova.
    Compute,
    /// Glance.
    Image,
    /// Neutron.
    Network,
}

impl Service {
    /// The type in Keystone's service catalog.
    fn catalog_type(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Image => "image",
            Service::Network => "network",
        }
    }

    /// For messages.
    pub fn label(self) -> &'static str {
        match self {
            Service::Compute => "compute service (Nova)",
            Service::Image => "image service (Glance)",
            Service::Network => "network service (Neutron)",
        }
    }

    /// The API version path the catalog's (often unversioned) endpoint gets;
    /// Nova's endpoint carries its version.
    fn version(self) -> Option<&'static str> {
        match self {
            Service::Compute => None,
            Service::Image => Some("v2"),
            Service::Network => Some("v2.0"),
        }
    }
}

/// A service's answer.
#[derive(Debug)]
pub struct Reply {
    pub service: Service,
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body of a successful answer, parsed; an unsuccessful answer is
    /// turned into its error.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, VmError> {
        if !self.is_success() {
            return Err(self.error());
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            VmError::Unavailable(format!(
                "OpenStack's {} sent an answer Bootler does not understand ({e}).",
                self.service.label()
            ))
        })
    }

    /// OpenStack's own message, if it gave one.
    pub fn message(&self) -> Option<String> {
        error_message(&self.body)
    }

    /// The error for an unsuccessful answer: the service's fault (5xx, 429)
    /// may pass; a refusal (4xx) stays.
    pub fn error(&self) -> VmError {
        let code = self.status.as_u16();
        let message = self.message();
        if self.status.is_server_error() || self.status == StatusCode::TOO_MANY_REQUESTS {
            VmError::Unavailable(match message {
                Some(m) => format!("OpenStack's {} failed: {m}", self.service.label()),
                None => format!("OpenStack's {} failed (HTTP {code}).", self.service.label()),
            })
        } else if self.status == StatusCode::UNAUTHORIZED {
            VmError::Refused(match message {
                Some(m) => format!("OpenStack refused Bootler's credentials: {m}"),
                None => "OpenStack refused Bootler's credentials.".into(),
            })
        } else {
            VmError::Refused(match message {
                Some(m) => format!("OpenStack refused: {m}"),
                None => format!(
                    "OpenStack's {} refused the request (HTTP {code}).",
                    self.service.label()
                ),
            })
        }
    }
}

/// The message in an OpenStack error body: Nova's
/// `{"badRequest": {"code": 400, "message": "…"}}`, Keystone's
/// `{"error": {"message": "…"}}`, Neutron's `{"NeutronError": {"message":
/// "…"}}`, or plain text and HTML (Glance, proxies).
pub fn error_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let message = match serde_json::from_str::<Value>(&text) {
        Ok(value) => json_message(&value),
        Err(_) => Some(plain_text(&text)),
    };
    message
        .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|m| !m.is_empty())
        .map(|m| shorten(&m, 500))
}

fn json_message(value: &Value) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => {
            if let Some(m) = text(map.get("message")).or_else(|| text(map.get("faultstring"))) {
                return Some(m);
            }
            if let (Some(title), Some(description)) =
                (text(map.get("title")), text(map.get("description")))
            {
                return Some(format!("{title}: {description}"));
            }
            // `{"overLimit": {...}}`, `{"error": {...}}`, `{"NeutronError": ...}`.
            map.values()
                .find_map(|inner| match inner {
                    Value::Object(_) | Value::String(_) => json_message(inner),
                    _ => None,
                })
                .or_else(|| text(map.get("title")))
        }
        _ => None,
    }
}

/// Text from an HTML error page: what follows its heading, tags removed.
fn plain_text(text: &str) -> String {
    let body = match text.rfind("</h1>") {
        Some(at) => &text[at + 5..],
        None => text,
    };
    let mut out = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The reason a request got no answer, without the URL (which may carry
/// the project id) but with its causes.
fn transport_error(service: &str, timeout: Duration, e: reqwest::Error) -> VmError {
    if e.is_timeout() {
        let seconds = timeout.as_secs();
        let unit = if seconds == 1 { "second" } else { "seconds" };
        return VmError::Unavailable(format!(
            "OpenStack's {service} did not answer within {seconds} {unit}."
        ));
    }
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    VmError::Unavailable(format!(
        "OpenStack's {service} could not be reached ({reason})."
    ))
}

/// A token and what came with it.
#[derive(Debug)]
pub struct Session {
    token: String,
    expires_at: Option<DateTime<Utc>>,
    catalog: Vec<CatalogService>,
    /// The project the token is scoped to.
    pub project_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct CatalogService {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, serde::Deserialize)]
struct Endpoint {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

impl Session {
    fn fresh(&self) -> bool {
        self.expires_at
            .is_none_or(|at| Utc::now() + RENEW_BEFORE < at)
    }
}

pub struct Client {
    http: reqwest::Client,
    pub credentials: Credentials,
    timeout: Duration,
    session: Mutex<Option<Arc<Session>>>,
}

impl Client {
    pub fn new(credentials: Credentials, timeout: Duration) -> Result<Client, VmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("bootler/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                VmError::Unavailable(format!("Bootler cannot make an HTTP client ({e})."))
            })?;
        Ok(Client {
            http,
            credentials,
            timeout,
            session: Mutex::new(None),
        })
    }

    /// The current token, logging in when there is none or it is about to
    /// expire. Callers wait for one login together.
    pub async fn session(&self) -> Result<Arc<Session>, VmError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && session.fresh()
        {
            return Ok(session.clone());
        }
        let session = Arc::new(self.authenticate().await?);
        *current = Some(session.clone());
        Ok(session)
    }

    /// Forgets `token` (a service said 401), unless a newer one replaced it.
    async fn forget(&self, token: &str) {
        let mut current = self.session.lock().await;
        if current.as_ref().is_some_and(|s| s.token == token) {
            *current = None;
        }
    }

    fn auth_body(&self) -> Value {
        let domain = |d: &NameOrId| match d {
            NameOrId::Name(name) => json!({ "name": name }),
            NameOrId::Id(id) => json!({ "id": id }),
        };
        match &self.credentials.method {
            AuthMethod::Password {
                username,
                password,
                user_domain,
                project,
            } => {
                let project = match project {
                    Project::Id(id) => json!({ "id": id }),
                    Project::Name { name, domain: d } => {
                        json!({ "name": name, "domain": domain(d) })
                    }
                };
                json!({ "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": { "user": {
                            "name": username,
                            "domain": domain(user_domain),
                            "password": password,
                        } },
                    },
                    "scope": { "project": project },
                } })
            }
            AuthMethod::ApplicationCredential { id, secret } => json!({ "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": { "id": id, "secret": secret },
                },
            } }),
        }
    }

    async fn authenticate(&self) -> Result<Session, VmError> {
        const LABEL: &str = "identity service (Keystone)";
        let url = format!("{}/auth/tokens", self.credentials.auth_url);
        tracing::debug!(%url, method = self.credentials.method.name(), "OpenStack login");
        let response = self
            .http
            .post(&url)
            .json(&self.auth_body())
            .send()
            .await
            .map_err(|e| transport_error(LABEL, self.timeout, e))?;
        let status = response.status();
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|t| t.to_str().ok())
            .map(String::from);
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(LABEL, self.timeout, e))?;
        if !status.is_success() {
            let message = error_message(&body);
            tracing::warn!(%status, ?message, "OpenStack login failed");
            return Err(match status {
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    VmError::Unavailable(match message {
                        Some(m) => format!("OpenStack's {LABEL} failed: {m}"),
                        None => format!("OpenStack's {LABEL} failed (HTTP {}).", s.as_u16()),
                    })
                }
                StatusCode::UNAUTHORIZED => VmError::Refused(match message {
                    Some(m) => format!("OpenStack refused Bootler's credentials: {m}"),
                    None => "OpenStack refused Bootler's credentials.".into(),
                }),
                s => VmError::Refused(match message {
                    Some(m) => format!("OpenStack refused Bootler's login: {m}"),
                    None => format!("OpenStack refused Bootler's login (HTTP {}).", s.as_u16()),
                }),
            });
        }
        let token = token.ok_or_else(|| {
            VmError::Unavailable(format!(
                "OpenStack's {LABEL} sent no token (no X-Subject-Token header)."
            ))
        })?;
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Token,
        }
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            expires_at: Option<String>,
            #[serde(default)]
            catalog: Vec<CatalogService>,
            #[serde(default)]
            project: Option<ProjectRef>,
        }
        #[derive(serde::Deserialize)]
        struct ProjectRef {
            id: String,
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            VmError::Unavailable(format!(
                "OpenStack's {LABEL} sent a token Bootler does not understand ({e})."
            ))
        })?;
        let expires_at = answer
            .token
            .expires_at
            .as_deref()
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&Utc));
        if answer.token.catalog.is_empty() {
            return Err(VmError::Refused(
                "OpenStack gave Bootler a token without a service catalog: the credentials \
                 are not scoped to a project."
                    .into(),
            ));
        }
        Ok(Session {
            token,
            expires_at,
            catalog: answer.token.catalog,
            project_id: answer.token.project.map(|p| p.id),
        })
    }

    /// The service's endpoint for the configured interface and region.
    fn endpoint(&self, session: &Session, service: Service) -> Result<Url, VmError> {
        let interface = &self.credentials.interface;
        let region = self.credentials.region.as_deref();
        let endpoints: Vec<&Endpoint> = session
            .catalog
            .iter()
            .filter(|s| s.kind == service.catalog_type())
            .flat_map(|s| &s.endpoints)
            .collect();
        if endpoints.is_empty() {
            return Err(VmError::Refused(format!(
                "OpenStack's service catalog has no {}.",
                service.label()
            )));
        }
        let endpoint = endpoints.iter().find(|e| {
            e.interface
                .trim_end_matches("URL")
                .eq_ignore_ascii_case(interface)
                && region.is_none_or(|r| {
                    e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r)
                })
        });
        let Some(endpoint) = endpoint else {
            let mut offered: Vec<String> = endpoints
                .iter()
                .map(|e| match e.region_id.as_deref().or(e.region.as_deref()) {
                    Some(r) => format!("{} in {r}", e.interface),
                    None => e.interface.clone(),
                })
                .collect();
            offered.dedup();
            return Err(VmError::Refused(format!(
                "OpenStack's service catalog has no {interface} endpoint for its {}{} (it \
                 offers: {}).",
                service.label(),
                region
                    .map(|r| format!(" in region {r}"))
                    .unwrap_or_default(),
                offered.join(", ")
            )));
        };
        let mut url = Url::parse(&endpoint.url).map_err(|e| {
            VmError::Refused(format!(
                "OpenStack's service catalog lists a bad address for its {} ({e}).",
                service.label()
            ))
        })?;
        if let Some(version) = service.version() {
            // Glance's and Neutron's endpoints are usually unversioned;
            // some clouds list them with the version.
            let path = url.path().trim_end_matches('/').to_string();
            let base = path
                .strip_suffix(version)
                .filter(|p| p.ends_with('/'))
                .unwrap_or(&path)
                .trim_end_matches('/')
                .to_string();
            url.set_path(&format!("{base}/{version}"));
        }
        Ok(url)
    }

    /// One request to a service. Any HTTP answer comes back (callers decide
    /// what a 404 means) except 401, which makes it log in again and try
    /// once more; no answer at all is `Unavailable`.
    pub async fn request(
        &self,
        service: Service,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, VmError> {
        let mut retried = false;
        loop {
            let session = self.session().await?;
            let mut url = self.endpoint(&session, service)?;
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend(path);
            }
            if !query.is_empty() {
                url.query_pairs_mut().extend_pairs(query);
            }
            tracing::debug!(%method, path = %url.path(), "OpenStack request");
            let mut request = self
                .http
                .request(method.clone(), url)
                .header("X-Auth-Token", &session.token)
                .header("Accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| transport_error(service.label(), self.timeout, e))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| transport_error(service.label(), self.timeout, e))?;
            let reply = Reply {
                service,
                status,
                body: bytes.to_vec(),
            };
            if status == StatusCode::UNAUTHORIZED && !retried {
                tracing::info!(
                    service = service.label(),
                    "OpenStack token refused; logging in again"
                );
                self.forget(&session.token).await;
                retried = true;
                continue;
            }
            if !reply.is_success() {
                tracing::debug!(%status, message = ?reply.message(), "OpenStack answered an error");
            }
            return Ok(reply);
        }
    }
}
