//! An HTTP double of the parts of OpenStack Bootler uses: Keystone v3
//! (password and application-credential logins, a service catalog with
//! several interfaces and regions, expiring tokens), Nova (servers that
//! take a few looks to build, keypairs, flavors, actions, quota, limits,
//! hypervisors), Glance v2 (images, paged) and Neutron v2.0 (networks).
//! Bodies have the shapes of OpenStack's API reference, errors included.
//!
//! Self-contained (axum, tokio, serde_json, chrono, base64), so other test
//! binaries can include it with `#[path = ".../openstack_double/mod.rs"] mod
//! openstack_double;`.
//!
//! ```ignore
//! let double = Double::start().await;
//! let env = double.password_env(); // OS_AUTH_URL, OS_USERNAME, …
//! double.set_build_gets(2);        // BUILD for two GETs, then ACTIVE
//! ```

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

pub const USER: &str = "alice";
pub const USER_ID: &str = "9e1d2c3b4a5f46e7a8b9c0d1e2f3a4b5";
pub const PASSWORD: &str = "wonderland";
pub const DOMAIN: &str = "Default";
pub const DOMAIN_ID: &str = "default";
pub const PROJECT: &str = "demo";
pub const PROJECT_ID: &str = "4a8b0c1d2e3f40516273849506a7b8c9";
pub const APP_CRED_ID: &str = "3c6e1f0a9b8d4c7e8f2a1b0c9d8e7f6a";
pub const APP_CRED_SECRET: &str = "rabbit-hole-secret";
pub const REGION: &str = "RegionOne";
/// A second region: its endpoints are under `/r2/`.
pub const OTHER_REGION: &str = "RegionTwo";

pub const NETWORK_ID: &str = "5f1e2d3c-4b5a-4697-8877-665544332211";
pub const NETWORK: &str = "private";
pub const EXTERNAL_NETWORK_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";

pub const DEBIAN_12_ID: &str = "1d2c3b4a-5e6f-4a1b-9c8d-7e6f5a4b3c2d";
pub const DEBIAN_12_OLD_ID: &str = "2e3d4c5b-6f7a-4b2c-8d9e-8f7a6b5c4d3e";
pub const DEBIAN_13_ID: &str = "3f4e5d6c-7a8b-4c3d-9e0f-9a8b7c6d5e4f";
pub const UBUNTU_ID: &str = "4a5f6e7d-8b9c-4d4e-8f1a-0b9c8d7e6f5a";
pub const CIRROS_ID: &str = "5b6a7f8e-9c0d-4e5f-9a2b-1c0d9e8f7a6b";
pub const QUEUED_ID: &str = "6c7b8a9f-0d1e-4f6a-8b3c-2d1e0f9a8b7c";

/// Flavor ids: Nova's are strings, often small numbers, sometimes UUIDs.
pub const FLAVOR_TINY: &str = "1";
pub const FLAVOR_SMALL: &str = "2";
pub const FLAVOR_MEDIUM: &str = "3";
pub const FLAVOR_LARGE: &str = "c0ffee00-0000-4000-8000-000000000004";
/// A flavor without a disk: servers must boot from a volume.
pub const FLAVOR_VOLUME: &str = "vol-1";

pub const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";

type Shared = Arc<Mutex<Cloud>>;

/// A running double; stops when dropped.
pub struct Double {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    cloud: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Double {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Server {
    id: String,
    name: String,
    status: &'static str,
    gets: u32,
    n: u64,
    flavor: Value,
    image_id: String,
    network: String,
    key_name: Option<String>,
    metadata: Value,
    fault: Option<String>,
    created: String,
    request: Value,
}

struct Cloud {
    base: String,
    build_gets: u32,
    /// Servers from this image (name or id) go to ERROR with this fault.
    error_image: Option<(String, String)>,
    core_quota: Option<u64>,
    token_ttl: Duration,
    tokens: HashMap<String, Instant>,
    refuse_tokens: bool,
    admin: bool,
    failures: Vec<(Method, String)>,
    delays: Vec<(Method, String, Duration)>,
    page_size: usize,
    auth_count: u32,
    last_auth: Value,
    requests: Vec<String>,
    counter: u64,
    servers: BTreeMap<String, Server>,
    keypairs: BTreeMap<String, Value>,
    flavors: Vec<Value>,
    images: Vec<Value>,
    networks: Vec<Value>,
}

impl Double {
    pub async fn start() -> Double {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cloud = Arc::new(Mutex::new(Cloud::new(base.clone())));
        let app = Router::new().fallback(handle).with_state(cloud.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Double { base, cloud, task }
    }

    fn cloud(&self) -> MutexGuard<'_, Cloud> {
        self.cloud.lock().unwrap()
    }

    /// Keystone v3, as `OS_AUTH_URL` says it.
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.base)
    }

    /// `OS_*` variables for the password user.
    pub fn password_env(&self) -> HashMap<String, String> {
        [
            ("OS_AUTH_URL", self.auth_url()),
            ("OS_USERNAME", USER.into()),
            ("OS_PASSWORD", PASSWORD.into()),
            ("OS_PROJECT_NAME", PROJECT.into()),
            ("OS_USER_DOMAIN_NAME", DOMAIN.into()),
            ("OS_PROJECT_DOMAIN_NAME", DOMAIN.into()),
            ("OS_REGION_NAME", REGION.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `OS_*` variables for the application credential.
    pub fn application_credential_env(&self) -> HashMap<String, String> {
        [
            ("OS_AUTH_URL", self.auth_url()),
            ("OS_AUTH_TYPE", "v3applicationcredential".into()),
            ("OS_APPLICATION_CREDENTIAL_ID", APP_CRED_ID.into()),
            ("OS_APPLICATION_CREDENTIAL_SECRET", APP_CRED_SECRET.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Servers answer BUILD to this many GETs, then ACTIVE (default 1).
    pub fn set_build_gets(&self, gets: u32) {
        self.cloud().build_gets = gets;
    }

    /// Servers from this image (name or id) end in ERROR with `fault`.
    pub fn set_error_image(&self, image: &str, fault: &str) {
        self.cloud().error_image = Some((image.into(), fault.into()));
    }

    /// The project's core quota (`None`: unlimited); over it, Nova answers
    /// 403 overLimit.
    pub fn set_core_quota(&self, cores: Option<u64>) {
        self.cloud().core_quota = cores;
    }

    /// How long new tokens live (default an hour).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.cloud().token_ttl = ttl;
    }

    /// Every token given so far stops working (as if it expired early).
    pub fn revoke_tokens(&self) {
        self.cloud().tokens.clear();
    }

    /// Logins work but the services refuse every token (401), as when
    /// Keystone and Nova disagree.
    pub fn set_refuse_tokens(&self, refuse: bool) {
        self.cloud().refuse_tokens = refuse;
    }

    /// Requests with this method whose path ends with `path_suffix` get a
    /// 500.
    pub fn fail(&self, method: &str, path_suffix: &str) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        self.cloud().failures.push((method, path_suffix.into()));
    }

    /// Requests with this method whose path ends with `path_suffix` are
    /// answered only after `delay`.
    pub fn delay(&self, method: &str, path_suffix: &str, delay: Duration) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        self.cloud()
            .delays
            .push((method, path_suffix.into(), delay));
    }

    /// Whether the user may see hypervisors (admin-only by default policy).
    pub fn set_admin(&self, admin: bool) {
        self.cloud().admin = admin;
    }

    /// Glance's page size when the client gives no limit (default 2).
    pub fn set_page_size(&self, size: usize) {
        self.cloud().page_size = size;
    }

    /// Another network of the project; returns its id.
    pub fn add_network(&self, name: &str) -> String {
        let mut cloud = self.cloud();
        let id = cloud.next_uuid();
        let network = network(&id, name, PROJECT_ID, false);
        cloud.networks.push(network);
        id
    }

    /// A keypair the user made themselves.
    pub fn add_keypair(&self, name: &str, public_key: &str) {
        let keypair = keypair(name, public_key);
        self.cloud().keypairs.insert(name.into(), keypair);
    }

    pub fn auth_count(&self) -> u32 {
        self.cloud().auth_count
    }

    /// The body of the last login (secrets included).
    pub fn last_auth(&self) -> Value {
        self.cloud().last_auth.clone()
    }

    /// `METHOD /path?query` of every request, in order, with the status
    /// answered: `GET /compute/v2.1/…/servers/x -> 200`.
    pub fn requests(&self) -> Vec<String> {
        self.cloud().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.cloud().requests.clear();
    }

    /// Keypair name → public key.
    pub fn keypairs(&self) -> BTreeMap<String, String> {
        self.cloud()
            .keypairs
            .iter()
            .map(|(name, k)| (name.clone(), k["public_key"].as_str().unwrap().into()))
            .collect()
    }

    /// The `server` object Nova was sent for this server.
    pub fn server_request(&self, id: &str) -> Option<Value> {
        self.cloud().servers.get(id).map(|s| s.request.clone())
    }

    pub fn server_count(&self) -> usize {
        self.cloud().servers.len()
    }
}

impl Cloud {
    fn new(base: String) -> Cloud {
        let flavor = |id: &str, name: &str, vcpus: u64, ram: u64, disk: u64| {
            json!({
                "id": id,
                "name": name,
                "vcpus": vcpus,
                "ram": ram,
                "disk": disk,
                "OS-FLV-EXT-DATA:ephemeral": 0,
                "OS-FLV-DISABLED:disabled": false,
                "os-flavor-access:is_public": true,
                "swap": "",
                "rxtx_factor": 1.0,
                "links": [],
            })
        };
        let image = |id: &str, name: &str, status: &str, created: &str| {
            json!({
                "id": id,
                "name": name,
                "status": status,
                "visibility": "public",
                "protected": false,
                "os_hidden": false,
                "disk_format": "qcow2",
                "container_format": "bare",
                "min_disk": 0,
                "min_ram": 0,
                "size": 419_430_400,
                "checksum": "d41d8cd98f00b204e9800998ecf8427e",
                "owner": "admin-project",
                "created_at": created,
                "updated_at": created,
                "tags": [],
                "self": format!("/v2/images/{id}"),
                "file": format!("/v2/images/{id}/file"),
                "schema": "/v2/schemas/image",
            })
        };
        Cloud {
            base,
            build_gets: 1,
            error_image: None,
            core_quota: None,
            token_ttl: Duration::from_secs(3600),
            tokens: HashMap::new(),
            refuse_tokens: false,
            admin: false,
            failures: Vec::new(),
            delays: Vec::new(),
            page_size: 2,
            auth_count: 0,
            last_auth: Value::Null,
            requests: Vec::new(),
            counter: 0,
            servers: BTreeMap::new(),
            keypairs: BTreeMap::new(),
            flavors: vec![
                flavor(FLAVOR_TINY, "m1.tiny", 1, 512, 1),
                flavor(FLAVOR_SMALL, "m1.small", 1, 2048, 20),
                flavor(FLAVOR_MEDIUM, "m1.medium", 2, 4096, 40),
                flavor(FLAVOR_LARGE, "m1.large", 4, 8192, 80),
                flavor(FLAVOR_VOLUME, "v1.small", 1, 2048, 0),
            ],
            images: vec![
                image(DEBIAN_12_ID, "debian-12", "active", "2025-06-01T10:00:00Z"),
                image(
                    DEBIAN_12_OLD_ID,
                    "debian-12",
                    "deactivated",
                    "2024-01-01T10:00:00Z",
                ),
                image(DEBIAN_13_ID, "debian-13", "active", "2025-09-01T10:00:00Z"),
                image(UBUNTU_ID, "ubuntu-24.04", "active", "2025-04-01T10:00:00Z"),
                image(CIRROS_ID, "cirros-0.6", "active", "2024-06-01T10:00:00Z"),
                image(
                    QUEUED_ID,
                    "debian-14-upload",
                    "queued",
                    "2025-10-01T10:00:00Z",
                ),
            ],
            networks: vec![
                network(NETWORK_ID, NETWORK, PROJECT_ID, false),
                network(EXTERNAL_NETWORK_ID, "public", "admin-project", true),
            ],
        }
    }

    fn next_uuid(&mut self) -> String {
        self.counter += 1;
        let n = self.counter;
        format!("{n:08x}-aaaa-4bbb-8ccc-{n:012x}")
    }

    fn cores_used(&self) -> u64 {
        self.servers
            .values()
            .map(|s| s.flavor["vcpus"].as_u64().unwrap_or(0))
            .sum()
    }

    fn ram_used(&self) -> u64 {
        self.servers
            .values()
            .map(|s| s.flavor["ram"].as_u64().unwrap_or(0))
            .sum()
    }
}

fn network(id: &str, name: &str, project: &str, external: bool) -> Value {
    json!({
        "id": id,
        "name": name,
        "status": "ACTIVE",
        "admin_state_up": true,
        "shared": false,
        "router:external": external,
        "project_id": project,
        "tenant_id": project,
        "subnets": [],
        "mtu": 1450,
        "availability_zones": ["nova"],
        "tags": [],
        "description": "",
    })
}

fn keypair(name: &str, public_key: &str) -> Value {
    let sum: u32 = public_key.bytes().map(u32::from).sum();
    json!({
        "name": name,
        "public_key": public_key,
        "fingerprint": format!("{:02x}:{:02x}:{:02x}:{:02x}", sum % 256, sum / 7 % 256, sum / 13 % 256, sum / 17 % 256),
        "user_id": USER_ID,
        "type": "ssh",
        "id": 1,
        "created_at": "2025-01-01T00:00:00.000000",
        "deleted": false,
        "deleted_at": null,
        "updated_at": null,
    })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Nova's error body: `{"badRequest": {"code": 400, "message": "…"}}`.
fn nova_error(status: StatusCode, kind: &str, message: &str) -> Response {
    reply(
        status,
        json!({ kind: { "code": status.as_u16(), "message": message } }),
    )
}

fn unauthorized() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({ "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        } }),
    )
}

fn not_found_text() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 Not Found\n\nThe resource could not be found.\n\n   ",
    )
        .into_response()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    State(cloud): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let line = match uri.query() {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    };
    let delay = cloud
        .lock()
        .unwrap()
        .delays
        .iter()
        .find(|(m, suffix, _)| *m == method && path.ends_with(suffix.as_str()))
        .map(|(_, _, d)| *d);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut cloud = cloud.lock().unwrap();
    let response = route(&mut cloud, &method, &path, &query, &headers, &body);
    cloud
        .requests
        .push(format!("{line} -> {}", response.status().as_u16()));
    response
}

fn route(
    cloud: &mut Cloud,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if cloud
        .failures
        .iter()
        .any(|(m, suffix)| m == method && path.ends_with(suffix.as_str()))
    {
        return nova_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "computeFault",
            "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.\n<class 'oslo_db.exception.DBConnectionError'>",
        );
    }
    let rest = path
        .strip_prefix("/internal")
        .or_else(|| path.strip_prefix("/r2"))
        .unwrap_or(path);
    let segments: Vec<String> = rest
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let ["identity", "v3", "auth", "tokens"] = segments.as_slice() {
        return if *method == Method::POST {
            keystone_login(cloud, body)
        } else {
            not_found_text()
        };
    }
    let token_ok = headers
        .get("x-auth-token")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| cloud.tokens.get(t))
        .is_some_and(|expires| *expires > Instant::now());
    if !token_ok || cloud.refuse_tokens {
        return unauthorized();
    }
    match segments.as_slice() {
        ["compute", "v2.1", project, rest @ ..] if *project == PROJECT_ID => {
            nova(cloud, method, rest, query, body)
        }
        ["image", "v2", rest @ ..] => glance(cloud, method, rest, query),
        ["network", "v2.0", rest @ ..] => neutron(cloud, method, rest, query),
        _ => not_found_text(),
    }
}

fn catalog(base: &str) -> Value {
    let endpoint = |interface: &str, region: &str, url: String| {
        json!({
            "id": format!("{interface}-{region}-{}", url.len()),
            "interface": interface,
            "region": region,
            "region_id": region,
            "url": url,
        })
    };
    json!([
        { "type": "identity", "name": "keystone", "id": "k1", "endpoints": [
            endpoint("public", REGION, format!("{base}/identity")),
        ] },
        { "type": "placement", "name": "placement", "id": "p1", "endpoints": [
            endpoint("public", REGION, format!("{base}/placement")),
        ] },
        { "type": "compute", "name": "nova", "id": "n1", "endpoints": [
            endpoint("public", REGION, format!("{base}/compute/v2.1/{PROJECT_ID}")),
            endpoint("internal", REGION, format!("{base}/internal/compute/v2.1/{PROJECT_ID}")),
            endpoint("public", OTHER_REGION, format!("{base}/r2/compute/v2.1/{PROJECT_ID}")),
        ] },
        { "type": "image", "name": "glance", "id": "g1", "endpoints": [
            endpoint("public", REGION, format!("{base}/image")),
            // Some clouds list Glance with its version.
            endpoint("internal", REGION, format!("{base}/internal/image/v2/")),
            endpoint("public", OTHER_REGION, format!("{base}/r2/image")),
        ] },
        { "type": "network", "name": "neutron", "id": "q1", "endpoints": [
            endpoint("public", REGION, format!("{base}/network/")),
            endpoint("internal", REGION, format!("{base}/internal/network")),
            endpoint("public", OTHER_REGION, format!("{base}/r2/network")),
        ] },
    ])
}

fn keystone_login(cloud: &mut Cloud, body: &[u8]) -> Response {
    cloud.auth_count += 1;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({ "error": { "code": 400, "title": "Bad Request", "message": "Expecting to find auth in request body." } }),
        );
    };
    cloud.last_auth = request.clone();
    let identity = &request["auth"]["identity"];
    let method = identity["methods"][0].as_str().unwrap_or_default();
    let ok = match method {
        "password" => {
            let user = &identity["password"]["user"];
            let domain_ok = |d: &Value| d["name"] == DOMAIN || d["id"] == DOMAIN_ID;
            let project = &request["auth"]["scope"]["project"];
            user["name"] == USER
                && domain_ok(&user["domain"])
                && user["password"] == PASSWORD
                && (project["id"] == PROJECT_ID
                    || (project["name"] == PROJECT && domain_ok(&project["domain"])))
        }
        "application_credential" => {
            let credential = &identity["application_credential"];
            credential["id"] == APP_CRED_ID && credential["secret"] == APP_CRED_SECRET
        }
        _ => false,
    };
    if !ok {
        return unauthorized();
    }
    cloud.counter += 1;
    let token = format!("gAAAAAB-token-{}", cloud.counter);
    let ttl = cloud.token_ttl;
    cloud.tokens.insert(token.clone(), Instant::now() + ttl);
    let now = chrono::Utc::now();
    let expires = now + chrono::TimeDelta::from_std(ttl).unwrap();
    let format = "%Y-%m-%dT%H:%M:%S%.6fZ";
    let mut body = json!({ "token": {
        "methods": [method],
        "user": {
            "id": USER_ID,
            "name": USER,
            "domain": { "id": DOMAIN_ID, "name": DOMAIN },
            "password_expires_at": null,
        },
        "project": {
            "id": PROJECT_ID,
            "name": PROJECT,
            "domain": { "id": DOMAIN_ID, "name": DOMAIN },
        },
        "roles": [{ "id": "r1", "name": "member" }, { "id": "r2", "name": "reader" }],
        "catalog": catalog(&cloud.base),
        "is_domain": false,
        "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
        "issued_at": now.format(format).to_string(),
        "expires_at": expires.format(format).to_string(),
    } });
    if method == "application_credential" {
        body["token"]["application_credential"] =
            json!({ "id": APP_CRED_ID, "name": "bootler", "restricted": true });
    }
    (
        StatusCode::CREATED,
        [("X-Subject-Token", token.as_str())],
        axum::Json(body),
    )
        .into_response()
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn nova(
    cloud: &mut Cloud,
    method: &Method,
    path: &[&str],
    query: &[(String, String)],
    body: &[u8],
) -> Response {
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match path {
        ["servers"] if get => {
            let name = param(query, "name");
            let servers: Vec<Value> = cloud
                .servers
                .values()
                .filter(|s| name.is_none_or(|n| name_matches(n, &s.name)))
                .map(|s| json!({ "id": s.id, "name": s.name, "links": [] }))
                .collect();
            reply(StatusCode::OK, json!({ "servers": servers }))
        }
        ["servers"] if post => create_server(cloud, body),
        ["servers", id] if get => {
            let build_gets = cloud.build_gets;
            // The ids of the image that breaks servers, and the fault.
            let breaking = cloud.error_image.clone().map(|(image, fault)| {
                let ids: Vec<String> = cloud
                    .images
                    .iter()
                    .filter(|i| i["id"] == image.as_str() || i["name"] == image.as_str())
                    .filter_map(|i| i["id"].as_str().map(String::from))
                    .collect();
                (ids, fault)
            });
            match cloud.servers.get_mut(*id) {
                Some(server) => {
                    if server.status == "BUILD" && server.gets >= build_gets {
                        match breaking {
                            Some((ids, fault)) if ids.contains(&server.image_id) => {
                                server.status = "ERROR";
                                server.fault = Some(fault);
                            }
                            _ => server.status = "ACTIVE",
                        }
                    }
                    server.gets += 1;
                    reply(StatusCode::OK, json!({ "server": show_server(server) }))
                }
                None => nova_error(
                    StatusCode::NOT_FOUND,
                    "itemNotFound",
                    &format!("Instance {id} could not be found."),
                ),
            }
        }
        ["servers", id] if *method == Method::DELETE => match cloud.servers.remove(*id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => nova_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                &format!("Instance {id} could not be found."),
            ),
        },
        ["servers", id, "action"] if post => {
            let Some(server) = cloud.servers.get_mut(*id) else {
                return nova_error(
                    StatusCode::NOT_FOUND,
                    "itemNotFound",
                    &format!("Instance {id} could not be found."),
                );
            };
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let (action, from, to) = if request.get("os-stop").is_some() {
                ("stop", "ACTIVE", "SHUTOFF")
            } else if request.get("os-start").is_some() {
                ("start", "SHUTOFF", "ACTIVE")
            } else {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "There is no such action: unknown",
                );
            };
            if server.status != from {
                return nova_error(
                    StatusCode::CONFLICT,
                    "conflictingRequest",
                    &format!(
                        "Cannot '{action}' instance {id} while it is in vm_state {}",
                        vm_state(server.status)
                    ),
                );
            }
            server.status = to;
            StatusCode::ACCEPTED.into_response()
        }
        ["flavors"] if get => {
            let flavors: Vec<Value> = cloud
                .flavors
                .iter()
                .map(|f| json!({ "id": f["id"], "name": f["name"], "links": [] }))
                .collect();
            reply(StatusCode::OK, json!({ "flavors": flavors }))
        }
        ["flavors", "detail"] if get => reply(StatusCode::OK, json!({ "flavors": cloud.flavors })),
        ["flavors", id] if get => match cloud.flavors.iter().find(|f| f["id"] == *id) {
            Some(flavor) => reply(StatusCode::OK, json!({ "flavor": flavor })),
            None => nova_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                &format!("Flavor {id} could not be found."),
            ),
        },
        ["os-keypairs"] if get => {
            let keypairs: Vec<Value> = cloud
                .keypairs
                .values()
                .map(|k| json!({ "keypair": { "name": k["name"], "public_key": k["public_key"], "fingerprint": k["fingerprint"], "type": "ssh" } }))
                .collect();
            reply(StatusCode::OK, json!({ "keypairs": keypairs }))
        }
        ["os-keypairs", name] if get => match cloud.keypairs.get(*name) {
            Some(keypair) => reply(StatusCode::OK, json!({ "keypair": keypair })),
            None => nova_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                &format!("Keypair {name} not found for user {USER_ID}"),
            ),
        },
        ["os-keypairs"] if post => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let name = request["keypair"]["name"].as_str().unwrap_or_default();
            let Some(public_key) = request["keypair"]["public_key"].as_str() else {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "The double does not generate keypairs: send public_key.",
                );
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '))
            {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "Keypair data is invalid: Keypair name contains unsafe characters",
                );
            }
            if cloud.keypairs.contains_key(name) {
                return nova_error(
                    StatusCode::CONFLICT,
                    "conflictingRequest",
                    &format!("Key pair '{name}' already exists."),
                );
            }
            let keypair = keypair(name, public_key);
            cloud.keypairs.insert(name.into(), keypair.clone());
            reply(StatusCode::OK, json!({ "keypair": keypair }))
        }
        ["os-hypervisors", which @ ("detail" | "statistics")] if get => {
            if !cloud.admin {
                let rule = if *which == "detail" {
                    "list-detail"
                } else {
                    "statistics"
                };
                return nova_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    &format!(
                        "Policy doesn't allow os_compute_api:os-hypervisors:{rule} to be performed."
                    ),
                );
            }
            let hypervisors = json!([
                { "id": 1, "hypervisor_hostname": "cn1", "hypervisor_type": "QEMU", "state": "up", "status": "enabled", "vcpus": 32, "vcpus_used": 4, "memory_mb": 131_072, "memory_mb_used": 8192, "local_gb": 900, "local_gb_used": 40, "running_vms": 2 },
                { "id": 2, "hypervisor_hostname": "cn2", "hypervisor_type": "QEMU", "state": "up", "status": "enabled", "vcpus": 64, "vcpus_used": 0, "memory_mb": 262_144, "memory_mb_used": 512, "local_gb": 1800, "local_gb_used": 0, "running_vms": 0 },
            ]);
            if *which == "detail" {
                reply(StatusCode::OK, json!({ "hypervisors": hypervisors }))
            } else {
                reply(
                    StatusCode::OK,
                    json!({ "hypervisor_statistics": { "count": 2, "vcpus": 96, "vcpus_used": 4, "memory_mb": 393_216, "memory_mb_used": 8704 } }),
                )
            }
        }
        ["limits"] if get => {
            let quota = cloud.core_quota.map_or(-1, |q| q as i64);
            reply(
                StatusCode::OK,
                json!({ "limits": { "rate": [], "absolute": {
                    "maxTotalCores": quota,
                    "totalCoresUsed": cloud.cores_used(),
                    "maxTotalRAMSize": 51200,
                    "totalRAMUsed": cloud.ram_used(),
                    "maxTotalInstances": 10,
                    "totalInstancesUsed": cloud.servers.len(),
                    "maxServerMeta": 128,
                    "maxImageMeta": 128,
                    "maxPersonality": 5,
                    "maxPersonalitySize": 10240,
                    "maxTotalKeypairs": 100,
                    "maxSecurityGroups": 10,
                    "maxSecurityGroupRules": 20,
                    "maxServerGroups": 10,
                    "maxServerGroupMembers": 10,
                    "maxTotalFloatingIps": 10,
                    "totalFloatingIpsUsed": 0,
                    "totalSecurityGroupsUsed": 1,
                    "totalServerGroupsUsed": 0,
                } } }),
            )
        }
        _ => not_found_text(),
    }
}

/// Nova filters server names by regular expression; the double knows
/// `^literal$` (with `\` escapes) and substrings.
fn name_matches(filter: &str, name: &str) -> bool {
    match filter.strip_prefix('^').and_then(|f| f.strip_suffix('$')) {
        Some(exact) => {
            let mut literal = String::new();
            let mut escaped = false;
            for c in exact.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                escaped = false;
                literal.push(c);
            }
            literal == name
        }
        None => name.contains(filter),
    }
}

fn vm_state(status: &str) -> &'static str {
    match status {
        "BUILD" => "building",
        "ACTIVE" => "active",
        "SHUTOFF" => "stopped",
        "ERROR" => "error",
        _ => "unknown",
    }
}

fn show_server(server: &Server) -> Value {
    let n = server.n;
    let addresses = if matches!(server.status, "ACTIVE" | "SHUTOFF") {
        json!({ server.network.clone(): [
            { "addr": format!("203.0.113.{n}"), "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": format!("fa:16:3e:00:00:{n:02x}") },
            { "addr": format!("10.0.0.{n}"), "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": format!("fa:16:3e:00:00:{n:02x}") },
            { "addr": format!("fd00::{n:x}"), "version": 6, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": format!("fa:16:3e:00:00:{n:02x}") },
        ] })
    } else {
        json!({})
    };
    let power_state = match server.status {
        "ACTIVE" => 1,
        "SHUTOFF" => 4,
        _ => 0,
    };
    let mut shown = json!({
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "tenant_id": PROJECT_ID,
        "user_id": USER_ID,
        "metadata": server.metadata,
        "hostId": "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7",
        "image": if server.image_id.is_empty() { json!("") } else { json!({ "id": server.image_id, "links": [] }) },
        "flavor": { "id": server.flavor["id"], "links": [] },
        "created": server.created,
        "updated": server.created,
        "addresses": addresses,
        "accessIPv4": "",
        "accessIPv6": "",
        "key_name": server.key_name,
        "progress": 0,
        "config_drive": "",
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": "nova",
        "OS-EXT-STS:power_state": power_state,
        "OS-EXT-STS:task_state": if server.status == "BUILD" { json!("spawning") } else { Value::Null },
        "OS-EXT-STS:vm_state": vm_state(server.status),
        "OS-SRV-USG:launched_at": null,
        "OS-SRV-USG:terminated_at": null,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{ "name": "default" }],
        "links": [],
    });
    if let Some(fault) = &server.fault {
        shown["fault"] = json!({
            "code": 500,
            "created": server.created,
            "message": fault,
            "details": "Traceback (most recent call last): …",
        });
    }
    shown
}

fn create_server(cloud: &mut Cloud, body: &[u8]) -> Response {
    let bad = |message: &str| nova_error(StatusCode::BAD_REQUEST, "badRequest", message);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad("Malformed request body");
    };
    let server = &request["server"];
    let Some(name) = server["name"].as_str().filter(|n| !n.trim().is_empty()) else {
        return bad(
            "Invalid input for field/attribute name. Value: None. None is not of type 'string'",
        );
    };
    let flavor_ref = server["flavorRef"].as_str().unwrap_or_default();
    let Some(flavor) = cloud
        .flavors
        .iter()
        .find(|f| f["id"] == flavor_ref)
        .cloned()
    else {
        return bad(&format!("Flavor {flavor_ref} could not be found."));
    };
    let bdm = server["block_device_mapping_v2"].as_array();
    if flavor["disk"] == 0 && bdm.is_none() {
        return nova_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only volume-backed servers are allowed for flavors with zero disk.",
        );
    }
    let image_id = match server["imageRef"].as_str().filter(|i| !i.is_empty()) {
        Some(image) => image.to_string(),
        None => bdm
            .and_then(|b| b.first())
            .and_then(|b| b["uuid"].as_str())
            .unwrap_or_default()
            .to_string(),
    };
    if !cloud
        .images
        .iter()
        .any(|i| i["id"] == image_id.as_str() && i["status"] == "active")
    {
        return bad(&format!("Image {image_id} could not be found."));
    }
    let key_name = server["key_name"].as_str().map(String::from);
    if let Some(key) = &key_name
        && !cloud.keypairs.contains_key(key)
    {
        return bad("Invalid key_name provided.");
    }
    let network_id = server["networks"][0]["uuid"].as_str().unwrap_or_default();
    let Some(network) = cloud.networks.iter().find(|n| n["id"] == network_id) else {
        return bad(&format!("Network {network_id} could not be found."));
    };
    let network = network["name"].as_str().unwrap_or_default().to_string();
    if let Some(user_data) = server["user_data"].as_str()
        && base64::engine::general_purpose::STANDARD
            .decode(user_data)
            .is_err()
    {
        return bad("User data needs to be valid base 64.");
    }
    let vcpus = flavor["vcpus"].as_u64().unwrap_or(0);
    if let Some(quota) = cloud.core_quota {
        let used = cloud.cores_used();
        if used + vcpus > quota {
            return nova_error(
                StatusCode::FORBIDDEN,
                "overLimit",
                &format!(
                    "Quota exceeded for cores: Requested {vcpus}, but already used {used} of {quota} cores"
                ),
            );
        }
    }
    let id = cloud.next_uuid();
    let n = cloud.counter;
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    cloud.servers.insert(
        id.clone(),
        Server {
            id: id.clone(),
            name: name.into(),
            status: "BUILD",
            gets: 0,
            n: n % 250 + 2,
            flavor,
            image_id,
            network,
            key_name,
            metadata: server["metadata"].clone(),
            fault: None,
            created,
            request: server.clone(),
        },
    );
    reply(
        StatusCode::ACCEPTED,
        json!({ "server": {
            "id": id,
            "links": [],
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{ "name": "default" }],
            "adminPass": "Tr0ub4dor&3",
        } }),
    )
}

fn glance(
    cloud: &mut Cloud,
    method: &Method,
    path: &[&str],
    query: &[(String, String)],
) -> Response {
    if *method != Method::GET {
        return not_found_text();
    }
    match path {
        ["images"] => {
            let status = param(query, "status");
            let name = param(query, "name");
            let limit = param(query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(cloud.page_size);
            let marker = param(query, "marker");
            // Glance sorts by created_at, newest first.
            let mut images: Vec<&Value> = cloud
                .images
                .iter()
                .filter(|i| status.is_none_or(|s| i["status"] == s))
                .filter(|i| name.is_none_or(|n| i["name"] == n))
                .collect();
            images.sort_by(|a, b| {
                b["created_at"]
                    .as_str()
                    .cmp(&a["created_at"].as_str())
            });
            let start = match marker {
                Some(marker) => match images.iter().position(|i| i["id"] == marker) {
                    Some(at) => at + 1,
                    None => {
                        return (
                            StatusCode::BAD_REQUEST,
                            format!("400 Bad Request\n\nmarker not found: {marker}\n\n   "),
                        )
                            .into_response();
                    }
                },
                None => 0,
            };
            let page: Vec<Value> = images
                .iter()
                .skip(start)
                .take(limit)
                .map(|i| (*i).clone())
                .collect();
            let mut filters = String::new();
            if let Some(s) = status {
                filters.push_str(&format!("&status={s}"));
            }
            if let Some(n) = name {
                filters.push_str(&format!("&name={n}"));
            }
            let mut body = json!({
                "images": page,
                "first": format!("/v2/images?{}", filters.trim_start_matches('&')),
                "schema": "/v2/schemas/images",
            });
            if start + limit < images.len()
                && let Some(last) = page.last()
            {
                body["next"] = json!(format!(
                    "/v2/images?marker={}{filters}&limit={limit}",
                    last["id"].as_str().unwrap_or_default()
                ));
            }
            reply(StatusCode::OK, body)
        }
        ["images", id] => match cloud.images.iter().find(|i| i["id"] == *id) {
            Some(image) => reply(StatusCode::OK, image.clone()),
            None => (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                format!(
                    "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID {id}<br /><br />\n\n\n\n </body>\n</html>"
                ),
            )
                .into_response(),
        },
        _ => not_found_text(),
    }
}

fn neutron(
    cloud: &mut Cloud,
    method: &Method,
    path: &[&str],
    query: &[(String, String)],
) -> Response {
    if *method != Method::GET {
        return not_found_text();
    }
    match path {
        ["networks"] => {
            let networks: Vec<&Value> = cloud
                .networks
                .iter()
                .filter(|n| {
                    query.iter().all(|(k, v)| match k.as_str() {
                        "name" | "id" | "project_id" | "tenant_id" => n[k.as_str()] == v.as_str(),
                        _ => true,
                    })
                })
                .collect();
            reply(StatusCode::OK, json!({ "networks": networks }))
        }
        ["networks", id] => match cloud.networks.iter().find(|n| n["id"] == *id) {
            Some(network) => reply(StatusCode::OK, json!({ "network": network })),
            None => reply(
                StatusCode::NOT_FOUND,
                json!({ "NeutronError": {
                    "type": "NetworkNotFound",
                    "message": format!("Network {id} could not be found."),
                    "detail": "",
                } }),
            ),
        },
        _ => not_found_text(),
    }
}
