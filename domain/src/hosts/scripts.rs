//! The fixed iPXE scripts: the entry script DHCP hands out, and "boot from
//! the local disk". Every answer to iPXE starts with `#!ipxe`.

use super::Mac;

/// `GET /boot.ipxe` (thesis listing A.3, for net0…net3): bring up the
/// first interface that gets a DHCP lease and chain to Bootler with its MAC
/// and the host name DHCP gave (URL-encoded by iPXE).
pub fn entry(base_url: &str) -> String {
    let mut script = String::from("#!ipxe\n\n");
    for n in 0..4 {
        let next = if n < 3 {
            format!("try_net{}", n + 1)
        } else {
            "exit".to_string()
        };
        script.push_str(&format!(
            ":try_net{n}\n\
             isset ${{net{n}/mac}} && dhcp net{n} || goto {next}\n\
             set mac_address ${{net{n}/mac:hexhyp}}\n\
             goto chainboot\n\n"
        ));
    }
    script.push_str(&format!(
        ":chainboot\n\
         chain {base_url}/boot/${{mac_address}}?hostname=${{hostname:uristring}} || goto unreachable\n\
         exit\n\n\
         :unreachable\n\
         echo Bootler: {base_url} did not answer; booting from the local disk.\n\
         exit\n\n\
         :exit\n\
         echo Bootler: no network interface got an address; booting from the local disk.\n\
         exit\n"
    ));
    script
}

/// A node that is not marked for an install: leave iPXE, so the firmware
/// boots the next device (the local disk). `name` is a validated host name.
pub fn local_boot(name: Option<&str>, mac: Mac) -> String {
    let who = match name {
        Some(name) => format!("{name} ({mac})"),
        None => mac.to_string(),
    };
    format!(
        "#!ipxe\n\
         echo Bootler: {who} is not marked for an install; booting from the local disk.\n\
         exit\n"
    )
}
