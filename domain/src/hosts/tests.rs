//! Boot requests against a real SQLite database.

use std::net::IpAddr;

use chrono::Utc;

use super::*;

struct Fixture {
    hosts: Hosts,
    db: Db,
    events: Events,
    _dir: tempfile::TempDir,
}

async fn fixture(per_minute: u32, max_discovered: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let events = Events::new(db.clone());
    let hosts = Hosts::new(
        db.clone(),
        BootSettings {
            base_url: "http://bootler.lab".into(),
            allowed_networks: vec![Network::parse("10.0.0.0/8").unwrap()],
            discovery_per_minute: per_minute,
            max_discovered,
            install_timeout: std::time::Duration::from_secs(3600),
            max_hosts_per_user: 0,
            lease_reminders: vec![chrono::Duration::hours(72), chrono::Duration::hours(24)],
        },
        events.clone(),
    );
    Fixture {
        hosts,
        db,
        events,
        _dir: dir,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn mac(n: u8) -> Mac {
    Mac::parse(&format!("52-54-00-12-34-{n:02x}")).unwrap()
}

#[tokio::test]
async fn unknown_macs_register_known_ones_refresh() {
    let f = fixture(60, 100).await;
    let first = f
        .hosts
        .boot(mac(1), Some("Node-7.lab"), ip("10.0.0.7"), Utc::now())
        .await
        .unwrap();
    let id = first.host_id.unwrap();
    assert_eq!(
        first.script,
        "#!ipxe\necho Bootler: node-7.lab (52:54:00:12:34:01) is not marked for an install; booting from the local disk.\nexit\n"
    );
    let host = f.hosts.get(id).await.unwrap().unwrap();
    assert_eq!(host.state, HostState::Discovered);
    assert_eq!(host.name, "node-7.lab");
    assert_eq!(host.macs, ["52:54:00:12:34:01"]);
    assert_eq!(host.last_ip.as_deref(), Some("10.0.0.7"));

    // Again, in the other MAC form and from another address: same host.
    let again = f
        .hosts
        .boot(
            Mac::parse("52:54:00:12:34:01").unwrap(),
            None,
            ip("10.0.0.8"),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(again.host_id, Some(id));
    let host = f.hosts.get(id).await.unwrap().unwrap();
    assert_eq!(host.last_ip.as_deref(), Some("10.0.0.8"));
    let timeline = f.hosts.timeline(id, 10).await.unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["boot", "boot", "discovered"]);
    assert_eq!(timeline[0].source_ip.as_deref(), Some("10.0.0.8"));

    // No usable host name: a default one; a name with junk is ignored.
    let other = f
        .hosts
        .boot(mac(2), Some("bad name;\nexit"), ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    let host = f.hosts.get(other.host_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(host.name, "node-525400123402");
}

#[tokio::test]
async fn the_same_new_mac_twice_at_once_makes_one_host() {
    let f = fixture(600, 100).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let hosts = f.hosts.clone();
        tasks.push(tokio::spawn(async move {
            hosts
                .boot(mac(9), None, ip("10.0.0.1"), Utc::now())
                .await
                .unwrap()
                .host_id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (all, total) = f
        .hosts
        .list(&HostFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((all.len(), total), (1, 1));
}

#[tokio::test]
async fn floods_of_new_macs_are_limited_but_still_boot() {
    let f = fixture(3, 100).await;
    let mut registered = 0;
    for n in 0..10 {
        let answer = f
            .hosts
            .boot(mac(n), None, ip("10.0.0.1"), Utc::now())
            .await
            .unwrap();
        assert!(answer.script.starts_with("#!ipxe\n"));
        assert!(answer.script.contains("booting from the local disk"));
        registered += answer.host_id.is_some() as usize;
    }
    assert_eq!(registered, 3);

    let capped = fixture(600, 2).await;
    for n in 0..5 {
        capped
            .hosts
            .boot(mac(n), None, ip("10.0.0.1"), Utc::now())
            .await
            .unwrap();
    }
    let (_, total) = capped
        .hosts
        .list(&HostFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 2);
    // Known hosts still refresh.
    assert!(
        capped
            .hosts
            .boot(mac(0), None, ip("10.0.0.1"), Utc::now())
            .await
            .unwrap()
            .host_id
            .is_some()
    );
}

#[tokio::test]
async fn lists_filter_and_page() {
    let f = fixture(600, 100).await;
    for n in 0..5 {
        f.hosts
            .boot(mac(n), None, ip("10.0.0.1"), Utc::now())
            .await
            .unwrap();
    }
    let (page, total) = f
        .hosts
        .list(&HostFilter {
            limit: 2,
            offset: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["node-525400123402", "node-525400123403"]
    );
    let (found, total) = f
        .hosts
        .list(&HostFilter {
            mac: Some(mac(4)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0].macs, ["52:54:00:12:34:04"]);
    let (none, _) = f
        .hosts
        .list(&HostFilter {
            state: Some(HostState::Installed),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let (none, _) = f
        .hosts
        .list(&HostFilter {
            pool: Some("gpu".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn provisioning_networks() {
    let hosts = fixture(1, 1).await.hosts;
    assert!(hosts.allowed(ip("10.1.2.3")));
    assert!(!hosts.allowed(ip("192.168.1.1")));
}

#[test]
fn host_names_from_dhcp() {
    assert_eq!(valid_hostname("Node-1.Lab."), Some("node-1.lab".into()));
    for bad in ["", "-a", "a-", "a..b", "a b", "a;b", "ä", &"a".repeat(64)] {
        assert_eq!(valid_hostname(bad), None, "{bad}");
    }
}

#[test]
fn the_entry_script_tries_four_interfaces_and_chains_back() {
    assert_eq!(
        scripts::entry("http://bootler.lab:3000"),
        "#!ipxe

:try_net0
isset ${net0/mac} && dhcp net0 || goto try_net1
set mac_address ${net0/mac:hexhyp}
goto chainboot

:try_net1
isset ${net1/mac} && dhcp net1 || goto try_net2
set mac_address ${net1/mac:hexhyp}
goto chainboot

:try_net2
isset ${net2/mac} && dhcp net2 || goto try_net3
set mac_address ${net2/mac:hexhyp}
goto chainboot

:try_net3
isset ${net3/mac} && dhcp net3 || goto exit
set mac_address ${net3/mac:hexhyp}
goto chainboot

:chainboot
chain http://bootler.lab:3000/boot/${mac_address}?hostname=${hostname:uristring} || goto unreachable
exit

:unreachable
echo Bootler: http://bootler.lab:3000 did not answer; booting from the local disk.
exit

:exit
echo Bootler: no network interface got an address; booting from the local disk.
exit
"
    );
}

// ---- clean installs -------------------------------------------------------

use crate::templates::{Actor as TemplateActor, Draft, Kind as TemplateKind, Templates};

/// A person row; `admin` decides the role.
async fn person(db: &Db, name: &str, admin: bool) -> Actor {
    let id: i64 = crate::with_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO users (username, email, display_name, role, status, created_at) \
             VALUES ($1, $2, $3, $4, 'active', $5) RETURNING id",
        )
        .bind(name)
        .bind(format!("{name}@uminho.pt"))
        .bind(format!("{name} Silva"))
        .bind(if admin { "admin" } else { "user" })
        .bind(Utc::now())
        .fetch_one(pool)
        .await
    })
    .unwrap();
    Actor {
        user_id: id,
        username: name.into(),
        admin,
    }
}

async fn template(db: &Db, owner: &Actor, name: &str, kind: TemplateKind, body: &str) -> i64 {
    Templates::new(db.clone())
        .create(
            TemplateActor {
                user_id: owner.user_id,
                admin: owner.admin,
            },
            Draft {
                name: Some(name.into()),
                kind: Some(kind),
                description: None,
                body: Some(body.into()),
                expected_version: None,
            },
            false,
            Utc::now(),
        )
        .await
        .unwrap()
        .id
}

const SYSTEM: &str = "#!ipxe\nkernel {{ base_url }}/images/x/linux url={{ unattended_url }} hostname={{ host.name }}\nboot\n";
const ANSWER: &str = "d-i passwd/username string {{ user.username }}\nd-i preseed/late_command string wget {{ done_url }} # {{ vars.disk }}\n";

/// A discovered host enrolled into pool `lab` by `admin`, with both
/// templates chosen.
async fn ready_host(f: &Fixture, admin: &Actor, n: u8) -> i64 {
    let id = f
        .hosts
        .boot(
            mac(n),
            Some(&format!("node{n}")),
            ip("10.0.0.9"),
            Utc::now(),
        )
        .await
        .unwrap()
        .host_id
        .unwrap();
    if f.hosts.pools().await.unwrap().is_empty() {
        f.hosts
            .create_pool(
                admin,
                &PoolChange {
                    name: Some("lab".into()),
                    ..PoolChange::default()
                },
                Utc::now(),
            )
            .await
            .unwrap();
        template(&f.db, admin, "net", TemplateKind::System, SYSTEM).await;
        template(&f.db, admin, "answers", TemplateKind::Unattended, ANSWER).await;
    }
    f.hosts
        .update(
            id,
            HostChange {
                pool: Some(Some("lab".into())),
                system: Some(Some(TemplateChoice::Name("net".into()))),
                unattended: Some(Some(TemplateChoice::Name("answers".into()))),
                vars: Some(serde_json::json!({"disk": "vda"})),
                ..Default::default()
            },
            admin,
            Utc::now(),
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_marked_host_installs_once_and_then_boots_locally() {
    let f = fixture(600, 100).await;
    let admin = person(&f.db, "root", true).await;
    let mut live = f.events.subscribe();
    let id = ready_host(&f, &admin, 1).await;
    let host = f.hosts.get(id).await.unwrap().unwrap();
    assert_eq!(host.state, HostState::Local, "enrolling makes it local");
    assert_eq!(host.pool.as_deref(), Some("lab"));
    assert_eq!(host.system.as_ref().unwrap().name, "net");

    // Marked, unmarked, marked again.
    let marked = f.hosts.mark(id, &admin, Utc::now()).await.unwrap();
    assert_eq!(marked.state, HostState::InstallPending);
    assert_eq!(marked.marked_by.as_deref(), Some("root"));
    let event = live.recv().await.unwrap();
    assert_eq!(
        (event.kind.as_str(), event.user_id),
        ("host", admin.user_id)
    );
    assert_eq!(event.data["state"], "install_pending");
    let unmarked = f.hosts.unmark(id, &admin, Utc::now()).await.unwrap();
    assert_eq!(unmarked.state, HostState::Local);
    let not_marked = f.hosts.unmark(id, &admin, Utc::now()).await.unwrap_err();
    assert!(
        matches!(not_marked, HostsError::Conflict(ref m) if m.contains("is not marked")),
        "{not_marked}"
    );
    f.hosts.mark(id, &admin, Utc::now()).await.unwrap();

    // The next boot gets the rendered system script, once.
    let boot = f
        .hosts
        .boot(mac(1), None, ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        boot.script,
        "#!ipxe\nkernel http://bootler.lab/images/x/linux url=http://bootler.lab/boot/52-54-00-12-34-01/unattended hostname=node1\nboot\n"
    );
    assert_eq!(
        f.hosts.get(id).await.unwrap().unwrap().state,
        HostState::Installing
    );
    let late = f.hosts.unmark(id, &admin, Utc::now()).await.unwrap_err();
    assert!(
        matches!(late, HostsError::Conflict(ref m) if m.contains("already got its system script")),
        "{late}"
    );
    let again = f
        .hosts
        .boot(mac(1), None, ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert!(
        again.script.contains("booting from the local disk"),
        "{}",
        again.script
    );

    // The installer's answer file, rendered for the one who marked it.
    let answer = f
        .hosts
        .unattended(mac(1), ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        answer.text,
        "d-i passwd/username string root\nd-i preseed/late_command string wget http://bootler.lab/boot/52-54-00-12-34-01/done # vda\n"
    );
    // Done: installed; a retried call is fine; then it boots locally.
    f.hosts
        .done(mac(1), ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        f.hosts.get(id).await.unwrap().unwrap().state,
        HostState::Installed
    );
    f.hosts
        .done(mac(1), ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    let after = f
        .hosts
        .boot(mac(1), None, ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert!(after.script.contains("booting from the local disk"));
    let gone = f
        .hosts
        .unattended(mac(1), ip("10.0.0.9"), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(gone, HostsError::Conflict(_)), "{gone}");

    let kinds: Vec<String> = f
        .hosts
        .timeline(id, 50)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "discovered",
            "boot",
            "changed",
            "mark",
            "unmark",
            "mark",
            "install",
            "boot",
            "unattended",
            "done",
            "done",
            "boot",
            "unattended"
        ]
    );
    let states: Vec<String> = std::iter::from_fn(|| live.try_recv().ok())
        .map(|e| e.data["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states,
        ["local", "install_pending", "installing", "installed"]
    );
}

#[tokio::test]
async fn boots_at_once_serve_the_install_to_one_of_them() {
    let f = fixture(600, 100).await;
    let admin = person(&f.db, "root", true).await;
    let id = ready_host(&f, &admin, 2).await;
    f.hosts.mark(id, &admin, Utc::now()).await.unwrap();
    let boots = (0..8).map(|_| {
        let hosts = f.hosts.clone();
        tokio::spawn(async move { hosts.boot(mac(2), None, ip("10.0.0.9"), Utc::now()).await })
    });
    let mut installs = 0;
    for boot in boots {
        let script = boot.await.unwrap().unwrap().script;
        if script.contains("kernel") {
            installs += 1;
        } else {
            assert!(script.contains("local disk"), "{script}");
        }
    }
    assert_eq!(installs, 1);
}

#[tokio::test]
async fn a_storm_of_marked_nodes_installs_each_once() {
    let f = fixture(6000, 1000).await;
    let admin = person(&f.db, "root", true).await;
    let mut live = f.events.subscribe();
    let mut ids = Vec::new();
    for n in 1..=40 {
        let id = ready_host(&f, &admin, n).await;
        f.hosts.mark(id, &admin, Utc::now()).await.unwrap();
        ids.push(id);
    }
    // One node unmarked just before the storm: it must boot locally.
    f.hosts.unmark(ids[0], &admin, Utc::now()).await.unwrap();
    while live.try_recv().is_ok() {}
    // Every node boots three times at once.
    let boots = (1..=40u8).flat_map(|n| std::iter::repeat_n(n, 3)).map(|n| {
        let hosts = f.hosts.clone();
        tokio::spawn(async move {
            let boot = hosts.boot(mac(n), None, ip("10.0.0.77"), Utc::now()).await;
            (n, boot.unwrap().script)
        })
    });
    let mut installs = std::collections::HashMap::new();
    for boot in boots {
        let (n, script) = boot.await.unwrap();
        if script.contains("kernel") {
            *installs.entry(n).or_insert(0) += 1;
        } else {
            assert!(script.contains("local disk"), "{script}");
        }
    }
    let expected: std::collections::HashMap<u8, i32> = (2..=40).map(|n| (n, 1)).collect();
    assert_eq!(installs, expected, "each marked node got its install once");
    for (n, id) in ids.iter().enumerate() {
        let host = f.hosts.get(*id).await.unwrap().unwrap();
        let want = if n == 0 {
            HostState::Local
        } else {
            HostState::Installing
        };
        assert_eq!(host.state, want, "{}", host.name);
        assert_eq!(
            host.last_ip.as_deref(),
            Some("10.0.0.77"),
            "last seen: {}",
            host.name
        );
        let served = f
            .hosts
            .timeline(*id, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "install")
            .count();
        assert_eq!(served, usize::from(n != 0), "{}", host.name);
    }
    let mut told: Vec<i64> = std::iter::from_fn(|| live.try_recv().ok())
        .filter(|e| e.data["state"] == "installing")
        .map(|e| e.data["host"].as_i64().unwrap())
        .collect();
    told.sort();
    assert_eq!(told, ids[1..].to_vec(), "one live event per install");
}

#[tokio::test]
async fn templates_that_do_not_render_stop_the_mark_or_fail_the_install() {
    let f = fixture(600, 100).await;
    let admin = person(&f.db, "root", true).await;
    let id = ready_host(&f, &admin, 3).await;
    let broken = template(
        &f.db,
        &admin,
        "broken",
        TemplateKind::System,
        "#!ipxe\nkernel {{ vars.kernel }}\n",
    )
    .await;
    f.hosts
        .update(
            id,
            HostChange {
                system: Some(Some(TemplateChoice::Id(broken))),
                ..Default::default()
            },
            &admin,
            Utc::now(),
        )
        .await
        .unwrap();
    let err = f.hosts.mark(id, &admin, Utc::now()).await.unwrap_err();
    assert!(
        matches!(err, HostsError::Render(ref m) if m.contains("“broken”, line 2") && m.contains("undefined")),
        "{err}"
    );
    assert_eq!(
        f.hosts.get(id).await.unwrap().unwrap().state,
        HostState::Local
    );

    // It rendered when marked; the variable went away before the boot.
    f.hosts
        .update(
            id,
            HostChange {
                vars: Some(serde_json::json!({"kernel": "k", "disk": "sda"})),
                ..Default::default()
            },
            &admin,
            Utc::now(),
        )
        .await
        .unwrap();
    f.hosts.mark(id, &admin, Utc::now()).await.unwrap();
    f.hosts
        .update(
            id,
            HostChange {
                vars: Some(serde_json::json!({})),
                ..Default::default()
            },
            &admin,
            Utc::now(),
        )
        .await
        .unwrap();
    let boot = f
        .hosts
        .boot(mac(3), None, ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert!(
        boot.script
            .starts_with("#!ipxe\necho Bootler: the system script did not render"),
        "{}",
        boot.script
    );
    assert!(boot.script.ends_with("exit\n"));
    assert_eq!(
        f.hosts.get(id).await.unwrap().unwrap().state,
        HostState::Failed
    );
    let last = &f.hosts.timeline(id, 1).await.unwrap()[0];
    assert_eq!(last.kind, "render_error");
    assert!(last.detail.contains("line 2"), "{}", last.detail);
}

#[tokio::test]
async fn the_watchdog_fails_installs_that_never_finish() {
    let f = fixture(600, 100).await;
    let admin = person(&f.db, "root", true).await;
    let id = ready_host(&f, &admin, 4).await;
    f.hosts.mark(id, &admin, Utc::now()).await.unwrap();
    f.hosts
        .boot(mac(4), None, ip("10.0.0.9"), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.hosts.watchdog(Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + chrono::Duration::minutes(61);
    assert_eq!(f.hosts.watchdog(later).await.unwrap(), 1);
    let host = f.hosts.get(id).await.unwrap().unwrap();
    assert_eq!(host.state, HostState::Failed);
    assert!(
        f.hosts.timeline(id, 1).await.unwrap()[0]
            .detail
            .contains("60 minutes")
    );
    // Too late to say it is done; marking again starts over.
    assert!(matches!(
        f.hosts.done(mac(4), ip("10.0.0.9"), Utc::now()).await,
        Err(HostsError::Conflict(_))
    ));
    assert_eq!(
        f.hosts.mark(id, &admin, Utc::now()).await.unwrap().state,
        HostState::InstallPending
    );
}

#[tokio::test]
async fn who_may_change_what() {
    let f = fixture(600, 100).await;
    let admin = person(&f.db, "root", true).await;
    let ana = person(&f.db, "ana", false).await;
    let id = ready_host(&f, &admin, 5).await;
    // Not hers: as if it did not exist.
    assert!(matches!(
        f.hosts.mark(id, &ana, Utc::now()).await,
        Err(HostsError::NotFound(_))
    ));
    // Hers (leasing sets holders; here by hand).
    crate::with_pool!(&f.db, pool => {
        sqlx::query("UPDATE hosts SET holder_id = $1 WHERE id = $2").bind(ana.user_id).bind(id).execute(pool).await.map(|_| ())
    })
    .unwrap();
    let moved = f
        .hosts
        .update(
            id,
            HostChange {
                pool: Some(None),
                ..Default::default()
            },
            &ana,
            Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(moved, HostsError::Forbidden(_)), "{moved}");
    // Her own private template; the wrong kind is refused with a reason.
    template(
        &f.db,
        &ana,
        "mine",
        TemplateKind::System,
        "#!ipxe\necho {{ user.username }}\n",
    )
    .await;
    let wrong = f
        .hosts
        .update(
            id,
            HostChange {
                unattended: Some(Some(TemplateChoice::Name("net".into()))),
                ..Default::default()
            },
            &ana,
            Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, HostsError::Invalid(ref m) if m.contains("no unattended template “net”")),
        "{wrong}"
    );
    let host = f
        .hosts
        .update(
            id,
            HostChange {
                system: Some(Some(TemplateChoice::Name("mine".into()))),
                ..Default::default()
            },
            &ana,
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(host.system.unwrap().name, "mine");
    f.hosts.mark(id, &ana, Utc::now()).await.unwrap();
    let script = f
        .hosts
        .boot(mac(5), None, ip("10.0.0.9"), Utc::now())
        .await
        .unwrap()
        .script;
    assert_eq!(
        script, "#!ipxe\necho ana\n",
        "rendered with the holder's data"
    );

    // Someone else's private template is not usable, even by id.
    let bob = person(&f.db, "bob", false).await;
    let bobs = template(&f.db, &bob, "bobs", TemplateKind::System, "#!ipxe\n").await;
    let err = f
        .hosts
        .update(
            id,
            HostChange {
                system: Some(Some(TemplateChoice::Id(bobs))),
                ..Default::default()
            },
            &ana,
            Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HostsError::Invalid(_)), "{err}");

    // MACs: admins; one MAC belongs to one host.
    let other = ready_host(&f, &admin, 6).await;
    let taken = f
        .hosts
        .update(
            other,
            HostChange {
                macs: Some(vec!["52:54:00:12:34:06".into(), "52-54-00-12-34-05".into()]),
                ..Default::default()
            },
            &admin,
            Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(taken, HostsError::Conflict(ref m) if m.contains(&format!("belongs to host {id}"))),
        "{taken}"
    );
    assert_eq!(
        f.hosts.get(other).await.unwrap().unwrap().macs,
        ["52:54:00:12:34:06"],
        "nothing half-written"
    );
}

fn in_pool(pool: &str) -> AllocateRequest {
    AllocateRequest {
        pool: Some(pool.into()),
        ..AllocateRequest::default()
    }
}

async fn set_pool(f: &Fixture, admin: &Actor, change: PoolChange) -> Pool {
    f.hosts.update_pool(admin, "lab", &change).await.unwrap()
}

#[tokio::test]
async fn one_click_gets_a_free_node_and_the_last_one_goes_once() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let rui = person(&f.db, "rui", false).await;
    let first = ready_host(&f, &admin, 1).await;
    let second = ready_host(&f, &admin, 2).await;
    set_pool(
        &f,
        &admin,
        PoolChange {
            default_lease_hours: Some(Some(48)),
            ..PoolChange::default()
        },
    )
    .await;
    let now = Utc::now();

    let got = f
        .hosts
        .allocate(&ana, &in_pool("lab"), Some("10.1.1.1"), now)
        .await
        .unwrap();
    assert_eq!(got.id, first, "the first free one");
    assert_eq!(got.holder.as_deref(), Some("ana"));
    assert_eq!(got.lease_ends_at, Some(now + chrono::Duration::hours(48)));
    let got = f
        .hosts
        .allocate(&rui, &AllocateRequest::default(), None, now)
        .await
        .unwrap();
    assert_eq!(got.id, second, "any pool");
    let refused = f
        .hosts
        .allocate(&rui, &in_pool("lab"), None, now)
        .await
        .unwrap_err();
    let end = (now + chrono::Duration::hours(48)).format("%Y-%m-%d %H:%M UTC");
    assert_eq!(
        refused.to_string(),
        format!("No free node in pool “lab” (2 held, next lease ends at {end}).")
    );
    assert!(matches!(refused, HostsError::Conflict(_)));
    let pool = &f.hosts.pools().await.unwrap()[0];
    assert_eq!((pool.hosts, pool.free, pool.held), (2, 0, 2));

    // Unknown pools, bad lengths and tags: clear refusals, nothing taken.
    let err = f
        .hosts
        .allocate(&ana, &in_pool("gpu"), None, now)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "There is no pool “gpu”.");
    let long = AllocateRequest {
        hours: Some(0),
        ..in_pool("lab")
    };
    assert!(matches!(
        f.hosts.allocate(&ana, &long, None, now).await,
        Err(HostsError::Invalid(_))
    ));

    // Release: free again, the audit log has it all.
    let released = f
        .hosts
        .release(&ana, first, Some("10.1.1.1"), now)
        .await
        .unwrap();
    assert_eq!((released.holder, released.lease_ends_at), (None, None));
    let err = f.hosts.release(&ana, first, None, now).await.unwrap_err();
    assert_eq!(err.to_string(), "node1 is not held by anyone.");
    let err = f.hosts.release(&ana, second, None, now).await.unwrap_err();
    assert!(matches!(err, HostsError::Forbidden(_)), "{err}");
    let (log, total) = f
        .hosts
        .audit_log(
            &admin,
            &AuditFilter {
                limit: 50,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 3);
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["release", "allocate", "allocate"]);
    assert_eq!(log[0].source_ip.as_deref(), Some("10.1.1.1"));
    // Ana sees her own history, not Rui's.
    let (mine, _) = f
        .hosts
        .audit_log(
            &ana,
            &AuditFilter {
                limit: 50,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(mine.iter().all(|e| e.actor == "ana"), "{mine:?}");
    assert_eq!(mine.len(), 2);
}

#[tokio::test]
async fn fifty_clicks_for_five_nodes_give_five() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    for n in 1..=5 {
        ready_host(&f, &admin, n).await;
    }
    let mut people = Vec::new();
    for n in 0..50 {
        people.push(person(&f.db, &format!("user{n}"), false).await);
    }
    let tasks: Vec<_> = people
        .into_iter()
        .map(|p| {
            let hosts = f.hosts.clone();
            tokio::spawn(async move { hosts.allocate(&p, &in_pool("lab"), None, Utc::now()).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(host) => won.push((host.id, host.holder.unwrap())),
            Err(err) => assert!(
                err.to_string()
                    .starts_with("No free node in pool “lab” (5 held"),
                "{err}"
            ),
        }
    }
    assert_eq!(won.len(), 5);
    let mut ids: Vec<i64> = won.iter().map(|w| w.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "no host twice: {won:?}");
}

#[tokio::test]
async fn quotas_say_which_and_how_many() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    for n in 1..=4 {
        ready_host(&f, &admin, n).await;
    }
    set_pool(
        &f,
        &admin,
        PoolChange {
            max_per_user: Some(Some(2)),
            ..PoolChange::default()
        },
    )
    .await;
    let now = Utc::now();
    f.hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap();
    f.hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap();
    let err = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pool “lab” lends at most 2 nodes to one person and you hold 2 from it."
    );
    // A personal quota below it.
    crate::with_pool!(&f.db, pool => {
        sqlx::query("UPDATE users SET max_hosts = 1 WHERE id = $1").bind(ana.user_id).execute(pool).await.map(|_| ())
    })
    .unwrap();
    let err = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Your quota is 1 node and you hold 2; release one first."
    );
}

#[tokio::test]
async fn tags_pick_the_node_with_enough() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let small = ready_host(&f, &admin, 1).await;
    let big = ready_host(&f, &admin, 2).await;
    for (id, cores) in [(small, 8), (big, 64)] {
        f.hosts
            .update(
                id,
                HostChange {
                    vars: Some(serde_json::json!({"cores": cores, "disk": "vda"})),
                    ..Default::default()
                },
                &admin,
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let wanted = AllocateRequest {
        tags: serde_json::json!({"cores": 32})
            .as_object()
            .cloned()
            .unwrap(),
        ..in_pool("lab")
    };
    let got = f
        .hosts
        .allocate(&ana, &wanted, None, Utc::now())
        .await
        .unwrap();
    assert_eq!(got.id, big);
    let err = f
        .hosts
        .allocate(&ana, &wanted, None, Utc::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("No free node with cores ≥ 32 in pool “lab” (1 held"),
        "{err}"
    );
}

#[tokio::test]
async fn lending_keeps_the_end_and_only_holders_lend() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let rui = person(&f.db, "rui", false).await;
    let id = ready_host(&f, &admin, 1).await;
    set_pool(
        &f,
        &admin,
        PoolChange {
            default_lease_hours: Some(Some(24)),
            ..PoolChange::default()
        },
    )
    .await;
    let now = Utc::now();
    let got = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap();
    let err = f.hosts.give(&rui, id, "rui", None, now).await.unwrap_err();
    assert!(matches!(err, HostsError::Forbidden(_)), "{err}");
    let err = f
        .hosts
        .give(&ana, id, "nobody", None, now)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "There is no user “nobody”.");
    let lent = f.hosts.give(&ana, id, "rui", None, now).await.unwrap();
    assert_eq!(lent.holder.as_deref(), Some("rui"));
    assert_eq!(
        lent.lease_ends_at, got.lease_ends_at,
        "the lease's end stays"
    );
    let err = f.hosts.give(&ana, id, "ana", None, now).await.unwrap_err();
    assert!(
        matches!(err, HostsError::Forbidden(_)),
        "ana no longer holds it: {err}"
    );
    // Rui may now mark it (a holder's right) and Ana may not.
    assert!(f.hosts.mark(id, &ana, now).await.is_err());
    f.hosts.mark(id, &rui, now).await.unwrap();
    // An admin takes it back.
    let back = f.hosts.release(&admin, id, None, now).await.unwrap();
    assert_eq!(back.holder, None);
    let (log, _) = f
        .hosts
        .audit_log(
            &admin,
            &AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log[0].action, "force_release");
    assert_eq!(log[0].subject.as_deref(), Some("rui"));
    assert_eq!(
        (log[1].action.as_str(), log[1].actor.as_str()),
        ("mark", "rui")
    );
    assert_eq!(log[2].action, "lend");
}

#[tokio::test]
async fn leases_remind_expire_and_extend_on_the_clock() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let id = ready_host(&f, &admin, 1).await;
    set_pool(
        &f,
        &admin,
        PoolChange {
            default_lease_hours: Some(Some(96)),
            max_lease_hours: Some(Some(120)),
            ..PoolChange::default()
        },
    )
    .await;
    let t0 = Utc::now();
    let h = |n: i64| t0 + chrono::Duration::hours(n);
    f.hosts
        .allocate(&ana, &in_pool("lab"), None, t0)
        .await
        .unwrap();
    // Ends at t0 + 96 h: reminders at +24 h (3 days before) and +72 h.
    assert!(f.hosts.sweep_leases(h(23)).await.unwrap().is_empty());
    let notices = f.hosts.sweep_leases(h(25)).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].email, "ana@uminho.pt");
    assert_eq!(notices[0].subject, "Your lease of node1 ends in 2 days");
    assert!(
        f.hosts.sweep_leases(h(26)).await.unwrap().is_empty(),
        "once"
    );
    let notices = f.hosts.sweep_leases(h(73)).await.unwrap();
    assert_eq!(notices[0].subject, "Your lease of node1 ends in 23 hours");

    // Extending: by the default length from the current end, capped at
    // 120 h from now.
    let longer = f
        .hosts
        .extend(&ana, id, None, false, None, h(80))
        .await
        .unwrap();
    assert_eq!(longer.lease_ends_at, Some(h(96 + 96)));
    let longer = f
        .hosts
        .extend(&ana, id, None, false, None, h(80))
        .await
        .unwrap();
    assert_eq!(longer.lease_ends_at, Some(h(80 + 120)));
    let err = f
        .hosts
        .extend(&ana, id, None, false, None, h(80))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already runs as long as pool “lab” allows"),
        "{err}"
    );
    assert!(matches!(
        f.hosts.extend(&ana, id, None, true, None, h(80)).await,
        Err(HostsError::Forbidden(_))
    ));
    // Its reminders start again for the new end.
    assert!(f.hosts.sweep_leases(h(81)).await.unwrap().is_empty());
    assert_eq!(f.hosts.sweep_leases(h(129)).await.unwrap().len(), 1);

    // The end: released by Bootler, the holder told, the audit has it.
    let notices = f.hosts.sweep_leases(h(201)).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].subject, "Your lease of node1 has ended");
    let host = f.hosts.get(id).await.unwrap().unwrap();
    assert_eq!(host.holder, None);
    let (log, _) = f
        .hosts
        .audit_log(
            &admin,
            &AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (log[0].action.as_str(), log[0].actor.as_str()),
        ("expire", "bootler")
    );
    assert_eq!(log[0].subject.as_deref(), Some("ana"));
    assert!(f.hosts.sweep_leases(h(202)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pool_that_installs_afresh_keeps_released_nodes_until_installed() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let id = ready_host(&f, &admin, 1).await;
    let err = f
        .hosts
        .update_pool(
            &admin,
            "lab",
            &PoolChange {
                clean_install: Some(true),
                ..PoolChange::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("needs a `system` template"),
        "{err}"
    );
    // Templates must be global ones.
    set_pool(
        &f,
        &admin,
        PoolChange {
            clean_install: Some(true),
            system: Some(Some(TemplateChoice::Name("net".into()))),
            unattended: Some(Some(TemplateChoice::Name("answers".into()))),
            ..PoolChange::default()
        },
    )
    .await;
    let now = Utc::now();
    f.hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap();
    let host = f.hosts.release(&ana, id, None, now).await.unwrap();
    assert_eq!(host.state, HostState::InstallPending);
    assert_eq!(host.system.as_ref().map(|t| t.name.as_str()), Some("net"));
    let err = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("No free node in pool “lab” (0 held"),
        "{err}"
    );
    // It boots, installs, says done: free again.
    let script = f
        .hosts
        .boot(mac(1), None, ip("10.0.0.9"), now)
        .await
        .unwrap()
        .script;
    assert!(script.contains("kernel"), "{script}");
    f.hosts.done(mac(1), ip("10.0.0.9"), now).await.unwrap();
    let got = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, now)
        .await
        .unwrap();
    assert_eq!(got.id, id);
}

#[tokio::test]
async fn pools_limit_who_draws_from_them() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let rui = person(&f.db, "rui", false).await;
    ready_host(&f, &admin, 1).await;
    let err = f
        .hosts
        .update_pool(
            &admin,
            "lab",
            &PoolChange {
                access: Some(vec!["nobody".into()]),
                ..PoolChange::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "There is no user “nobody” (in `access`; write a group as @name)."
    );
    let pool = set_pool(
        &f,
        &admin,
        PoolChange {
            access: Some(vec!["ana".into()]),
            ..PoolChange::default()
        },
    )
    .await;
    assert_eq!(pool.access, ["ana"]);
    let err = f
        .hosts
        .allocate(&rui, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, HostsError::Forbidden(_)), "{err}");
    let err = f
        .hosts
        .allocate(&rui, &AllocateRequest::default(), None, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "There is no pool you may draw nodes from.");
    assert!(matches!(
        f.hosts
            .update_pool(&ana, "lab", &PoolChange::default())
            .await,
        Err(HostsError::Forbidden(_))
    ));
    f.hosts
        .allocate(&ana, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn pools_open_to_a_group_follow_its_members() {
    use crate::directory::{Builtin, Directory};
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let rui = person(&f.db, "rui", false).await;
    ready_host(&f, &admin, 1).await;
    let err = f
        .hosts
        .update_pool(
            &admin,
            "lab",
            &PoolChange {
                access: Some(vec!["@bad name".into()]),
                ..PoolChange::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HostsError::Invalid(_)), "{err}");
    // A group may be named before it has members.
    let pool = set_pool(
        &f,
        &admin,
        PoolChange {
            access: Some(vec!["@hpc".into(), "ana".into()]),
            ..PoolChange::default()
        },
    )
    .await;
    assert_eq!(pool.access, ["@hpc", "ana"]);
    let err = f
        .hosts
        .allocate(&rui, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, HostsError::Forbidden(_)), "{err}");
    assert!(f.hosts.pools_for(&rui).await.unwrap().is_empty());
    assert_eq!(f.hosts.availability(&rui).await.unwrap(), []);

    let directory = Builtin::new(f.db.clone());
    directory.set_group("hpc", &[rui.user_id]).await.unwrap();
    assert_eq!(directory.groups_of("rui").await.unwrap(), ["hpc"]);
    assert_eq!(
        directory.groups_of("ana").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(f.hosts.pools_for(&rui).await.unwrap().len(), 1);
    let host = f
        .hosts
        .allocate(&rui, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap();

    // Ana (by name) sees it taken, without who holds it; rui sees it his.
    let seen = f.hosts.availability(&ana).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].hosts.len(), 1);
    assert_eq!(seen[0].hosts[0].status, SlotStatus::Taken);
    assert_eq!(seen[0].hosts[0].id, None);
    assert_eq!(seen[0].hosts[0].holder, None);
    assert_eq!(seen[0].hosts[0].until, host.lease_ends_at);
    let his = f.hosts.availability(&rui).await.unwrap();
    assert_eq!(his[0].hosts[0].status, SlotStatus::Yours);
    assert_eq!(his[0].hosts[0].id, Some(host.id));
    let all = f.hosts.availability(&admin).await.unwrap();
    assert_eq!(all[0].hosts[0].holder.as_deref(), Some("rui"));

    // Out of the group: no more nodes from the pool.
    f.hosts
        .release(&rui, host.id, None, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        f.hosts.availability(&ana).await.unwrap()[0].hosts[0].status,
        SlotStatus::Free
    );
    directory.set_group("hpc", &[]).await.unwrap();
    assert!(directory.groups().await.unwrap().is_empty());
    let err = f
        .hosts
        .allocate(&rui, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, HostsError::Forbidden(_)), "{err}");
}

#[tokio::test]
async fn hosts_in_maintenance_are_not_given_out() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    let id = ready_host(&f, &admin, 1).await;
    let repair = HostChange {
        maintenance: Some(true),
        ..Default::default()
    };
    let host = f
        .hosts
        .update(id, repair.clone(), &admin, Utc::now())
        .await
        .unwrap();
    assert!(host.maintenance);
    let err = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("No free node in pool “lab” (0 held"),
        "{err}"
    );
    assert_eq!(f.hosts.pools().await.unwrap()[0].free, 0);
    // Back in service: given out again. Only admins decide.
    let back = HostChange {
        maintenance: Some(false),
        ..Default::default()
    };
    f.hosts
        .update(id, back.clone(), &admin, Utc::now())
        .await
        .unwrap();
    let got = f
        .hosts
        .allocate(&ana, &in_pool("lab"), None, Utc::now())
        .await
        .unwrap();
    assert!(matches!(
        f.hosts.update(id, repair, &ana, Utc::now()).await,
        Err(HostsError::Forbidden(_))
    ));
    let timeline = f.hosts.timeline(got.id, 10).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.detail == "boss changed maintenance on (out of allocation)"),
        "{timeline:?}"
    );
}

#[tokio::test]
async fn a_lease_shorter_than_a_reminder_is_not_reminded_at_once() {
    let f = fixture(60, 100).await;
    let admin = person(&f.db, "boss", true).await;
    let ana = person(&f.db, "ana", false).await;
    ready_host(&f, &admin, 1).await;
    set_pool(
        &f,
        &admin,
        PoolChange {
            default_lease_hours: Some(Some(48)),
            ..PoolChange::default()
        },
    )
    .await;
    let t0 = Utc::now();
    f.hosts
        .allocate(&ana, &in_pool("lab"), None, t0)
        .await
        .unwrap();
    // Two days: inside the 3-day reminder from the start; only the 1-day one comes.
    assert!(
        f.hosts
            .sweep_leases(t0 + chrono::Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    let notices = f
        .hosts
        .sweep_leases(t0 + chrono::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].subject, "Your lease of node1 ends in 23 hours");
}
