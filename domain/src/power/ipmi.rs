//! IPMI over LAN: chassis power and the next boot's device through a
//! node's BMC (baseboard management controller).
//!
//! Every call opens its own session and closes it again: Get Channel
//! Authentication Capabilities, then either an RMCP+ session (IPMI 2.0:
//! Open Session and RAKP 1–4; cipher suites 0–3, where 3 is
//! RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128) or an IPMI 1.5 session
//! (Get Session Challenge and Activate Session with MD5 or a straight
//! password). The session is raised to the administrator privilege with
//! Set Session Privilege Level (a session starts at "user", and the chassis
//! commands need more), then the command goes out and Close Session ends
//! it.
//!
//! The protocol is written here on top of a tokio UDP socket; each message
//! waits `timeout` for its answer and is sent again up to `retries` times.
//! IPMI 1.5 answers are not checked for authenticity (the protocol's MD5
//! codes are weak anyway); RMCP+ answers are, with integrity on (suites 2
//! and 3).

use std::net::SocketAddr;
use std::time::Duration;

use aes::Aes128;
use async_trait::async_trait;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{PowerAction, PowerDriver, PowerError, PowerState};

/// How to reach one BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiSettings {
    /// Host name or IP address of the BMC.
    pub address: String,
    /// UDP port, 623 normally.
    pub port: u16,
    pub username: String,
    pub password: String,
    /// RMCP+ cipher suite: 3 (HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128), or
    /// 0, 1, 2 for BMCs that offer less.
    pub cipher_suite: u8,
    /// `true`: RMCP+ (IPMI 2.0, `ipmitool -I lanplus`); `false`: RMCP with
    /// an IPMI 1.5 session (MD5 or straight password, `ipmitool -I lan`).
    pub lanplus: bool,
    /// How long each attempt of one message waits for its answer.
    pub timeout: Duration,
    /// How many times a message is sent again when no answer came.
    pub retries: u32,
}

/// The IPMI power driver.
pub struct Ipmi {
    settings: IpmiSettings,
}

impl Ipmi {
    pub fn new(settings: IpmiSettings) -> Ipmi {
        Ipmi { settings }
    }

    /// "10.0.0.5:623", "[fe80::1]:623": how messages name the BMC.
    fn target(&self) -> String {
        let address = &self.settings.address;
        if address.contains(':') && !address.starts_with('[') {
            format!("[{address}]:{}", self.settings.port)
        } else {
            format!("{address}:{}", self.settings.port)
        }
    }

    /// Opens a session with administrator privilege.
    async fn open(&self) -> Result<Session, PowerError> {
        let link = Link::connect(self).await?;
        let mut session = if self.settings.lanplus {
            open_rmcp_plus(link, &self.settings).await?
        } else {
            open_v15(link, &self.settings).await?
        };
        match session
            .request(NETFN_APP, CMD_SET_SESSION_PRIVILEGE, &[PRIV_ADMIN])
            .await
        {
            Ok((0, _)) => Ok(session),
            Ok((code, _)) => {
                session.close().await;
                Err(PowerError::Refused(format!(
                    "The BMC at {} did not give user “{}” the administrator privilege \
                     (completion code {}); give that user the administrator role on the BMC.",
                    session.link.target,
                    self.settings.username,
                    completion(code)
                )))
            }
            Err(err) => {
                session.close().await;
                Err(err)
            }
        }
    }
}

#[async_trait]
impl PowerDriver for Ipmi {
    fn describe(&self) -> String {
        format!("IPMI at {}", self.target())
    }

    fn can(&self, action: PowerAction) -> bool {
        matches!(
            action,
            PowerAction::On | PowerAction::Off | PowerAction::Cycle | PowerAction::Soft
        )
    }

    async fn act(&self, action: PowerAction) -> Result<(), PowerError> {
        if action == PowerAction::Wake {
            return Err(PowerError::Unsupported(
                "IPMI does not send Wake-on-LAN packets; use power on instead.".into(),
            ));
        }
        let mut session = self.open().await?;
        let result = chassis_control(&mut session, action).await;
        session.close().await;
        result
    }

    async fn state(&self) -> Result<Option<PowerState>, PowerError> {
        let mut session = self.open().await?;
        let result = chassis_power(&mut session).await;
        session.close().await;
        result.map(Some)
    }

    async fn pxe_once(&self) -> Result<bool, PowerError> {
        let mut session = self.open().await?;
        let result = session
            .request(NETFN_CHASSIS, CMD_SET_BOOT_OPTIONS, &BOOT_FLAGS_PXE_ONCE)
            .await;
        session.close().await;
        match result? {
            (0, _) => Ok(true),
            // Parameter not supported, or no boot options at all: this BMC
            // cannot choose the next boot's device.
            (0x80 | 0xC1, _) => Ok(false),
            (code, _) => Err(session.refused("Set System Boot Options (PXE once)", code)),
        }
    }
}

async fn chassis_control(session: &mut Session, action: PowerAction) -> Result<(), PowerError> {
    let (control, what) = match action {
        PowerAction::Off => (CONTROL_DOWN, "Chassis Control (power off)"),
        PowerAction::Soft => (CONTROL_SOFT, "Chassis Control (soft shutdown)"),
        // A BMC need not cycle a chassis that is off (many answer 0xD5):
        // "cycle" then means "on".
        PowerAction::Cycle if chassis_power(session).await? == PowerState::On => {
            (CONTROL_CYCLE, "Chassis Control (power cycle)")
        }
        _ => (CONTROL_UP, "Chassis Control (power on)"),
    };
    session
        .command(CMD_CHASSIS_CONTROL, &[control], what)
        .await
        .map(|_| ())
}

async fn chassis_power(session: &mut Session) -> Result<PowerState, PowerError> {
    let data = session
        .command(CMD_GET_CHASSIS_STATUS, &[], "Get Chassis Status")
        .await?;
    // Bit 0 of the first byte: power is on.
    match data.first() {
        Some(byte) if byte & 1 == 1 => Ok(PowerState::On),
        Some(_) => Ok(PowerState::Off),
        None => Err(short_answer(&session.link.target, "Get Chassis Status")),
    }
}

// --- Constants ----------------------------------------------------------

/// RMCP version 1.0, reserved, sequence 0xFF (no RMCP ACK), class IPMI.
const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
const BMC_ADDR: u8 = 0x20;
const CONSOLE_ADDR: u8 = 0x81;

const NETFN_CHASSIS: u8 = 0x00;
const NETFN_APP: u8 = 0x06;

const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
const CMD_CHASSIS_CONTROL: u8 = 0x02;
const CMD_SET_BOOT_OPTIONS: u8 = 0x08;
const CMD_GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
const CMD_GET_SESSION_CHALLENGE: u8 = 0x39;
const CMD_ACTIVATE_SESSION: u8 = 0x3A;
const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3B;
const CMD_CLOSE_SESSION: u8 = 0x3C;

const CONTROL_DOWN: u8 = 0x00;
const CONTROL_UP: u8 = 0x01;
const CONTROL_CYCLE: u8 = 0x02;
const CONTROL_SOFT: u8 = 0x05;

const PRIV_ADMIN: u8 = 0x04;

/// Set System Boot Options, parameter 5 (boot flags): valid, this boot
/// only, legacy BIOS; boot device 0001b (PXE) in bits 5:2 of byte 2.
const BOOT_FLAGS_PXE_ONCE: [u8; 6] = [0x05, 0x80, 0x04, 0x00, 0x00, 0x00];

/// IPMI 1.5 session authentication types.
const AUTH_NONE: u8 = 0x00;
const AUTH_MD5: u8 = 0x02;
const AUTH_PASSWORD: u8 = 0x04;
/// The session header's "authentication type" of an RMCP+ packet.
const AUTH_RMCP_PLUS: u8 = 0x06;

/// RMCP+ payload types.
const PAYLOAD_IPMI: u8 = 0x00;
const PAYLOAD_OPEN_SESSION_REQUEST: u8 = 0x10;
const PAYLOAD_OPEN_SESSION_RESPONSE: u8 = 0x11;
const PAYLOAD_RAKP1: u8 = 0x12;
const PAYLOAD_RAKP2: u8 = 0x13;
const PAYLOAD_RAKP3: u8 = 0x14;
const PAYLOAD_RAKP4: u8 = 0x15;
const PAYLOAD_ENCRYPTED: u8 = 0x80;
const PAYLOAD_AUTHENTICATED: u8 = 0x40;

/// The role byte of RAKP 1: administrator, user looked up by name only.
const RAKP_ROLE: u8 = PRIV_ADMIN | 0x10;

/// Length of an HMAC-SHA1-96 integrity code.
const HMAC_SHA1_96: usize = 12;

// --- Transport ----------------------------------------------------------

/// A UDP socket connected to one BMC, and how long to wait.
struct Link {
    socket: UdpSocket,
    target: String,
    username: String,
    timeout: Duration,
    retries: u32,
}

impl Link {
    async fn connect(ipmi: &Ipmi) -> Result<Link, PowerError> {
        let target = ipmi.target();
        let settings = &ipmi.settings;
        let unreachable = |detail: String| {
            PowerError::Unreachable(format!("Cannot reach the BMC at {target}: {detail}."))
        };
        let host = settings
            .address
            .trim_start_matches('[')
            .trim_end_matches(']');
        let patience = settings
            .timeout
            .saturating_mul(settings.retries.saturating_add(1));
        // Name resolution can hang as long as a dead BMC: it gets the same
        // patience as one message.
        let addr: SocketAddr =
            tokio::time::timeout(patience, tokio::net::lookup_host((host, settings.port)))
                .await
                .map_err(|_| {
                    unreachable(format!(
                        "its address did not resolve within {}",
                        seconds(patience)
                    ))
                })?
                .map_err(|e| unreachable(format!("its address does not resolve ({e})")))?
                .next()
                .ok_or_else(|| unreachable("its address does not resolve".into()))?;
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| unreachable(format!("no local UDP socket ({e})")))?;
        socket
            .connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Link {
            socket,
            target,
            username: settings.username.clone(),
            timeout: settings.timeout,
            retries: settings.retries,
        })
    }

    /// How long one message may take with all its attempts.
    fn patience(&self) -> Duration {
        self.timeout.saturating_mul(self.retries.saturating_add(1))
    }

    fn no_answer(&self) -> PowerError {
        PowerError::Unreachable(format!(
            "The BMC at {} did not answer within {}; check its address and that it is on the network.",
            self.target,
            seconds(self.patience())
        ))
    }

    fn wrong_login(&self) -> PowerError {
        PowerError::Refused(format!(
            "The BMC at {} refused user “{}”: wrong user name or password.",
            self.target, self.username
        ))
    }

    /// Sends `build(attempt)` until `accept` takes a datagram, at most
    /// `retries + 1` times, each waiting `timeout`. Returns what `accept`
    /// made of the answer and how many packets went out, or `None` when no
    /// acceptable answer came.
    async fn exchange<T>(
        &self,
        mut build: impl FnMut(u32) -> Vec<u8>,
        mut accept: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Option<(T, u32)>, PowerError> {
        let mut buf = vec![0u8; 2048];
        for attempt in 0..=self.retries {
            let packet = build(attempt);
            self.socket
                .send(&packet)
                .await
                .map_err(|e| self.io_error(e))?;
            let deadline = Instant::now() + self.timeout;
            loop {
                match tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await {
                    Err(_elapsed) => break,
                    Ok(Err(e)) => return Err(self.io_error(e)),
                    Ok(Ok(len)) => {
                        if let Some(found) = buf.get(..len).and_then(&mut accept) {
                            return Ok(Some((found, attempt + 1)));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    fn io_error(&self, e: std::io::Error) -> PowerError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            PowerError::Unreachable(format!(
                "Nothing answers IPMI at {} (the port is closed); check the BMC's address and port.",
                self.target
            ))
        } else {
            PowerError::Unreachable(format!("Cannot reach the BMC at {}: {e}.", self.target))
        }
    }
}

/// "3 s", "1.5 s", "500 ms".
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else if duration >= Duration::from_secs(1) {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

fn random<const N: usize>() -> Result<[u8; N], PowerError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        PowerError::Unreachable(format!(
            "No random numbers for an IPMI session from the operating system: {e}."
        ))
    })?;
    Ok(bytes)
}

/// A random session ID or sequence number; never 0 (reserved).
fn random_nonzero() -> Result<u32, PowerError> {
    Ok(u32::from_le_bytes(random::<4>()?).max(1))
}

// --- IPMI messages ------------------------------------------------------

/// The two's complement checksum IPMI puts after the header and the body.
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, byte| sum.wrapping_add(*byte))
        .wrapping_neg()
}

/// An IPMI request message from the remote console (software ID 0x81)
/// to the BMC (0x20), LUN 0.
fn request_message(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut msg = vec![BMC_ADDR, netfn << 2];
    msg.push(checksum(&msg));
    msg.extend_from_slice(&[CONSOLE_ADDR, rq_seq << 2, cmd]);
    msg.extend_from_slice(data);
    let sum = checksum(msg.get(3..).unwrap_or_default());
    msg.push(sum);
    msg
}

/// The completion code and data of the answer to `request_message(netfn,
/// cmd, rq_seq, _)`, or `None` for anything else.
fn parse_response(msg: &[u8], netfn: u8, cmd: u8, rq_seq: u8) -> Option<(u8, Vec<u8>)> {
    if msg.len() < 8 {
        return None;
    }
    let (head, rest) = msg.split_at(3);
    let header_ok = checksum(head.get(..2)?) == head[2];
    let body_ok = checksum(rest.get(..rest.len() - 1)?) == *rest.last()?;
    if !header_ok
        || !body_ok
        || head[0] != CONSOLE_ADDR
        || head[1] >> 2 != netfn | 1
        || rest[1] >> 2 != rq_seq & 0x3F
        || rest[2] != cmd
    {
        return None;
    }
    Some((rest[3], rest[4..rest.len() - 1].to_vec()))
}

/// A completion code for people: "0xD4 (insufficient privilege)".
fn completion(code: u8) -> String {
    let meaning = match code {
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC2 => "invalid command for this LUN",
        0xC3 => "timeout while processing",
        0xC4 => "out of space",
        0xC5 => "reservation cancelled",
        0xC6 => "request data truncated",
        0xC7 => "request data length invalid",
        0xC8 => "request data field length limit exceeded",
        0xC9 => "parameter out of range",
        0xCA => "cannot return the number of requested data bytes",
        0xCB => "requested sensor, data or record not present",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for this sensor or record type",
        0xCE => "no response could be provided",
        0xCF => "duplicated request",
        0xD0 => "SDR repository in update mode",
        0xD1 => "device in firmware update mode",
        0xD2 => "BMC initialization in progress",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege",
        0xD5 => "not supported in the present state",
        0xD6 => "sub-function disabled or unavailable",
        0xFF => "unspecified error",
        _ => "",
    };
    if meaning.is_empty() {
        format!("0x{code:02X}")
    } else {
        format!("0x{code:02X} ({meaning})")
    }
}

// --- IPMI 1.5 session packets --------------------------------------------

/// RMCP + IPMI 1.5 session header + message. `auth_code` is present unless
/// the authentication type is none.
fn v15_packet(
    auth_type: u8,
    seq: u32,
    session_id: u32,
    auth_code: Option<[u8; 16]>,
    msg: &[u8],
) -> Vec<u8> {
    let mut packet = RMCP_HEADER.to_vec();
    packet.push(auth_type);
    packet.extend_from_slice(&seq.to_le_bytes());
    packet.extend_from_slice(&session_id.to_le_bytes());
    if let Some(code) = auth_code {
        packet.extend_from_slice(&code);
    }
    packet.push(msg.len() as u8);
    packet.extend_from_slice(msg);
    packet
}

/// The IPMI message inside an IPMI 1.5 session packet.
fn v15_message(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.get(..4)? != RMCP_HEADER {
        return None;
    }
    let auth_type = *datagram.get(4)?;
    if auth_type == AUTH_RMCP_PLUS {
        return None;
    }
    let len_at = if auth_type == AUTH_NONE { 13 } else { 29 };
    let len = usize::from(*datagram.get(len_at)?);
    datagram.get(len_at + 1..len_at + 1 + len)
}

/// A password as IPMI 1.5 keeps it: 16 bytes, zero-padded.
fn password16(password: &str) -> [u8; 16] {
    let mut padded = [0u8; 16];
    for (slot, byte) in padded.iter_mut().zip(password.bytes()) {
        *slot = byte;
    }
    padded
}

/// The authentication code of an IPMI 1.5 packet: MD5 over password,
/// session ID, message, sequence number, password; or the password itself.
fn v15_auth_code(
    auth_type: u8,
    password: &[u8; 16],
    session_id: u32,
    msg: &[u8],
    seq: u32,
) -> [u8; 16] {
    if auth_type != AUTH_MD5 {
        return *password;
    }
    let mut md5 = Md5::new();
    md5.update(password);
    md5.update(session_id.to_le_bytes());
    md5.update(msg);
    md5.update(seq.to_le_bytes());
    md5.update(password);
    md5.finalize().into()
}

// --- RMCP+ packets and keys ----------------------------------------------

type HmacSha1 = Hmac<Sha1>;

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match HmacSha1::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 20],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Session keys derived from the session integrity key (SIK): K1 keys the
/// integrity codes, the first 16 bytes of K2 the AES-CBC-128 encryption.
fn derive_keys(sik: &[u8; 20]) -> ([u8; 20], [u8; 16]) {
    let k1 = hmac_sha1(sik, &[&[0x01; 20]]);
    let k2 = hmac_sha1(sik, &[&[0x02; 20]]);
    let mut aes_key = [0u8; 16];
    aes_key.copy_from_slice(&k2[..16]);
    (k1, aes_key)
}

/// AES-CBC-128 payload: a random IV, then the payload followed by pad bytes
/// 1, 2, 3… and their count, up to a multiple of 16 bytes.
fn encrypt_payload(key: &[u8; 16], iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
    let pad = (16 - (plain.len() + 1) % 16) % 16;
    let mut body = plain.to_vec();
    body.extend((1..=pad).map(|n| n as u8));
    body.push(pad as u8);
    let len = body.len();
    let encryptor = cbc::Encryptor::<Aes128>::new(key.into(), &iv.into());
    // The body is a whole number of blocks, so this cannot fail.
    let cipher = match encryptor.encrypt_padded_mut::<NoPadding>(&mut body, len) {
        Ok(cipher) => cipher.to_vec(),
        Err(_) => Vec::new(),
    };
    let mut out = iv.to_vec();
    out.extend_from_slice(&cipher);
    out
}

fn decrypt_payload(key: &[u8; 16], payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < 32 || !payload.len().is_multiple_of(16) {
        return None;
    }
    let (iv, cipher) = payload.split_at(16);
    let decryptor = cbc::Decryptor::<Aes128>::new_from_slices(key, iv).ok()?;
    let mut body = cipher.to_vec();
    let plain = decryptor.decrypt_padded_mut::<NoPadding>(&mut body).ok()?;
    let pad = usize::from(*plain.last()?);
    let keep = plain.len().checked_sub(pad + 1)?;
    Some(plain[..keep].to_vec())
}

/// RMCP + IPMI 2.0 session header + payload (+ integrity trailer with
/// HMAC-SHA1-96 under `k1`).
fn v20_packet(
    payload_type: u8,
    session_id: u32,
    seq: u32,
    payload: &[u8],
    k1: Option<&[u8; 20]>,
) -> Vec<u8> {
    let mut session = vec![AUTH_RMCP_PLUS, payload_type];
    session.extend_from_slice(&session_id.to_le_bytes());
    session.extend_from_slice(&seq.to_le_bytes());
    session.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    session.extend_from_slice(payload);
    if let Some(k1) = k1 {
        let pad = (4 - (session.len() + 2) % 4) % 4;
        session.extend(std::iter::repeat_n(0xFF, pad));
        session.push(pad as u8);
        session.push(0x07);
        let code = hmac_sha1(k1, &[&session]);
        session.extend_from_slice(&code[..HMAC_SHA1_96]);
    }
    let mut packet = RMCP_HEADER.to_vec();
    packet.extend_from_slice(&session);
    packet
}

/// An RMCP+ packet read back: payload type (with the encrypted and
/// authenticated bits), session ID and payload. With `k1`, only packets
/// with a valid integrity code pass.
fn v20_parse<'a>(datagram: &'a [u8], k1: Option<&[u8; 20]>) -> Option<(u8, u32, &'a [u8])> {
    if datagram.get(..4)? != RMCP_HEADER {
        return None;
    }
    let session = datagram.get(4..)?;
    if *session.first()? != AUTH_RMCP_PLUS {
        return None;
    }
    let payload_type = *session.get(1)?;
    let session_id = u32::from_le_bytes(session.get(2..6)?.try_into().ok()?);
    let len = usize::from(u16::from_le_bytes(session.get(10..12)?.try_into().ok()?));
    let payload = session.get(12..12 + len)?;
    if let Some(k1) = k1 {
        if payload_type & PAYLOAD_AUTHENTICATED == 0 {
            return None;
        }
        let signed_len = session.len().checked_sub(HMAC_SHA1_96)?;
        let (signed, code) = session.split_at(signed_len);
        let expected = hmac_sha1(k1, &[signed]);
        if !constant_time_eq(&expected[..HMAC_SHA1_96], code) {
            return None;
        }
    }
    Some((payload_type, session_id, payload))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The authentication, integrity and confidentiality algorithms of a
/// cipher suite.
fn cipher_suite(suite: u8) -> Option<(u8, u8, u8)> {
    match suite {
        0 => Some((0, 0, 0)),
        1 => Some((1, 0, 0)),
        2 => Some((1, 1, 0)),
        3 => Some((1, 1, 1)),
        _ => None,
    }
}

/// What the two sides of RAKP know once RAKP 2 arrived.
struct Rakp<'a> {
    console_id: u32,
    bmc_id: u32,
    console_random: [u8; 16],
    bmc_random: [u8; 16],
    bmc_guid: [u8; 16],
    username: &'a [u8],
    password: &'a [u8],
}

impl Rakp<'_> {
    /// The key exchange code RAKP 2 carries: HMAC(Kuid, SIDm, SIDc, Rm,
    /// Rc, GUIDc, ROLEm, ULENGTHm, UNAMEm).
    fn rakp2_code(&self) -> [u8; 20] {
        hmac_sha1(
            self.password,
            &[
                &self.console_id.to_le_bytes(),
                &self.bmc_id.to_le_bytes(),
                &self.console_random,
                &self.bmc_random,
                &self.bmc_guid,
                &[RAKP_ROLE, self.username.len() as u8],
                self.username,
            ],
        )
    }

    /// The key exchange code RAKP 3 carries: HMAC(Kuid, Rc, SIDm, ROLEm,
    /// ULENGTHm, UNAMEm).
    fn rakp3_code(&self) -> [u8; 20] {
        hmac_sha1(
            self.password,
            &[
                &self.bmc_random,
                &self.console_id.to_le_bytes(),
                &[RAKP_ROLE, self.username.len() as u8],
                self.username,
            ],
        )
    }

    /// The session integrity key (Kg is Kuid: no BMC key is set).
    fn sik(&self) -> [u8; 20] {
        hmac_sha1(
            self.password,
            &[
                &self.console_random,
                &self.bmc_random,
                &[RAKP_ROLE, self.username.len() as u8],
                self.username,
            ],
        )
    }

    /// The integrity check value RAKP 4 carries: HMAC-SHA1-96(SIK, Rm,
    /// SIDc, GUIDc).
    fn rakp4_code(&self, sik: &[u8; 20]) -> [u8; 20] {
        hmac_sha1(
            sik,
            &[
                &self.console_random,
                &self.bmc_id.to_le_bytes(),
                &self.bmc_guid,
            ],
        )
    }
}

/// RMCP+ status codes (Open Session, RAKP) for people.
fn rmcp_status(code: u8) -> &'static str {
    match code {
        0x01 => "no resources for another session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level",
        0x0B => "no resources for a session at this role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite matches the proposed algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status",
    }
}

// --- Sessions ------------------------------------------------------------

enum Kind {
    V15 {
        auth_type: u8,
        password: [u8; 16],
        session_id: u32,
    },
    V20 {
        /// Our session ID: the BMC's answers carry it.
        console_id: u32,
        /// The BMC's session ID: our packets carry it.
        bmc_id: u32,
        k1: Option<[u8; 20]>,
        aes_key: Option<[u8; 16]>,
    },
}

struct Session {
    link: Link,
    kind: Kind,
    /// The next session sequence number.
    seq: u32,
    rq_seq: u8,
}

impl Session {
    fn packet(&self, netfn: u8, cmd: u8, data: &[u8], seq: u32) -> Result<Vec<u8>, PowerError> {
        let msg = request_message(netfn, cmd, self.rq_seq, data);
        Ok(match &self.kind {
            Kind::V15 {
                auth_type,
                password,
                session_id,
            } => {
                let code = v15_auth_code(*auth_type, password, *session_id, &msg, seq);
                v15_packet(*auth_type, seq, *session_id, Some(code), &msg)
            }
            Kind::V20 {
                bmc_id,
                k1,
                aes_key,
                ..
            } => {
                let mut payload_type = PAYLOAD_IPMI;
                let payload = match aes_key {
                    Some(key) => {
                        payload_type |= PAYLOAD_ENCRYPTED;
                        encrypt_payload(key, random::<16>()?, &msg)
                    }
                    None => msg,
                };
                if k1.is_some() {
                    payload_type |= PAYLOAD_AUTHENTICATED;
                }
                v20_packet(payload_type, *bmc_id, seq, &payload, k1.as_ref())
            }
        })
    }

    /// The IPMI message in an answer from the BMC in this session.
    fn unwrap(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        match &self.kind {
            Kind::V15 { .. } => v15_message(datagram).map(<[u8]>::to_vec),
            Kind::V20 {
                console_id,
                k1,
                aes_key,
                ..
            } => {
                let (payload_type, session_id, payload) = v20_parse(datagram, k1.as_ref())?;
                if payload_type & 0x3F != PAYLOAD_IPMI || session_id != *console_id {
                    return None;
                }
                match aes_key {
                    Some(key) if payload_type & PAYLOAD_ENCRYPTED != 0 => {
                        decrypt_payload(key, payload)
                    }
                    Some(_) => None,
                    None => Some(payload.to_vec()),
                }
            }
        }
    }

    /// Sends one request and returns the completion code and data.
    async fn request(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<(u8, Vec<u8>), PowerError> {
        self.request_with(netfn, cmd, data, self.link.retries)
            .await?
            .ok_or_else(|| self.link.no_answer())
    }

    async fn request_with(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        retries: u32,
    ) -> Result<Option<(u8, Vec<u8>)>, PowerError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        // One packet per attempt, each with its own sequence number: a BMC
        // drops a repeated one.
        let packets = (0..=retries)
            .map(|n| self.packet(netfn, cmd, data, self.seq.wrapping_add(n)))
            .collect::<Result<Vec<_>, _>>()?;
        let rq_seq = self.rq_seq;
        let this = &*self;
        let answer = this
            .link
            .exchange(
                |attempt| packets.get(attempt as usize).cloned().unwrap_or_default(),
                |datagram| parse_response(&this.unwrap(datagram)?, netfn, cmd, rq_seq),
            )
            .await;
        let (result, sent) = match answer? {
            Some((found, sent)) => (Some(found), sent),
            None => (None, retries + 1),
        };
        self.seq = self.seq.wrapping_add(sent).max(1);
        Ok(result)
    }

    /// A chassis command; a nonzero completion code is an error naming
    /// `what`.
    async fn command(&mut self, cmd: u8, data: &[u8], what: &str) -> Result<Vec<u8>, PowerError> {
        match self.request(NETFN_CHASSIS, cmd, data).await? {
            (0, data) => Ok(data),
            (code, _) => Err(self.refused(what, code)),
        }
    }

    fn refused(&self, what: &str, code: u8) -> PowerError {
        PowerError::Refused(format!(
            "The BMC at {} refused {what} with completion code {}.",
            self.link.target,
            completion(code)
        ))
    }

    /// Close Session, sent once; whatever happens, the session is over
    /// (the BMC times idle sessions out).
    async fn close(&mut self) {
        let id = match &self.kind {
            Kind::V15 { session_id, .. } => *session_id,
            Kind::V20 { bmc_id, .. } => *bmc_id,
        };
        let _ = self
            .request_with(NETFN_APP, CMD_CLOSE_SESSION, &id.to_le_bytes(), 0)
            .await;
    }
}

/// Get Channel Authentication Capabilities, outside any session: which
/// IPMI 1.5 authentication types the channel offers and whether it speaks
/// IPMI 2.0. Returns the answer's data.
async fn channel_auth_caps(link: &Link, lanplus: bool) -> Result<Vec<u8>, PowerError> {
    // Channel 0x0E is "this one"; 0x80 asks for the IPMI 2.0 extensions.
    let channel = if lanplus { 0x8E } else { 0x0E };
    let msg = request_message(
        NETFN_APP,
        CMD_GET_CHANNEL_AUTH_CAPS,
        0,
        &[channel, PRIV_ADMIN],
    );
    let packet = v15_packet(AUTH_NONE, 0, 0, None, &msg);
    let answer = link
        .exchange(
            |_| packet.clone(),
            |datagram| {
                parse_response(
                    v15_message(datagram)?,
                    NETFN_APP,
                    CMD_GET_CHANNEL_AUTH_CAPS,
                    0,
                )
            },
        )
        .await?;
    match answer {
        None => Err(link.no_answer()),
        Some(((0, data), _)) if data.len() >= 4 => Ok(data),
        Some(((0, _), _)) => Err(short_answer(
            &link.target,
            "Get Channel Authentication Capabilities",
        )),
        Some(((code, _), _)) => Err(PowerError::Refused(format!(
            "The BMC at {} refused Get Channel Authentication Capabilities with completion code {}.",
            link.target,
            completion(code)
        ))),
    }
}

/// The answer of type `payload_type` to a session set-up message (Open
/// Session, RAKP 1, RAKP 3): it names our session ID, or reports an error
/// (a BMC may leave the IDs out of those).
fn setup_answer(datagram: &[u8], payload_type: u8, console_id: u32) -> Option<Vec<u8>> {
    let (kind, _, payload) = v20_parse(datagram, None)?;
    let status = *payload.get(1)?;
    let ours = payload.get(4..8) == Some(&console_id.to_le_bytes()[..]);
    (kind & 0x3F == payload_type && (ours || status != 0)).then(|| payload.to_vec())
}

async fn open_rmcp_plus(link: Link, settings: &IpmiSettings) -> Result<Session, PowerError> {
    let target = link.target.clone();
    let (auth, integrity, confidentiality) =
        cipher_suite(settings.cipher_suite).ok_or_else(|| {
            PowerError::Unsupported(format!(
                "IPMI cipher suite {} is not supported; use 3 (or 0, 1, 2).",
                settings.cipher_suite
            ))
        })?;
    let username = settings.username.as_bytes();
    let password = settings.password.as_bytes();
    if username.len() > 16 || password.len() > 20 {
        return Err(PowerError::Refused(
            "An IPMI 2.0 user name has at most 16 characters and a password at most 20.".into(),
        ));
    }
    let caps = channel_auth_caps(&link, true).await?;
    if caps[1] & 0x80 == 0 || caps[3] & 0x02 == 0 {
        return Err(PowerError::Refused(format!(
            "The BMC at {target} does not speak IPMI 2.0 (RMCP+); use the “lan” interface (IPMI 1.5)."
        )));
    }

    // Open Session.
    let console_id = random_nonzero()?;
    let mut request = vec![0x00, PRIV_ADMIN, 0, 0];
    request.extend_from_slice(&console_id.to_le_bytes());
    for (payload, algorithm) in [(0u8, auth), (1, integrity), (2, confidentiality)] {
        request.extend_from_slice(&[payload, 0, 0, 8, algorithm, 0, 0, 0]);
    }
    let packet = v20_packet(PAYLOAD_OPEN_SESSION_REQUEST, 0, 0, &request, None);
    let answer = link
        .exchange(
            |_| packet.clone(),
            |datagram| setup_answer(datagram, PAYLOAD_OPEN_SESSION_RESPONSE, console_id),
        )
        .await?
        .ok_or_else(|| link.no_answer())?
        .0;
    let status = answer[1];
    if status != 0 {
        let hint = match status {
            0x04..=0x07 | 0x10 | 0x11 => "; try another cipher suite",
            0x09 | 0x0A => "; the BMC does not allow administrator sessions here",
            _ => "",
        };
        return Err(PowerError::Refused(format!(
            "The BMC at {target} refused to open an RMCP+ session with cipher suite {}: {} (status 0x{status:02X}){hint}.",
            settings.cipher_suite,
            rmcp_status(status)
        )));
    }
    let bmc_id = u32::from_le_bytes(
        answer
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| short_answer(&target, "Open Session"))?,
    );

    // RAKP 1 and 2.
    let console_random = random::<16>()?;
    let mut rakp1 = vec![0x00, 0, 0, 0];
    rakp1.extend_from_slice(&bmc_id.to_le_bytes());
    rakp1.extend_from_slice(&console_random);
    rakp1.extend_from_slice(&[RAKP_ROLE, 0, 0, username.len() as u8]);
    rakp1.extend_from_slice(username);
    let packet = v20_packet(PAYLOAD_RAKP1, 0, 0, &rakp1, None);
    let rakp2 = link
        .exchange(
            |_| packet.clone(),
            |datagram| setup_answer(datagram, PAYLOAD_RAKP2, console_id),
        )
        .await?
        .ok_or_else(|| link.no_answer())?
        .0;
    match rakp2[1] {
        0 => {}
        0x0D | 0x0C => return Err(link.wrong_login()),
        0x09 | 0x0A => {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} does not let user “{}” be an administrator; give that user the administrator role.",
                settings.username
            )));
        }
        status => {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} refused the RMCP+ session (RAKP 2): {} (status 0x{status:02X}).",
                rmcp_status(status)
            )));
        }
    }
    let field = |range: std::ops::Range<usize>| -> Result<[u8; 16], PowerError> {
        rakp2
            .get(range)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| short_answer(&target, "RAKP 2"))
    };
    let rakp = Rakp {
        console_id,
        bmc_id,
        console_random,
        bmc_random: field(8..24)?,
        bmc_guid: field(24..40)?,
        username,
        password,
    };
    if auth == 1 {
        let code = rakp2.get(40..60).unwrap_or_default();
        if !constant_time_eq(&rakp.rakp2_code(), code) {
            return Err(link.wrong_login());
        }
    }

    // RAKP 3 and 4.
    let mut rakp3 = vec![0x00, 0, 0, 0];
    rakp3.extend_from_slice(&bmc_id.to_le_bytes());
    if auth == 1 {
        rakp3.extend_from_slice(&rakp.rakp3_code());
    }
    let packet = v20_packet(PAYLOAD_RAKP3, 0, 0, &rakp3, None);
    let rakp4 = link
        .exchange(
            |_| packet.clone(),
            |datagram| setup_answer(datagram, PAYLOAD_RAKP4, console_id),
        )
        .await?
        .ok_or_else(|| link.no_answer())?
        .0;
    match rakp4[1] {
        0 => {}
        0x0F | 0x0D => return Err(link.wrong_login()),
        status => {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} refused the RMCP+ session (RAKP 4): {} (status 0x{status:02X}).",
                rmcp_status(status)
            )));
        }
    }
    let (k1, aes_key) = if auth == 1 {
        let sik = rakp.sik();
        let icv = rakp4.get(8..8 + HMAC_SHA1_96).unwrap_or_default();
        if !constant_time_eq(&rakp.rakp4_code(&sik)[..HMAC_SHA1_96], icv) {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} answered RAKP 4 with a wrong integrity check value; \
                 something between Bootler and the BMC changes packets."
            )));
        }
        let (k1, aes_key) = derive_keys(&sik);
        (
            (integrity == 1).then_some(k1),
            (confidentiality == 1).then_some(aes_key),
        )
    } else {
        (None, None)
    };
    Ok(Session {
        link,
        kind: Kind::V20 {
            console_id,
            bmc_id,
            k1,
            aes_key,
        },
        seq: 1,
        rq_seq: 0,
    })
}

async fn open_v15(link: Link, settings: &IpmiSettings) -> Result<Session, PowerError> {
    let target = link.target.clone();
    if settings.username.len() > 16 || settings.password.len() > 16 {
        return Err(PowerError::Refused(
            "An IPMI 1.5 user name and password have at most 16 characters each.".into(),
        ));
    }
    let caps = channel_auth_caps(&link, false).await?;
    let auth_type = if caps[1] & (1 << AUTH_MD5) != 0 {
        AUTH_MD5
    } else if caps[1] & (1 << AUTH_PASSWORD) != 0 {
        AUTH_PASSWORD
    } else {
        return Err(PowerError::Refused(format!(
            "The BMC at {target} offers neither MD5 nor password authentication for IPMI 1.5; \
             use the “lanplus” interface (IPMI 2.0)."
        )));
    };
    let password = password16(&settings.password);

    // Get Session Challenge.
    let mut data = vec![auth_type];
    data.extend_from_slice(&password16(&settings.username));
    let msg = request_message(NETFN_APP, CMD_GET_SESSION_CHALLENGE, 1, &data);
    let packet = v15_packet(AUTH_NONE, 0, 0, None, &msg);
    let (code, challenge) = link
        .exchange(
            |_| packet.clone(),
            |datagram| {
                parse_response(
                    v15_message(datagram)?,
                    NETFN_APP,
                    CMD_GET_SESSION_CHALLENGE,
                    1,
                )
            },
        )
        .await?
        .ok_or_else(|| link.no_answer())?
        .0;
    match code {
        0 if challenge.len() >= 20 => {}
        0x81 | 0x82 => return Err(link.wrong_login()),
        0 => return Err(short_answer(&target, "Get Session Challenge")),
        code => {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} refused Get Session Challenge with completion code {}.",
                completion(code)
            )));
        }
    }
    let temp_id = u32::from_le_bytes([challenge[0], challenge[1], challenge[2], challenge[3]]);

    // Activate Session. A wrong password makes the BMC drop the request
    // without a word.
    let outbound_seq = random_nonzero()?;
    let mut data = vec![auth_type, PRIV_ADMIN];
    data.extend_from_slice(&challenge[4..20]);
    data.extend_from_slice(&outbound_seq.to_le_bytes());
    let msg = request_message(NETFN_APP, CMD_ACTIVATE_SESSION, 2, &data);
    let code = v15_auth_code(auth_type, &password, temp_id, &msg, 0);
    let packet = v15_packet(auth_type, 0, temp_id, Some(code), &msg);
    let (code, activated) = link
        .exchange(
            |_| packet.clone(),
            |datagram| parse_response(v15_message(datagram)?, NETFN_APP, CMD_ACTIVATE_SESSION, 2),
        )
        .await?
        .ok_or_else(|| {
            PowerError::Refused(format!(
                "The BMC at {target} refused user “{}”: wrong user name or password \
                 (it answered the session challenge but not the activation within {}).",
                settings.username,
                seconds(link.patience())
            ))
        })?
        .0;
    match code {
        0 if activated.len() >= 9 => {}
        0x86 => {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} does not let user “{}” be an administrator; give that user the administrator role.",
                settings.username
            )));
        }
        0 => return Err(short_answer(&target, "Activate Session")),
        code => {
            return Err(PowerError::Refused(format!(
                "The BMC at {target} refused Activate Session with completion code {}.",
                completion(code)
            )));
        }
    }
    let session_id = u32::from_le_bytes([activated[1], activated[2], activated[3], activated[4]]);
    let inbound_seq = u32::from_le_bytes([activated[5], activated[6], activated[7], activated[8]]);
    Ok(Session {
        link,
        kind: Kind::V15 {
            auth_type,
            password,
            session_id,
        },
        seq: inbound_seq.max(1),
        rq_seq: 2,
    })
}

fn short_answer(target: &str, what: &str) -> PowerError {
    PowerError::Refused(format!(
        "The BMC at {target} answered {what} too briefly to be understood."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        hex::encode(bytes)
    }

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    #[test]
    fn get_channel_auth_caps_packet_is_the_well_known_one() {
        let msg = request_message(NETFN_APP, CMD_GET_CHANNEL_AUTH_CAPS, 0, &[0x8E, 0x04]);
        let packet = v15_packet(AUTH_NONE, 0, 0, None, &msg);
        assert_eq!(
            hex(&packet),
            "0600ff07000000000000000000092018c88100388e04b5"
        );
    }

    #[test]
    fn checksums_make_the_sum_zero() {
        for bytes in [
            &[][..],
            &[0x20, 0x18],
            &[0x81, 0x04, 0x3b, 0x04],
            &[0xff; 9],
        ] {
            let sum = bytes
                .iter()
                .fold(checksum(bytes), |sum, byte| sum.wrapping_add(*byte));
            assert_eq!(sum, 0);
        }
    }

    #[test]
    fn responses_are_matched_and_checked() {
        // Answer to Set Session Privilege Level, rqSeq 5: cc 0, level 4.
        let mut answer = vec![CONSOLE_ADDR, (NETFN_APP | 1) << 2];
        answer.push(checksum(&answer));
        answer.extend_from_slice(&[BMC_ADDR, 5 << 2, CMD_SET_SESSION_PRIVILEGE, 0x00, 0x04]);
        let sum = checksum(&answer[3..]);
        answer.push(sum);
        assert_eq!(
            parse_response(&answer, NETFN_APP, CMD_SET_SESSION_PRIVILEGE, 5),
            Some((0, vec![0x04]))
        );
        assert_eq!(
            parse_response(&answer, NETFN_APP, CMD_SET_SESSION_PRIVILEGE, 6),
            None
        );
        assert_eq!(
            parse_response(&answer, NETFN_CHASSIS, CMD_SET_SESSION_PRIVILEGE, 5),
            None
        );
        let mut broken = answer.clone();
        broken[7] = 0x03;
        assert_eq!(
            parse_response(&broken, NETFN_APP, CMD_SET_SESSION_PRIVILEGE, 5),
            None
        );
    }

    #[test]
    fn v15_packets_round_trip_with_md5() {
        let password = password16("secret");
        assert_eq!(&password[..7], b"secret\0");
        let msg = request_message(NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS, 3, &[]);
        let code = v15_auth_code(AUTH_MD5, &password, 0x1234_5678, &msg, 9);
        let packet = v15_packet(AUTH_MD5, 9, 0x1234_5678, Some(code), &msg);
        assert_eq!(packet.len(), 4 + 1 + 4 + 4 + 16 + 1 + msg.len());
        assert_eq!(v15_message(&packet), Some(&msg[..]));
        // MD5("secret"+pad, id, msg, seq, "secret"+pad), computed by hand
        // with Python's hashlib.
        assert_eq!(hex(&code), MD5_VECTOR);
        assert_eq!(
            v15_auth_code(AUTH_PASSWORD, &password, 1, &msg, 1),
            password
        );
    }

    const MD5_VECTOR: &str = "02c4fce59968f27eb0aeb856e11d3c1e";

    #[test]
    fn rakp_codes_and_keys_match_a_hand_computed_vector() {
        let rakp = Rakp {
            console_id: 0x0A0B_0C0D,
            bmc_id: 0x0102_0304,
            console_random: [0x11; 16],
            bmc_random: [0x22; 16],
            bmc_guid: [0x33; 16],
            username: b"admin",
            password: b"secret",
        };
        // The same HMACs computed with Python's hmac module over the
        // layouts of IPMI 2.0 §13.31–13.32.
        assert_eq!(hex(&rakp.rakp2_code()), RAKP2_VECTOR);
        assert_eq!(hex(&rakp.rakp3_code()), RAKP3_VECTOR);
        let sik = rakp.sik();
        assert_eq!(hex(&sik), SIK_VECTOR);
        assert_eq!(hex(&rakp.rakp4_code(&sik)[..HMAC_SHA1_96]), RAKP4_VECTOR);
        let (k1, aes_key) = derive_keys(&sik);
        assert_eq!(hex(&k1), K1_VECTOR);
        assert_eq!(hex(&aes_key), K2_VECTOR);
    }

    const RAKP2_VECTOR: &str = "a3db4fd75e30ab2c0b8960eb33fe845cc165992f";
    const RAKP3_VECTOR: &str = "9013a7f9cd3a6520392ee6cd5959aa10f73f7346";
    const SIK_VECTOR: &str = "d25235b98a22802568ba3bc541bb29f867b6d25d";
    const RAKP4_VECTOR: &str = "60aa4f16fdcbef9dc206f582";
    const K1_VECTOR: &str = "7eb05a4d5e63beac1953dcfc79529da98fc5138c";
    const K2_VECTOR: &str = "5e33302245a5039bbbde1d6de9e52d89";

    #[test]
    fn aes_cbc_payloads_pad_and_round_trip() {
        let key = [0x42; 16];
        for len in [0, 1, 7, 14, 15, 16, 17, 31, 40] {
            let plain: Vec<u8> = (0..len as u8).collect();
            let sealed = encrypt_payload(&key, [0x07; 16], &plain);
            assert_eq!(sealed.len() % 16, 0, "length {len}");
            assert!(sealed.len() > 16 + len);
            assert!(sealed.len() < 16 + len + 1 + 16);
            assert_eq!(&sealed[..16], &[0x07; 16]);
            assert_eq!(decrypt_payload(&key, &sealed), Some(plain), "length {len}");
        }
        // A fixed vector, made with Python's `cryptography` (AES-128-CBC,
        // no padding) over b"\x20\x18\xc8" + pad 1..12 + 12.
        assert_eq!(
            hex(&encrypt_payload(&key, [0x07; 16], &[0x20, 0x18, 0xc8])),
            AES_VECTOR
        );
        assert_eq!(
            decrypt_payload(&key, &unhex(AES_VECTOR)),
            Some(vec![0x20, 0x18, 0xc8])
        );
    }

    const AES_VECTOR: &str = "0707070707070707070707070707070725c531c709074eb74db6831b14c66f71";

    #[test]
    fn v20_packets_carry_an_integrity_code_that_is_checked() {
        let k1 = [0x5A; 20];
        let payload = [1, 2, 3, 4, 5];
        let packet = v20_packet(
            PAYLOAD_IPMI | PAYLOAD_AUTHENTICATED,
            7,
            9,
            &payload,
            Some(&k1),
        );
        // Session header through next header is a multiple of four.
        assert_eq!((packet.len() - 4 - HMAC_SHA1_96) % 4, 0);
        let parsed = v20_parse(&packet, Some(&k1));
        assert_eq!(
            parsed,
            Some((PAYLOAD_IPMI | PAYLOAD_AUTHENTICATED, 7, &payload[..]))
        );
        assert_eq!(v20_parse(&packet, Some(&[0x5B; 20])), None);
        let mut tampered = packet.clone();
        tampered[17] ^= 1;
        assert_eq!(v20_parse(&tampered, Some(&k1)), None);
        // Before the session, nothing is signed.
        let open = v20_packet(PAYLOAD_OPEN_SESSION_REQUEST, 0, 0, &payload, None);
        assert_eq!(open.len(), 4 + 12 + payload.len());
        assert_eq!(v20_parse(&open, None).map(|p| p.2), Some(&payload[..]));
    }

    #[test]
    fn cipher_suites_and_messages() {
        assert_eq!(cipher_suite(3), Some((1, 1, 1)));
        assert_eq!(cipher_suite(17), None);
        assert_eq!(completion(0xD4), "0xD4 (insufficient privilege)");
        assert_eq!(completion(0x42), "0x42");
        assert_eq!(seconds(Duration::from_secs(3)), "3 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(300)), "300 ms");
        assert_eq!(BOOT_FLAGS_PXE_ONCE[2] >> 2 & 0x0F, 0x01);
    }

    #[test]
    fn describes_itself_and_what_it_can() {
        let ipmi = Ipmi::new(IpmiSettings {
            address: "fe80::1".into(),
            port: 623,
            username: "admin".into(),
            password: "secret".into(),
            cipher_suite: 3,
            lanplus: true,
            timeout: Duration::from_secs(1),
            retries: 2,
        });
        assert_eq!(ipmi.describe(), "IPMI at [fe80::1]:623");
        assert!(ipmi.can(PowerAction::Cycle));
        assert!(!ipmi.can(PowerAction::Wake));
    }

    #[tokio::test]
    async fn wake_is_unsupported() {
        let ipmi = Ipmi::new(IpmiSettings {
            address: "127.0.0.1".into(),
            port: 9,
            username: "admin".into(),
            password: "secret".into(),
            cipher_suite: 3,
            lanplus: true,
            timeout: Duration::from_millis(100),
            retries: 0,
        });
        assert!(matches!(
            ipmi.act(PowerAction::Wake).await,
            Err(PowerError::Unsupported(_))
        ));
    }
}
