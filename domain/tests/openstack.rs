//! The OpenStack VM backend against an HTTP double of Keystone, Nova,
//! Glance and Neutron (`openstack_double`), and, when asked, against a real
//! cloud (`live_cloud`, ignored by default: see its comment for the
//! variables it needs).

// Test code may fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod openstack_double;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use bootler_domain::vms::backend::{VmBackend, VmError, VmSpec, VmState, VmStatus};
use bootler_domain::vms::config::OpenStackConfig;
use bootler_domain::vms::openstack::{AuthMethod, OpenStackBackend};
use openstack_double::*;

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa ana@laptop";
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIlZ23mrdLLVBGgziLH8czrbyBUWzAKZTc6EA1H/3dqW bob@desk";

fn env_of(map: HashMap<String, String>) -> impl Fn(&str) -> Option<String> {
    move |name| map.get(name).cloned()
}

fn backend_with(double: &Double, config: OpenStackConfig) -> OpenStackBackend {
    OpenStackBackend::with_env(&config, env_of(double.password_env())).unwrap()
}

/// Password login through the `OS_*` variables.
fn backend(double: &Double) -> OpenStackBackend {
    backend_with(double, OpenStackConfig::default())
}

fn spec(name: &str, flavor: &str, image: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        hostname: "web-1".into(),
        vcpus: 1,
        memory_mib: 2048,
        disk_gib: 20,
        flavor: flavor.into(),
        image: image.into(),
        ssh_key: KEY_A.into(),
        owner: "ana".into(),
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, VmError>) -> String {
    match result {
        Err(VmError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, VmError>) -> String {
    match result {
        Err(VmError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Looks until the server leaves BUILD (the double takes a few looks).
async fn settled(backend: &OpenStackBackend, id: &str) -> VmStatus {
    for _ in 0..20 {
        let status = backend.status(id).await.unwrap();
        if status.state != VmState::Building {
            return status;
        }
    }
    panic!("server {id} is still building");
}

#[tokio::test]
async fn password_login_through_os_variables_keeps_its_token() {
    let double = Double::start().await;
    let backend = backend(&double);
    assert_eq!(backend.kind(), "openstack");
    assert!(matches!(
        backend.credentials().method,
        AuthMethod::Password { .. }
    ));
    // Nothing is asked before the first call.
    assert_eq!(double.auth_count(), 0);

    assert_eq!(backend.images().await.unwrap().len(), 4);
    backend.capacity().await.unwrap();
    backend.status("nothing-here").await.unwrap();
    assert_eq!(double.auth_count(), 1, "one token for all calls");

    let auth = double.last_auth();
    assert_eq!(auth["auth"]["identity"]["methods"][0], "password");
    let user = &auth["auth"]["identity"]["password"]["user"];
    assert_eq!(user["name"], USER);
    assert_eq!(user["password"], PASSWORD);
    assert_eq!(user["domain"]["name"], DOMAIN);
    let project = &auth["auth"]["scope"]["project"];
    assert_eq!(project["name"], PROJECT);
    assert_eq!(project["domain"]["name"], DOMAIN);
}

#[tokio::test]
async fn password_from_file_and_project_by_id() {
    let double = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let config = OpenStackConfig {
        auth_url: Some(format!("{}/identity/", double.base)),
        username: Some(USER.into()),
        password_file: Some(password),
        ..OpenStackConfig::default()
    };
    let env: HashMap<String, String> =
        [("OS_PROJECT_ID".to_string(), PROJECT_ID.to_string())].into();
    let backend = OpenStackBackend::with_env(&config, env_of(env)).unwrap();
    assert_eq!(backend.credentials().auth_url, double.auth_url());
    backend.images().await.unwrap();
    let auth = double.last_auth();
    assert_eq!(auth["auth"]["scope"]["project"]["id"], PROJECT_ID);
    assert_eq!(
        auth["auth"]["identity"]["password"]["user"]["domain"]["name"], "Default",
        "the default domain when none is named"
    );
}

#[tokio::test]
async fn application_credential_login() {
    let double = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, APP_CRED_SECRET).unwrap();
    let config = OpenStackConfig {
        auth_url: Some(double.auth_url()),
        application_credential_id: Some(APP_CRED_ID.into()),
        application_credential_secret_file: Some(secret),
        ..OpenStackConfig::default()
    };
    // The configuration's application credential wins over a password in
    // the variables.
    let backend = backend_with(&double, config);
    assert_eq!(
        backend.credentials().method.name(),
        "application_credential"
    );
    backend.images().await.unwrap();
    let auth = double.last_auth();
    assert_eq!(
        auth["auth"]["identity"]["methods"][0],
        "application_credential"
    );
    let credential = &auth["auth"]["identity"]["application_credential"];
    assert_eq!(credential["id"], APP_CRED_ID);
    assert_eq!(credential["secret"], APP_CRED_SECRET);
    assert!(
        auth["auth"].get("scope").is_none(),
        "no scope with an application credential"
    );

    // The same through the variables.
    let backend = OpenStackBackend::with_env(
        &OpenStackConfig::default(),
        env_of(double.application_credential_env()),
    )
    .unwrap();
    backend.capacity().await.unwrap();
    assert_eq!(double.auth_count(), 2);
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let double = Double::start().await;
    let mut env = double.password_env();
    env.insert("OS_PASSWORD".into(), "guess".into());
    let backend = OpenStackBackend::with_env(&OpenStackConfig::default(), env_of(env)).unwrap();
    let message = refused(backend.images().await);
    assert_eq!(
        message,
        "OpenStack refused Bootler's credentials: The request you have made requires authentication."
    );
}

#[tokio::test]
async fn a_token_refused_twice_is_refused() {
    let double = Double::start().await;
    double.set_refuse_tokens(true);
    let backend = backend(&double);
    let message = refused(backend.status("x").await);
    assert_eq!(
        message,
        "OpenStack refused Bootler's credentials: The request you have made requires authentication."
    );
    assert_eq!(double.auth_count(), 2, "logged in again once");
    let message = refused(backend.capacity().await);
    assert!(
        message.starts_with("OpenStack refused Bootler's credentials"),
        "{message}"
    );
}

#[tokio::test]
async fn endpoints_follow_interface_and_region() {
    let double = Double::start().await;
    let paths = |double: &Double| -> Vec<String> {
        double
            .requests()
            .into_iter()
            .filter(|r| !r.contains("/auth/tokens"))
            .collect()
    };

    // Public in RegionOne (the variables name it).
    let backend = backend(&double);
    backend.status("x").await.unwrap();
    backend.images().await.unwrap();
    let seen = paths(&double);
    assert!(
        seen[0].starts_with(&format!("GET /compute/v2.1/{PROJECT_ID}/servers/x ")),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("GET /image/v2/images?status=active "),
        "{seen:?}"
    );

    // Internal: Glance's versioned endpoint gets no second version.
    double.clear_requests();
    let backend = backend_with(
        &double,
        OpenStackConfig {
            interface: Some("internal".into()),
            ..OpenStackConfig::default()
        },
    );
    backend.status("x").await.unwrap();
    backend.images().await.unwrap();
    let config = OpenStackConfig {
        interface: Some("internal".into()),
        network: Some(NETWORK.into()),
        ..OpenStackConfig::default()
    };
    backend_with(&double, config)
        .create(&spec("bootler-1-web-1", "m1.small", "debian-12"))
        .await
        .unwrap();
    let seen = paths(&double);
    assert!(
        seen[0].starts_with(&format!(
            "GET /internal/compute/v2.1/{PROJECT_ID}/servers/x "
        )),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("GET /internal/image/v2/images?status=active "),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /internal/network/v2.0/networks?name=private ")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|r| r.starts_with("GET /internal/") || r.starts_with("POST /internal/")),
        "{seen:?}"
    );

    // Another region, from the configuration over the variables.
    double.clear_requests();
    let backend = backend_with(
        &double,
        OpenStackConfig {
            region: Some(OTHER_REGION.into()),
            ..OpenStackConfig::default()
        },
    );
    backend.status("x").await.unwrap();
    backend.images().await.unwrap();
    let seen = paths(&double);
    assert!(
        seen[0].starts_with(&format!("GET /r2/compute/v2.1/{PROJECT_ID}/servers/x ")),
        "{seen:?}"
    );
    assert!(seen[1].starts_with("GET /r2/image/v2/images"), "{seen:?}");

    // A region the catalog does not have.
    let backend = backend_with(
        &double,
        OpenStackConfig {
            region: Some("Atlantis".into()),
            ..OpenStackConfig::default()
        },
    );
    let message = refused(backend.status("x").await);
    assert!(
        message.contains("no public endpoint for its compute service (Nova) in region Atlantis"),
        "{message}"
    );
    assert!(message.contains("public in RegionTwo"), "{message}");
}

#[tokio::test]
async fn create_builds_then_runs_with_addresses() {
    let double = Double::start().await;
    double.set_build_gets(2);
    let backend = backend(&double);
    let id = backend
        .create(&spec("bootler-7-web-1", "m1.small", "debian-12"))
        .await
        .unwrap();

    let sent = double.server_request(&id).unwrap();
    assert_eq!(sent["name"], "bootler-7-web-1");
    assert_eq!(sent["flavorRef"], FLAVOR_SMALL);
    assert_eq!(
        sent["imageRef"], DEBIAN_12_ID,
        "the active debian-12, not the old one"
    );
    assert_eq!(sent["key_name"], "bootler-ana");
    assert_eq!(
        sent["networks"][0]["uuid"], NETWORK_ID,
        "the project's only network"
    );
    assert_eq!(sent["metadata"]["bootler_hostname"], "web-1");
    assert_eq!(sent["metadata"]["bootler_owner"], "ana");
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(sent["user_data"].as_str().unwrap())
        .unwrap();
    let user_data = String::from_utf8(user_data).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(user_data.contains("hostname: \"web-1\"\n"), "{user_data}");

    for _ in 0..2 {
        let status = backend.status(&id).await.unwrap();
        assert_eq!(status.state, VmState::Building);
        assert!(status.addresses.is_empty());
        assert_eq!(status.fault, None);
    }
    let status = backend.status(&id).await.unwrap();
    assert_eq!(status.state, VmState::Running);
    assert_eq!(status.fault, None);
    // Fixed addresses first (the double lists the floating one first).
    assert_eq!(status.addresses.len(), 3);
    assert!(
        status.addresses[0].starts_with("10.0.0."),
        "{:?}",
        status.addresses
    );
    assert!(
        status.addresses[1].starts_with("fd00::"),
        "{:?}",
        status.addresses
    );
    assert!(
        status.addresses[2].starts_with("203.0.113."),
        "{:?}",
        status.addresses
    );
}

#[tokio::test]
async fn keypairs_one_per_user_and_key() {
    let double = Double::start().await;
    double.add_keypair("laptop", KEY_B);
    let backend = backend(&double);

    let first = backend
        .create(&spec("bootler-1-a", "m1.tiny", "debian-12"))
        .await
        .unwrap();
    // The same key with another comment is the same key.
    let mut again = spec("bootler-2-b", "m1.tiny", "debian-12");
    again.ssh_key = KEY_A.replace("ana@laptop", "ana@desk");
    let second = backend.create(&again).await.unwrap();
    assert_eq!(
        double.server_request(&first).unwrap()["key_name"],
        "bootler-ana"
    );
    assert_eq!(
        double.server_request(&second).unwrap()["key_name"],
        "bootler-ana"
    );
    let posts = double
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST") && r.contains("/os-keypairs "))
        .count();
    assert_eq!(posts, 1, "made once, then reused");

    // Another key of the same person: a keypair of its own.
    let mut other = spec("bootler-3-c", "m1.tiny", "debian-12");
    other.ssh_key = KEY_B.into();
    let third = backend.create(&other).await.unwrap();
    let name = double.server_request(&third).unwrap()["key_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("bootler-ana-") && name.len() == "bootler-ana-".len() + 12,
        "{name}"
    );
    let fourth = backend.create(&other).await.unwrap();
    assert_eq!(
        double.server_request(&fourth).unwrap()["key_name"],
        name.as_str()
    );

    // Someone else, with a name Nova would not take as it is.
    let mut bob = spec("bootler-5-d", "m1.tiny", "debian-12");
    bob.owner = "bob.smith@example.org".into();
    bob.ssh_key = KEY_B.into();
    let fifth = backend.create(&bob).await.unwrap();
    assert_eq!(
        double.server_request(&fifth).unwrap()["key_name"],
        "bootler-bob-smith-example-org"
    );

    let keypairs = double.keypairs();
    assert_eq!(keypairs.len(), 4, "{keypairs:?}");
    assert_eq!(
        keypairs["laptop"], KEY_B,
        "the user's own keypair is left alone"
    );
    assert_eq!(
        keypairs["bootler-ana"],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa"
    );
    assert_eq!(
        keypairs[&name],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIlZ23mrdLLVBGgziLH8czrbyBUWzAKZTc6EA1H/3dqW"
    );
}

#[tokio::test]
async fn flavor_image_and_network_by_name_or_id() {
    let double = Double::start().await;
    let second_network = double.add_network("lab");

    // Several networks: one must be named.
    let message = refused(
        backend(&double)
            .create(&spec("bootler-0-x", "m1.small", "debian-12"))
            .await,
    );
    assert!(
        message.contains("several networks (private, lab)"),
        "{message}"
    );
    assert!(message.contains("vm.openstack.network"), "{message}");

    // By id.
    let by_id = backend_with(
        &double,
        OpenStackConfig {
            network: Some(second_network.clone()),
            ..OpenStackConfig::default()
        },
    );
    let id = by_id
        .create(&spec("bootler-1-a", FLAVOR_LARGE, DEBIAN_13_ID))
        .await
        .unwrap();
    let sent = double.server_request(&id).unwrap();
    assert_eq!(sent["flavorRef"], FLAVOR_LARGE);
    assert_eq!(sent["imageRef"], DEBIAN_13_ID);
    assert_eq!(sent["networks"][0]["uuid"], second_network.as_str());
    let id = by_id
        .create(&spec("bootler-2-b", "3", UBUNTU_ID))
        .await
        .unwrap();
    assert_eq!(
        double.server_request(&id).unwrap()["flavorRef"],
        FLAVOR_MEDIUM
    );

    // By name.
    let by_name = backend_with(
        &double,
        OpenStackConfig {
            network: Some("lab".into()),
            ..OpenStackConfig::default()
        },
    );
    let id = by_name
        .create(&spec("bootler-3-c", "m1.large", "ubuntu-24.04"))
        .await
        .unwrap();
    let sent = double.server_request(&id).unwrap();
    assert_eq!(sent["flavorRef"], FLAVOR_LARGE);
    assert_eq!(sent["imageRef"], UBUNTU_ID);
    assert_eq!(sent["networks"][0]["uuid"], second_network.as_str());

    // A flavor without a disk boots from a volume of the asked size.
    let id = by_name
        .create(&spec("bootler-4-d", "v1.small", "debian-12"))
        .await
        .unwrap();
    let sent = double.server_request(&id).unwrap();
    assert_eq!(sent["block_device_mapping_v2"][0]["uuid"], DEBIAN_12_ID);
    assert_eq!(sent["block_device_mapping_v2"][0]["volume_size"], 20);
    assert_eq!(
        sent["block_device_mapping_v2"][0]["destination_type"],
        "volume"
    );
}

#[tokio::test]
async fn unknown_things_are_refused_by_name() {
    let double = Double::start().await;
    let backend = backend(&double);

    let message = refused(
        backend
            .create(&spec("bootler-1-a", "m1.small", "gentoo-1999"))
            .await,
    );
    assert_eq!(message, "OpenStack has no image \"gentoo-1999\".");
    // An id Glance does not know.
    let missing = "99999999-9999-4999-8999-999999999999";
    let message = refused(
        backend
            .create(&spec("bootler-1-a", "m1.small", missing))
            .await,
    );
    assert_eq!(message, format!("OpenStack has no image \"{missing}\"."));
    // An image that is not ready.
    let message = refused(
        backend
            .create(&spec("bootler-1-a", "m1.small", "debian-14-upload"))
            .await,
    );
    assert!(
        message.contains("\"debian-14-upload\" cannot be used now") && message.contains("queued"),
        "{message}"
    );

    let message = refused(
        backend
            .create(&spec("bootler-1-a", "m9.huge", "debian-12"))
            .await,
    );
    assert_eq!(message, "OpenStack has no flavor \"m9.huge\".");

    let backend = backend_with(
        &double,
        OpenStackConfig {
            network: Some("nowhere".into()),
            ..OpenStackConfig::default()
        },
    );
    let message = refused(
        backend
            .create(&spec("bootler-1-a", "m1.small", "debian-12"))
            .await,
    );
    assert!(message.contains("no network \"nowhere\""), "{message}");
    assert_eq!(double.server_count(), 0);
    assert!(
        double.keypairs().is_empty(),
        "nothing made for a refused request"
    );
}

#[tokio::test]
async fn over_quota_is_refused_with_novas_words() {
    let double = Double::start().await;
    double.set_core_quota(Some(3));
    let backend = backend(&double);
    backend
        .create(&spec("bootler-1-a", "m1.medium", "debian-12"))
        .await
        .unwrap();
    let message = refused(
        backend
            .create(&spec("bootler-2-b", "m1.medium", "debian-12"))
            .await,
    );
    assert_eq!(
        message,
        "OpenStack refused: Quota exceeded for cores: Requested 2, but already used 2 of 3 cores"
    );
    assert_eq!(double.server_count(), 1);

    let capacity = backend.capacity().await.unwrap();
    assert!(
        capacity.description.contains("project uses 2 of 3 cores"),
        "{}",
        capacity.description
    );
}

#[tokio::test]
async fn a_server_nova_breaks_shows_its_fault() {
    let double = Double::start().await;
    double.set_error_image("cirros-0.6", NO_VALID_HOST);
    let backend = backend(&double);
    let id = backend
        .create(&spec("bootler-1-a", "m1.tiny", "cirros-0.6"))
        .await
        .unwrap();
    let status = settled(&backend, &id).await;
    assert_eq!(status.state, VmState::Error);
    assert_eq!(status.fault.as_deref(), Some(NO_VALID_HOST));
    assert!(status.addresses.is_empty());
}

#[tokio::test]
async fn stop_start_destroy() {
    let double = Double::start().await;
    let backend = backend(&double);
    let id = backend
        .create(&spec("bootler-1-a", "m1.tiny", "debian-12"))
        .await
        .unwrap();

    // Stopping while it builds: try again later.
    let message = unavailable(backend.stop(&id).await);
    assert!(message.contains("still being built"), "{message}");

    assert_eq!(settled(&backend, &id).await.state, VmState::Running);
    backend.stop(&id).await.unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Stopped);
    // Already stopped: Nova's 409 is fine.
    backend.stop(&id).await.unwrap();
    backend.start(&id).await.unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Running);
    backend.start(&id).await.unwrap();
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r.ends_with("/action -> 409"))
    );

    backend.destroy(&id).await.unwrap();
    let status = backend.status(&id).await.unwrap();
    assert_eq!(status.state, VmState::Missing);
    assert!(status.addresses.is_empty());
    backend.destroy(&id).await.unwrap();

    let message = refused(backend.start(&id).await);
    assert!(message.contains("no server"), "{message}");
}

#[tokio::test]
async fn a_refused_token_means_logging_in_again() {
    let double = Double::start().await;
    let backend = backend(&double);
    backend.images().await.unwrap();
    assert_eq!(double.auth_count(), 1);

    double.revoke_tokens();
    let id = backend
        .create(&spec("bootler-1-a", "m1.tiny", "debian-12"))
        .await
        .unwrap();
    assert_eq!(double.auth_count(), 2);
    assert_eq!(
        double
            .requests()
            .iter()
            .filter(|r| r.ends_with("-> 401"))
            .count(),
        1,
        "one refusal, then the new token"
    );
    settled(&backend, &id).await;
    assert_eq!(double.auth_count(), 2);
}

#[tokio::test]
async fn a_token_about_to_expire_is_renewed_first() {
    let double = Double::start().await;
    // Shorter than the margin: every call needs a new one.
    double.set_token_ttl(Duration::from_secs(30));
    let backend = backend(&double);
    backend.images().await.unwrap();
    backend.status("x").await.unwrap();
    backend.capacity().await.unwrap();
    assert_eq!(
        double.auth_count(),
        5,
        "images (2 pages), status, capacity (2 requests)"
    );
    assert!(double.requests().iter().all(|r| !r.ends_with("-> 401")));
}

#[tokio::test]
async fn server_errors_and_silence_are_unavailable() {
    let double = Double::start().await;
    let backend = backend(&double);

    double.fail("GET", "/flavors/detail");
    let message = unavailable(
        backend
            .create(&spec("bootler-1-a", "m1.tiny", "debian-12"))
            .await,
    );
    assert!(
        message.starts_with("OpenStack's compute service (Nova) failed: Unexpected API Error."),
        "{message}"
    );

    let double = Double::start().await;
    let backend = backend_with(&double, OpenStackConfig::default());
    double.fail("POST", "/servers");
    let message = unavailable(
        backend
            .create(&spec("bootler-1-a", "m1.tiny", "debian-12"))
            .await,
    );
    assert!(message.contains("Unexpected API Error"), "{message}");
    assert_eq!(double.server_count(), 0);

    let double = Double::start().await;
    double.fail("POST", "/auth/tokens");
    let message = unavailable(
        backend_with(&double, OpenStackConfig::default())
            .images()
            .await,
    );
    assert!(
        message.starts_with("OpenStack's identity service (Keystone) failed"),
        "{message}"
    );

    // No answer in time.
    let double = Double::start().await;
    double.delay("GET", "/limits", Duration::from_secs(3));
    let slow = backend_with(&double, OpenStackConfig::default())
        .with_timeout(Duration::from_secs(1))
        .unwrap();
    let message = unavailable(slow.capacity().await);
    assert_eq!(
        message,
        "OpenStack's compute service (Nova) did not answer within 1 second."
    );

    // Nobody there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let env: HashMap<String, String> = [
        ("OS_AUTH_URL".to_string(), format!("http://{closed}/v3")),
        ("OS_USERNAME".to_string(), USER.to_string()),
        ("OS_PASSWORD".to_string(), PASSWORD.to_string()),
        ("OS_PROJECT_NAME".to_string(), PROJECT.to_string()),
    ]
    .into();
    let backend = OpenStackBackend::with_env(&OpenStackConfig::default(), env_of(env)).unwrap();
    let message = unavailable(backend.images().await);
    assert!(
        message.starts_with("OpenStack's identity service (Keystone) could not be reached"),
        "{message}"
    );
}

#[tokio::test]
async fn capacity_and_limits() {
    let double = Double::start().await;
    let backend = backend(&double);
    let capacity = backend.capacity().await.unwrap();
    assert_eq!(capacity.max_host_cores, None);
    assert_eq!(capacity.total_cores, None);
    assert_eq!(capacity.total_memory_mib, None);
    assert!(
        capacity
            .description
            .contains("hypervisors visible only to OpenStack administrators"),
        "{}",
        capacity.description
    );
    assert!(
        capacity.description.contains("0 cores (no limit)"),
        "{}",
        capacity.description
    );
    assert!(
        capacity.description.contains("0 of 51200 MiB memory"),
        "{}",
        capacity.description
    );
    assert!(
        capacity.description.contains("region RegionOne"),
        "{}",
        capacity.description
    );

    double.set_admin(true);
    let capacity = backend.capacity().await.unwrap();
    assert_eq!(capacity.max_host_cores, Some(64));
    assert_eq!(capacity.total_cores, Some(96));
    assert_eq!(capacity.total_memory_mib, Some(393_216));
    assert!(
        capacity.description.contains("2 hypervisors"),
        "{}",
        capacity.description
    );
}

#[tokio::test]
async fn images_from_glance_paged_and_filtered() {
    let double = Double::start().await;
    let images = backend(&double).images().await.unwrap();
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["cirros-0.6", "debian-12", "debian-13", "ubuntu-24.04"]
    );
    assert_eq!(images[1].reference, DEBIAN_12_ID);
    assert!(images.iter().all(|i| i.login.is_none()));
    let pages = double
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /image/v2/images"))
        .count();
    assert_eq!(pages, 2, "two images a page");

    let backend = backend_with(
        &double,
        OpenStackConfig {
            image_prefix: Some("debian".into()),
            ..OpenStackConfig::default()
        },
    );
    let names: Vec<String> = backend
        .images()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["debian-12", "debian-13"]);
}

#[tokio::test]
async fn settings_from_clouds_yaml_and_variables() {
    let double = Double::start().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/openstack");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("clouds.yaml"),
        format!(
            "clouds:\n  \
               other:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n  \
               lab:\n    \
                 auth_type: v3applicationcredential\n    \
                 auth:\n      \
                   auth_url: {auth_url}\n      \
                   application_credential_id: {APP_CRED_ID}\n      \
                   application_credential_secret: \"{APP_CRED_SECRET}\"\n    \
                 region_name: {OTHER_REGION}\n    \
                 interface: public\n    \
                 identity_api_version: 3\n",
            auth_url = double.auth_url(),
        ),
    )
    .unwrap();
    let home_env = |extra: &[(&str, &str)]| -> HashMap<String, String> {
        let mut env: HashMap<String, String> =
            [("HOME".to_string(), home.path().display().to_string())].into();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        env
    };

    // OS_CLOUD names it; everything comes from clouds.yaml.
    let backend = OpenStackBackend::with_env(
        &OpenStackConfig::default(),
        env_of(home_env(&[("OS_CLOUD", "lab")])),
    )
    .unwrap();
    let credentials = backend.credentials();
    assert_eq!(credentials.method.name(), "application_credential");
    assert_eq!(credentials.region.as_deref(), Some(OTHER_REGION));
    assert_eq!(
        credentials.clouds_yaml.as_deref(),
        Some(dir.join("clouds.yaml").as_path())
    );
    backend.status("x").await.unwrap();
    assert_eq!(
        double.last_auth()["auth"]["identity"]["application_credential"]["id"],
        APP_CRED_ID
    );
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /r2/compute/"))
    );

    // The configuration names the cloud; a variable and a setting beat the file.
    let config = OpenStackConfig {
        cloud: Some("lab".into()),
        interface: Some("internal".into()),
        ..OpenStackConfig::default()
    };
    let backend =
        OpenStackBackend::with_env(&config, env_of(home_env(&[("OS_REGION_NAME", REGION)])))
            .unwrap();
    assert_eq!(backend.credentials().region.as_deref(), Some(REGION));
    assert_eq!(backend.credentials().interface, "internal");

    // OS_CLIENT_CONFIG_FILE points elsewhere first.
    let elsewhere = home.path().join("elsewhere.yaml");
    std::fs::write(
        &elsewhere,
        format!(
            "clouds:\n  lab:\n    auth:\n      auth_url: {}\n      username: {USER}\n      password: {PASSWORD}\n      project_id: {PROJECT_ID}\n      user_domain_id: default\n",
            double.auth_url()
        ),
    )
    .unwrap();
    let path = elsewhere.display().to_string();
    let backend = OpenStackBackend::with_env(
        &OpenStackConfig::default(),
        env_of(home_env(&[
            ("OS_CLOUD", "lab"),
            ("OS_CLIENT_CONFIG_FILE", &path),
        ])),
    )
    .unwrap();
    backend.status("x").await.unwrap();
    let auth = double.last_auth();
    assert_eq!(
        auth["auth"]["identity"]["password"]["user"]["domain"]["id"],
        "default"
    );
    assert_eq!(auth["auth"]["scope"]["project"]["id"], PROJECT_ID);

    // A cloud no file has.
    let message = refused(OpenStackBackend::with_env(
        &OpenStackConfig::default(),
        env_of(home_env(&[("OS_CLOUD", "nowhere")])),
    ));
    assert!(
        message.contains("the cloud \"nowhere\" is in no clouds.yaml"),
        "{message}"
    );
    assert!(
        message.contains(&dir.join("clouds.yaml").display().to_string()),
        "{message}"
    );

    // Broken YAML names its file.
    std::fs::write(&elsewhere, "clouds: [unclosed").unwrap();
    let message = refused(OpenStackBackend::with_env(
        &OpenStackConfig::default(),
        env_of(home_env(&[
            ("OS_CLOUD", "lab"),
            ("OS_CLIENT_CONFIG_FILE", &path),
        ])),
    ));
    assert!(
        message.contains("elsewhere.yaml is not valid YAML"),
        "{message}"
    );
}

#[test]
fn missing_settings_are_named() {
    let none = |_: &str| None;
    let message = refused(OpenStackBackend::with_env(
        &OpenStackConfig::default(),
        none,
    ));
    assert!(
        message.contains("vm.openstack.auth_url, OS_AUTH_URL"),
        "{message}"
    );

    let config = OpenStackConfig {
        auth_url: Some("https://keystone.example.org:5000".into()),
        ..OpenStackConfig::default()
    };
    let message = refused(OpenStackBackend::with_env(&config, none));
    assert!(message.contains("no credentials"), "{message}");
    assert!(
        message.contains("OS_USERNAME") && message.contains("OS_APPLICATION_CREDENTIAL_ID"),
        "{message}"
    );

    let config = OpenStackConfig {
        username: Some("ana".into()),
        ..config
    };
    let message = refused(OpenStackBackend::with_env(&config, none));
    assert!(
        message.contains("the password is missing") && message.contains("OS_PASSWORD"),
        "{message}"
    );

    let env = |name: &str| (name == "OS_PASSWORD").then(|| "pw".to_string());
    let message = refused(OpenStackBackend::with_env(&config, env));
    assert!(
        message.contains("the project is missing") && message.contains("OS_PROJECT_NAME"),
        "{message}"
    );

    let app = OpenStackConfig {
        auth_url: config.auth_url.clone(),
        application_credential_id: Some("id".into()),
        ..OpenStackConfig::default()
    };
    let message = refused(OpenStackBackend::with_env(&app, none));
    assert!(
        message.contains("OS_APPLICATION_CREDENTIAL_SECRET"),
        "{message}"
    );

    let bad = OpenStackConfig {
        password_file: Some("/nonexistent/bootler/password".into()),
        ..config.clone()
    };
    let message = refused(OpenStackBackend::with_env(&bad, none));
    assert!(
        message.contains("vm.openstack.password_file /nonexistent/bootler/password cannot be read"),
        "{message}"
    );

    let env = |name: &str| match name {
        "OS_PASSWORD" => Some("pw".to_string()),
        "OS_PROJECT_NAME" => Some("demo".to_string()),
        "OS_INTERFACE" => Some("sideways".to_string()),
        _ => None,
    };
    let message = refused(OpenStackBackend::with_env(&config, env));
    assert!(
        message.contains("must be public, internal or admin"),
        "{message}"
    );

    // Complete: `publicURL` is `public`, and the URL gets its /v3.
    let env = |name: &str| match name {
        "OS_PASSWORD" => Some("pw".to_string()),
        "OS_PROJECT_NAME" => Some("demo".to_string()),
        "OS_INTERFACE" => Some("publicURL".to_string()),
        _ => None,
    };
    let backend = OpenStackBackend::with_env(&config, env).unwrap();
    assert_eq!(backend.credentials().interface, "public");
    assert_eq!(
        backend.credentials().auth_url,
        "https://keystone.example.org:5000/v3"
    );
    // Secrets stay out of debug output.
    let debug = format!("{backend:?}");
    assert!(!debug.contains("\"pw\""), "{debug}");
}

/// Runs the backend against a real OpenStack cloud:
///
/// ```text
/// OS_AUTH_URL=… OS_USERNAME=… OS_PASSWORD=… OS_PROJECT_NAME=… \
///   (or OS_APPLICATION_CREDENTIAL_ID/SECRET, or OS_CLOUD with a clouds.yaml) \
/// BOOTLER_OS_LIVE_IMAGE=debian-12 BOOTLER_OS_LIVE_FLAVOR=m1.small \
///   cargo test -p bootler-domain --test openstack -- --ignored live_cloud --nocapture
/// ```
///
/// - the standard `OS_*` variables (`OS_AUTH_URL`, `OS_USERNAME`,
///   `OS_PASSWORD`, `OS_PROJECT_NAME`/`OS_PROJECT_ID`,
///   `OS_USER_DOMAIN_NAME`, `OS_PROJECT_DOMAIN_NAME`,
///   `OS_APPLICATION_CREDENTIAL_ID`, `OS_APPLICATION_CREDENTIAL_SECRET`,
///   `OS_REGION_NAME`, `OS_INTERFACE`, `OS_CLOUD`): the credentials;
/// - `BOOTLER_OS_LIVE_IMAGE`, `BOOTLER_OS_LIVE_FLAVOR` (required): a Glance
///   image and a Nova flavor (name or id), as small as will do;
/// - `BOOTLER_OS_LIVE_NETWORK`: the Neutron network (default: the
///   project's only one);
/// - `BOOTLER_OS_LIVE_SSH_KEY`: the public key put in (default: a test key
///   nobody holds the private half of);
/// - `BOOTLER_OS_LIVE_OWNER`: whose keypair it is (default `live-test`:
///   keypair `bootler-live-test`, left in place);
/// - `BOOTLER_OS_LIVE_TIMEOUT`: seconds to wait for each state (default
///   600).
///
/// It creates one server, waits for it to run, checks its addresses, stops
/// and starts it, destroys it and waits until Nova no longer has it. The
/// server is destroyed even when a step fails.
#[tokio::test]
#[ignore = "needs a real OpenStack: set OS_AUTH_URL etc. and BOOTLER_OS_LIVE_IMAGE/FLAVOR, run with --ignored"]
async fn live_cloud() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let image = var("BOOTLER_OS_LIVE_IMAGE").expect("set BOOTLER_OS_LIVE_IMAGE");
    let flavor = var("BOOTLER_OS_LIVE_FLAVOR").expect("set BOOTLER_OS_LIVE_FLAVOR");
    let timeout = Duration::from_secs(
        var("BOOTLER_OS_LIVE_TIMEOUT")
            .map(|t| t.parse().expect("BOOTLER_OS_LIVE_TIMEOUT: seconds"))
            .unwrap_or(600),
    );
    let config = OpenStackConfig {
        network: var("BOOTLER_OS_LIVE_NETWORK"),
        ..OpenStackConfig::default()
    };
    let backend = OpenStackBackend::new(&config).unwrap();
    println!("{:?}", backend);
    println!("capacity: {:?}", backend.capacity().await.unwrap());
    println!("images: {}", backend.images().await.unwrap().len());

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let spec = VmSpec {
        name: format!("bootler-live-{stamp}"),
        hostname: "bootler-live".into(),
        vcpus: 1,
        memory_mib: 1024,
        disk_gib: 10,
        flavor,
        image,
        ssh_key: var("BOOTLER_OS_LIVE_SSH_KEY").unwrap_or_else(|| KEY_A.into()),
        owner: var("BOOTLER_OS_LIVE_OWNER").unwrap_or_else(|| "live-test".into()),
    };
    let id = backend.create(&spec).await.unwrap();
    println!("created {} as {id}", spec.name);

    async fn wait_for(
        backend: &OpenStackBackend,
        id: &str,
        wanted: VmState,
        timeout: Duration,
    ) -> Result<VmStatus, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = backend.status(id).await.map_err(|e| e.to_string())?;
            if status.state == wanted {
                return Ok(status);
            }
            if status.state == VmState::Error {
                return Err(format!("the server broke: {:?}", status.fault));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "still {:?} after {timeout:?}, wanted {wanted:?}",
                    status.state
                ));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    let steps = async {
        let running = wait_for(&backend, &id, VmState::Running, timeout).await?;
        println!("running at {:?}", running.addresses);
        if running.addresses.is_empty() {
            return Err("running without addresses".to_string());
        }
        backend.stop(&id).await.map_err(|e| e.to_string())?;
        wait_for(&backend, &id, VmState::Stopped, timeout).await?;
        backend
            .stop(&id)
            .await
            .map_err(|e| format!("stopping twice: {e}"))?;
        backend.start(&id).await.map_err(|e| e.to_string())?;
        wait_for(&backend, &id, VmState::Running, timeout).await?;
        Ok::<(), String>(())
    };
    let outcome = steps.await;
    backend.destroy(&id).await.unwrap();
    let gone = wait_for(&backend, &id, VmState::Missing, timeout).await;
    backend.destroy(&id).await.unwrap();
    outcome.unwrap();
    gone.unwrap();
}
