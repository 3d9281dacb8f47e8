//! Boot requests against a real SQLite database.

use std::net::IpAddr;

use chrono::Utc;

use super::*;

struct Fixture {
    hosts: Hosts,
    _dir: tempfile::TempDir,
}

async fn fixture(per_minute: u32, max_discovered: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let hosts = Hosts::new(
        db,
        BootSettings {
            base_url: "http://bootler.lab".into(),
            allowed_networks: vec![Network::parse("10.0.0.0/8").unwrap()],
            discovery_per_minute: per_minute,
            max_discovered,
        },
    );
    Fixture { hosts, _dir: dir }
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
