//! Wake-on-LAN: the magic packet (six 0xFF bytes, then the MAC sixteen
//! times) over UDP to a broadcast address. Power on only; the state stays
//! unknown unless another driver reads it.

use std::net::SocketAddr;

use async_trait::async_trait;

use super::{PowerAction, PowerDriver, PowerError, PowerState};
use crate::hosts::Mac;

/// The default broadcast address and port.
pub const BROADCAST: &str = "255.255.255.255";
pub const PORT: u16 = 9;

/// The 102-byte magic packet for `mac`.
pub fn magic_packet(mac: &Mac) -> [u8; 102] {
    let mut packet = [0xFF; 102];
    let bytes = mac.bytes();
    for chunk in packet[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&bytes);
    }
    packet
}

pub struct WakeOnLan {
    mac: Mac,
    target: SocketAddr,
    /// The network interface packets leave by (Linux `SO_BINDTODEVICE`);
    /// none: wherever the routing table sends them.
    interface: Option<String>,
}

/// Whether `name` can be a network interface's name (Linux: 1 to 15
/// characters, no '/', no white space).
pub fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

impl WakeOnLan {
    /// Wakes `mac` by a packet to `broadcast:port` (`broadcast` an IPv4 or
    /// IPv6 address; a subnet's broadcast address reaches across a router
    /// that forwards directed broadcasts).
    pub fn new(mac: Mac, broadcast: &str, port: u16) -> Result<WakeOnLan, String> {
        let ip: std::net::IpAddr = broadcast.trim().parse().map_err(|_| {
            format!("“{broadcast}” is not an IP address to send Wake-on-LAN packets to.")
        })?;
        Ok(WakeOnLan {
            mac,
            target: SocketAddr::new(ip, port),
            interface: None,
        })
    }

    /// Sends the packets out of `interface` (needs `CAP_NET_RAW`).
    pub fn via(mut self, interface: Option<&str>) -> Result<WakeOnLan, String> {
        if let Some(name) = interface {
            if !valid_interface(name) {
                return Err(format!(
                    "“{}” is not a network interface's name.",
                    name.chars().take(20).collect::<String>()
                ));
            }
            self.interface = Some(name.to_string());
        }
        Ok(self)
    }
}

#[async_trait]
impl PowerDriver for WakeOnLan {
    fn describe(&self) -> String {
        match &self.interface {
            Some(dev) => format!("Wake-on-LAN to {} via {dev} for {}", self.target, self.mac),
            None => format!("Wake-on-LAN to {} for {}", self.target, self.mac),
        }
    }

    fn can(&self, action: PowerAction) -> bool {
        matches!(action, PowerAction::Wake | PowerAction::On)
    }

    async fn act(&self, action: PowerAction) -> Result<(), PowerError> {
        if !self.can(action) {
            return Err(PowerError::Unsupported(format!(
                "Wake-on-LAN can only start a node, not “{}” it.",
                action.as_str()
            )));
        }
        let bind: SocketAddr = if self.target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let unreachable = |e: std::io::Error| {
            PowerError::Unreachable(format!(
                "The Wake-on-LAN packet to {} could not be sent: {e}.",
                self.target
            ))
        };
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(unreachable)?;
        socket.set_broadcast(true).map_err(unreachable)?;
        if let Some(dev) = &self.interface {
            // No such interface, or no right to choose it: the same next time.
            bind_device(&socket, dev).map_err(|e| {
                PowerError::Refused(format!(
                    "Wake-on-LAN cannot send from interface {dev}: {e}{}.",
                    if e.raw_os_error() == Some(1) {
                        " (Bootler needs the CAP_NET_RAW capability for that)"
                    } else {
                        ""
                    }
                ))
            })?;
        }
        let packet = magic_packet(&self.mac);
        // Packets get lost and cost nothing: send three.
        for _ in 0..3 {
            socket
                .send_to(&packet, self.target)
                .await
                .map_err(unreachable)?;
        }
        Ok(())
    }

    async fn state(&self) -> Result<Option<PowerState>, PowerError> {
        Ok(None)
    }

    async fn pxe_once(&self) -> Result<bool, PowerError> {
        Ok(false)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_device(socket: &tokio::net::UdpSocket, dev: &str) -> std::io::Result<()> {
    socket.bind_device(Some(dev.as_bytes()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_device(_: &tokio::net::UdpSocket, _: &str) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "choosing the interface works on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_is_six_ff_then_the_mac_sixteen_times() {
        let mac = Mac::parse("52:54:00:12:34:56").unwrap();
        let packet = magic_packet(&mac);
        assert_eq!(packet.len(), 102);
        assert_eq!(packet[..6], [0xFF; 6]);
        for n in 0..16 {
            assert_eq!(
                packet[6 + n * 6..12 + n * 6],
                [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
            );
        }
    }

    #[tokio::test]
    async fn a_listener_receives_the_packet() {
        let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mac = Mac::parse("52-54-00-aa-bb-cc").unwrap();
        let driver = WakeOnLan::new(mac, "127.0.0.1", port).unwrap();
        driver.act(PowerAction::Wake).await.unwrap();
        let mut buf = [0u8; 200];
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            listener.recv_from(&mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 102);
        assert_eq!(buf[..102], magic_packet(&mac));
        assert!(matches!(
            driver.act(PowerAction::Off).await,
            Err(PowerError::Unsupported(_))
        ));
        assert!(WakeOnLan::new(mac, "not an address", 9).is_err());
    }

    /// Packets leave by the interface asked for: by loopback they arrive;
    /// an interface that does not exist is an error that names it.
    #[tokio::test]
    async fn packets_leave_by_the_interface_asked_for() {
        let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mac = Mac::parse("52-54-00-aa-bb-cd").unwrap();
        let driver = WakeOnLan::new(mac, "127.0.0.1", port)
            .unwrap()
            .via(Some("lo"))
            .unwrap();
        assert!(
            driver.describe().contains("via lo"),
            "{}",
            driver.describe()
        );
        driver.act(PowerAction::Wake).await.unwrap();
        let mut buf = [0u8; 200];
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            listener.recv_from(&mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(buf[..n], magic_packet(&mac));

        let nowhere = WakeOnLan::new(mac, "127.0.0.1", port)
            .unwrap()
            .via(Some("bootlr-none0"))
            .unwrap();
        let err = nowhere.act(PowerAction::Wake).await.unwrap_err();
        assert!(err.to_string().contains("bootlr-none0"), "{err}");
        assert!(
            WakeOnLan::new(mac, "127.0.0.1", port)
                .unwrap()
                .via(Some("eth0/../x"))
                .is_err()
        );
    }
}
