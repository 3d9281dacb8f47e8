//! The IPMI power driver against a real BMC: OpenIPMI's `ipmi_sim` with a
//! chassis-control script that records every call (see
//! `support/ipmi_sim.rs`). Each action is checked twice: by what the
//! simulator asked the script to do, and by the real `ipmitool`.
//!
//! What ipmi_sim makes of Chassis Control: power up → `set power 1`; power
//! down → `set power 0`; power cycle → `set power 0`, then about a second
//! later `set power 1`; soft shutdown → `set shutdown 1` (the script plays
//! an obedient operating system and powers off). The boot flags of Set
//! System Boot Options become `set boot pxe`; ipmi_sim keeps the device but
//! not the "valid" and "next boot only" bits.

use std::time::{Duration, Instant};

use bootler_domain::power::ipmi::{Ipmi, IpmiSettings};
use bootler_domain::power::{PowerAction, PowerDriver, PowerError, PowerState};

use crate::support::ipmi_sim::{IpmiSim, VIEWER, VIEWER_PASSWORD};

fn driver(settings: IpmiSettings) -> Ipmi {
    Ipmi::new(settings)
}

#[tokio::test]
async fn on_off_and_status_over_rmcp_plus() {
    let sim = IpmiSim::start();
    let ipmi = driver(sim.settings());
    assert_eq!(ipmi.describe(), format!("IPMI at 127.0.0.1:{}", sim.port));

    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::Off));
    assert!(!sim.ipmitool_power());

    ipmi.act(PowerAction::On).await.unwrap();
    assert_eq!(sim.sets(), ["set power 1"]);
    assert!(sim.power());
    assert!(sim.ipmitool_power());
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::On));

    ipmi.act(PowerAction::Off).await.unwrap();
    assert_eq!(sim.sets(), ["set power 1", "set power 0"]);
    assert!(!sim.power());
    assert!(!sim.ipmitool_power());
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::Off));

    // The state is read from the chassis each time, not remembered.
    sim.set_power(true);
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::On));
    // Reading changes nothing.
    assert_eq!(sim.sets(), ["set power 1", "set power 0"]);
}

#[tokio::test]
async fn cycle_powers_off_then_on_and_starts_a_node_that_is_off() {
    let sim = IpmiSim::start();
    let ipmi = driver(sim.settings());
    sim.set_power(true);

    ipmi.act(PowerAction::Cycle).await.unwrap();
    let off = sim.wait_for("set power 0", Duration::from_secs(5));
    let on = sim.wait_for("set power 1", Duration::from_secs(10));
    assert!(on > off, "power came back before it went: {:?}", sim.log());
    assert!(
        on - off >= 0.5,
        "ipmi_sim keeps the power off for about a second, not {} s",
        on - off
    );
    assert_eq!(sim.sets(), ["set power 0", "set power 1"]);
    assert!(sim.power());
    assert!(sim.ipmitool_power());

    // A chassis that is off is powered on, not left off.
    ipmi.act(PowerAction::Off).await.unwrap();
    assert!(!sim.ipmitool_power());
    ipmi.act(PowerAction::Cycle).await.unwrap();
    assert_eq!(
        sim.sets(),
        ["set power 0", "set power 1", "set power 0", "set power 1"]
    );
    assert!(sim.power());
    assert!(sim.ipmitool_power());
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::On));
}

#[tokio::test]
async fn soft_asks_for_a_graceful_shutdown() {
    let sim = IpmiSim::start();
    let ipmi = driver(sim.settings());
    sim.set_power(true);
    assert!(sim.ipmitool_power());

    ipmi.act(PowerAction::Soft).await.unwrap();
    assert_eq!(sim.sets(), ["set shutdown 1"]);
    // The script's "operating system" shut down.
    assert!(!sim.power());
    assert!(!sim.ipmitool_power());
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::Off));
}

#[tokio::test]
async fn pxe_once_sets_the_next_boot_device() {
    let sim = IpmiSim::start();
    let ipmi = driver(sim.settings());
    assert!(ipmi.pxe_once().await.unwrap());
    assert_eq!(sim.sets(), ["set boot pxe"]);
    let flags = sim.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(flags.contains("Force PXE"), "{flags}");
    // Nothing was powered.
    assert!(!sim.power());
    assert!(!sim.ipmitool_power());
}

#[tokio::test]
async fn wake_is_not_an_ipmi_action() {
    let sim = IpmiSim::start();
    let ipmi = driver(sim.settings());
    assert!(!ipmi.can(PowerAction::Wake));
    for action in [
        PowerAction::On,
        PowerAction::Off,
        PowerAction::Cycle,
        PowerAction::Soft,
    ] {
        assert!(ipmi.can(action), "{action:?}");
    }
    let err = ipmi.act(PowerAction::Wake).await.unwrap_err();
    assert!(matches!(err, PowerError::Unsupported(_)), "{err:?}");
    assert!(sim.sets().is_empty());
}

#[tokio::test]
async fn every_cipher_suite_up_to_3_works() {
    let sim = IpmiSim::start();
    for suite in 0..=3 {
        let ipmi = driver(IpmiSettings {
            cipher_suite: suite,
            ..sim.settings()
        });
        let on = suite % 2 == 0;
        ipmi.act(if on {
            PowerAction::On
        } else {
            PowerAction::Off
        })
        .await
        .unwrap_or_else(|e| panic!("cipher suite {suite}: {e}"));
        assert_eq!(sim.power(), on, "cipher suite {suite}");
        assert_eq!(sim.ipmitool_power(), on, "cipher suite {suite}");
        let expected = if on { PowerState::On } else { PowerState::Off };
        assert_eq!(ipmi.state().await.unwrap(), Some(expected), "suite {suite}");
    }
    assert_eq!(
        sim.sets(),
        ["set power 1", "set power 0", "set power 1", "set power 0"]
    );
    let err = driver(IpmiSettings {
        cipher_suite: 17,
        ..sim.settings()
    })
    .state()
    .await
    .unwrap_err();
    assert!(matches!(err, PowerError::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn ipmi_1_5_sessions_with_md5() {
    let sim = IpmiSim::start();
    let ipmi = driver(IpmiSettings {
        lanplus: false,
        ..sim.settings()
    });
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::Off));
    ipmi.act(PowerAction::On).await.unwrap();
    assert!(sim.power());
    assert!(sim.ipmitool_power());
    assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::On));
    assert!(ipmi.pxe_once().await.unwrap());
    ipmi.act(PowerAction::Off).await.unwrap();
    assert!(!sim.ipmitool_power());
    assert_eq!(sim.sets(), ["set power 1", "set boot pxe", "set power 0"]);
}

#[tokio::test]
async fn a_wrong_password_or_user_is_refused_with_a_sentence() {
    let sim = IpmiSim::start();
    let refused = |who: &str| {
        format!(
            "The BMC at 127.0.0.1:{} refused user “{who}”: wrong user name or password.",
            sim.port
        )
    };
    // RMCP+: the BMC's RAKP 2 does not match our password.
    let err = driver(IpmiSettings {
        password: "wrong".into(),
        ..sim.settings()
    })
    .act(PowerAction::On)
    .await
    .unwrap_err();
    assert_eq!(err, PowerError::Refused(refused("admin")));
    // RMCP+: RAKP 2 says "unauthorized name".
    let err = driver(IpmiSettings {
        username: "nobody".into(),
        ..sim.settings()
    })
    .state()
    .await
    .unwrap_err();
    assert_eq!(err, PowerError::Refused(refused("nobody")));
    // IPMI 1.5: an unknown name is refused at the challenge.
    let err = driver(IpmiSettings {
        username: "nobody".into(),
        lanplus: false,
        ..sim.settings()
    })
    .state()
    .await
    .unwrap_err();
    assert_eq!(err, PowerError::Refused(refused("nobody")));
    // IPMI 1.5: a wrong password makes the BMC drop the activation.
    let started = Instant::now();
    let err = driver(IpmiSettings {
        password: "wrong".into(),
        lanplus: false,
        timeout: Duration::from_millis(300),
        retries: 1,
        ..sim.settings()
    })
    .state()
    .await
    .unwrap_err();
    let PowerError::Refused(text) = &err else {
        panic!("{err:?}")
    };
    let sentence = refused("admin");
    assert!(text.starts_with(sentence.trim_end_matches('.')), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Nothing happened to the chassis, and the real admin still gets in.
    assert!(sim.sets().is_empty());
    assert!(!sim.ipmitool_power());
}

#[tokio::test]
async fn a_user_without_the_administrator_role_is_refused() {
    // Over IPMI 1.5 only: ipmi_sim's RMCP+ does not hold a session to the
    // user's maximum privilege (`ipmitool -I lanplus -L ADMINISTRATOR`
    // powers on as "viewer" too), so there is nothing to refuse there.
    let sim = IpmiSim::start();
    let ipmi = driver(IpmiSettings {
        username: VIEWER.into(),
        password: VIEWER_PASSWORD.into(),
        lanplus: false,
        ..sim.settings()
    });
    let err = ipmi.act(PowerAction::On).await.unwrap_err();
    assert_eq!(
        err,
        PowerError::Refused(format!(
            "The BMC at 127.0.0.1:{} does not let user “viewer” be an administrator; \
             give that user the administrator role.",
            sim.port
        ))
    );
    assert!(sim.sets().is_empty());
    assert!(!sim.ipmitool_power());
}

#[tokio::test]
async fn sessions_are_closed_after_each_call() {
    // Every call opens a session; ipmi_sim holds at most 63 at once (it
    // does not enforce the user's 10) and stops answering after that: 70
    // calls over each protocol.
    let sim = IpmiSim::start();
    for lanplus in [true, false] {
        let ipmi = driver(IpmiSettings {
            lanplus,
            ..sim.settings()
        });
        for _ in 0..70 {
            assert_eq!(ipmi.state().await.unwrap(), Some(PowerState::Off));
        }
    }
    assert!(!sim.ipmitool_power());
}

#[tokio::test]
async fn lost_packets_are_sent_again() {
    // A relay in front of the simulator that drops every other datagram
    // on the way to it: each message gets through at its second attempt.
    let sim = IpmiSim::start();
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    back.connect(("127.0.0.1", sim.port)).await.unwrap();
    let port = front.local_addr().unwrap().port();
    let relay = tokio::spawn(async move {
        let (mut client, mut count) = (None, 0u32);
        let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
        loop {
            tokio::select! {
                got = front.recv_from(&mut up) => {
                    let (len, from) = got.unwrap();
                    client = Some(from);
                    count += 1;
                    if count % 2 == 0 {
                        back.send(&up[..len]).await.unwrap();
                    }
                }
                got = back.recv(&mut down) => {
                    let len = got.unwrap();
                    if let Some(client) = client {
                        front.send_to(&down[..len], client).await.unwrap();
                    }
                }
            }
        }
    });
    for (lanplus, on) in [(true, true), (false, false)] {
        let ipmi = driver(IpmiSettings {
            port,
            lanplus,
            timeout: Duration::from_millis(200),
            retries: 1,
            ..sim.settings()
        });
        let action = if on {
            PowerAction::On
        } else {
            PowerAction::Off
        };
        ipmi.act(action)
            .await
            .unwrap_or_else(|e| panic!("lanplus {lanplus}: {e}"));
        assert_eq!(sim.ipmitool_power(), on);
        let state = if on { PowerState::On } else { PowerState::Off };
        assert_eq!(ipmi.state().await.unwrap(), Some(state));
    }
    // Each command ran once, though sent twice.
    assert_eq!(sim.sets(), ["set power 1", "set power 0"]);
    relay.abort();
}

#[tokio::test]
async fn a_bmc_that_never_answers_is_unreachable_within_the_timeout() {
    // A bound socket that reads nothing and answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for lanplus in [true, false] {
        let settings = IpmiSettings {
            address: "127.0.0.1".into(),
            port,
            username: "admin".into(),
            password: "secret".into(),
            cipher_suite: 3,
            lanplus,
            timeout: Duration::from_millis(400),
            retries: 2,
        };
        let limit = settings.timeout * (settings.retries + 1) + Duration::from_secs(1);
        let ipmi = driver(settings);
        let started = Instant::now();
        let err = ipmi.act(PowerAction::On).await.unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            err,
            PowerError::Unreachable(format!(
                "The BMC at 127.0.0.1:{port} did not answer within 1.2 s; \
                 check its address and that it is on the network."
            ))
        );
        assert!(elapsed < limit, "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(1200), "took {elapsed:?}");
    }
    drop(silent);
}

#[tokio::test]
async fn a_closed_port_is_unreachable_at_once() {
    let port = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let ipmi = driver(IpmiSettings {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: "secret".into(),
        cipher_suite: 3,
        lanplus: true,
        timeout: Duration::from_secs(1),
        retries: 2,
    });
    let err = ipmi.state().await.unwrap_err();
    let PowerError::Unreachable(text) = &err else {
        panic!("{err:?}")
    };
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}
