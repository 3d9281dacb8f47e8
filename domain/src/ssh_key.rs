//! OpenSSH public keys (`ssh-ed25519 AAAA… comment`), checked the way sshd
//! would read them: the blob is valid base64, its embedded type matches the
//! named one, and the key material has the right shape. Used for profile
//! keys and for keys pasted when creating a VM.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// The longest line accepted (an RSA-16384 key is about 2.8 KB).
pub const MAX_LEN: usize = 8192;
/// The shortest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;

/// A key as it goes into `authorized_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, …
    pub algorithm: String,
    /// The base64 blob, as given.
    pub blob: String,
    /// The comment after the blob (often `user@host`), or empty.
    pub comment: String,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// Key size in bits (RSA modulus, curve size), for showing.
    pub bits: usize,
}

impl PublicKey {
    /// `algorithm blob` without the comment: one line of `authorized_keys`.
    pub fn openssh(&self) -> String {
        format!("{} {}", self.algorithm, self.blob)
    }
}

/// Reads one OpenSSH public key line. The error is a sentence for the person
/// who pasted it.
pub fn parse(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(
            "Paste a public key: one line starting with ssh-ed25519, ssh-rsa or ecdsa-sha2-…."
                .into(),
        );
    }
    if text.len() > MAX_LEN {
        return Err(format!(
            "This is longer than any public key ({} characters, at most {MAX_LEN}).",
            text.len()
        ));
    }
    if text.contains("PRIVATE KEY") {
        return Err("This is a private key. Paste the public key instead: the contents of the file ending in .pub (never share the private one).".into());
    }
    if text.lines().count() > 1 {
        return Err(
            "Paste one key at a time: a public key is a single line (add the others one by one)."
                .into(),
        );
    }
    if text.starts_with("---- BEGIN SSH2 PUBLIC KEY") {
        return Err("This is an SSH2 (RFC 4716) key; convert it with `ssh-keygen -i -f key.pub` and paste the result.".into());
    }
    let mut parts = text.split_whitespace();
    let algorithm = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    let comment = parts.collect::<Vec<_>>().join(" ");
    if !KNOWN.iter().any(|(name, _)| *name == algorithm) {
        if algorithm == "ssh-dss" {
            return Err(
                "DSA keys are no longer accepted by OpenSSH; create an Ed25519 key with `ssh-keygen -t ed25519`."
                    .into(),
            );
        }
        return Err(format!(
            "“{}” is not a public key type Bootler knows. A key starts with ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, or sk-ssh-ed25519@openssh.com (options before the key are not accepted).",
            truncate(algorithm)
        ));
    }
    if blob.is_empty() {
        return Err("The key is cut short: after the type comes a long base64 text.".into());
    }
    let bytes = STANDARD
        .decode(blob)
        .or_else(|_| STANDARD_NO_PAD.decode(blob))
        .map_err(|_| {
            "The key's base64 text is damaged; copy the whole line again from the .pub file."
                .to_string()
        })?;
    let mut reader = Reader(&bytes);
    let embedded = reader.string()?;
    if embedded != algorithm.as_bytes() {
        return Err(format!(
            "The key says it is {algorithm} but its contents are {}; copy the line again unchanged.",
            truncate(&String::from_utf8_lossy(embedded))
        ));
    }
    let bits = key_bits(algorithm, &mut reader)?;
    if !reader.0.is_empty() {
        return Err("The key has extra bytes at its end; copy the line again unchanged.".into());
    }
    let digest = Sha256::digest(&bytes);
    Ok(PublicKey {
        algorithm: algorithm.to_string(),
        blob: blob.to_string(),
        comment,
        fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(digest)),
        bits,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Ed25519,
    SkEd25519,
    Rsa,
    Ecdsa(&'static str, usize),
    SkEcdsa,
}

const KNOWN: &[(&str, Kind)] = &[
    ("ssh-ed25519", Kind::Ed25519),
    ("sk-ssh-ed25519@openssh.com", Kind::SkEd25519),
    ("ssh-rsa", Kind::Rsa),
    ("ecdsa-sha2-nistp256", Kind::Ecdsa("nistp256", 256)),
    ("ecdsa-sha2-nistp384", Kind::Ecdsa("nistp384", 384)),
    ("ecdsa-sha2-nistp521", Kind::Ecdsa("nistp521", 521)),
    ("sk-ecdsa-sha2-nistp256@openssh.com", Kind::SkEcdsa),
];

fn key_bits(algorithm: &str, reader: &mut Reader) -> Result<usize, String> {
    let kind = KNOWN
        .iter()
        .find(|(name, _)| *name == algorithm)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| "unknown key type".to_string())?;
    match kind {
        Kind::Ed25519 | Kind::SkEd25519 => {
            if reader.string()?.len() != 32 {
                return Err("The Ed25519 key has the wrong length; copy the line again.".into());
            }
            if matches!(kind, Kind::SkEd25519) {
                reader.string()?; // application
            }
            Ok(256)
        }
        Kind::Rsa => {
            let _e = reader.string()?;
            let n = reader.string()?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            let bits = significant * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "This RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed. Create an Ed25519 key with `ssh-keygen -t ed25519`."
                ));
            }
            Ok(bits)
        }
        Kind::Ecdsa(curve, bits) => {
            if reader.string()? != curve.as_bytes() {
                return Err("The ECDSA key names another curve than its type; copy the line again unchanged.".into());
            }
            let point = reader.string()?;
            if point.first() != Some(&4) || point.len() != 1 + 2 * bits.div_ceil(8) {
                return Err("The ECDSA key's point is damaged; copy the line again.".into());
            }
            Ok(bits)
        }
        Kind::SkEcdsa => {
            if reader.string()? != b"nistp256" {
                return Err("The security-key ECDSA key names another curve; copy the line again unchanged.".into());
            }
            if reader.string()?.len() != 65 {
                return Err("The ECDSA key's point is damaged; copy the line again.".into());
            }
            reader.string()?; // application
            Ok(256)
        }
    }
}

fn truncate(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// The SSH wire format: big-endian u32 length, then that many bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<&'a [u8], String> {
        let damaged = || "The key's contents are cut short; copy the whole line again.".to_string();
        if self.0.len() < 4 {
            return Err(damaged());
        }
        let (len, rest) = self.0.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < len {
            return Err(damaged());
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with ssh-keygen; fingerprints from `ssh-keygen -l -f`.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa ana@laptop";

    const RSA_3072: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCcZc8Y+YQ2TJKTcLcG4xcjB/nVSpBIkZzw+pHa4kfo+VLZXlu4rp4NNxWOfmpU0//wKeNA155Pj0UL21aJO+oOK6VvgcO3ZLQbp9TV2J/OaLSsTcYQK2srOqkxKEjhD+n6jo+fRE0L4Y+tajP9zEKsqBSly+NofxSA0ojc1dCluUn+v40GHFePcLQGNfM+Xo/84ozIE9JMlWqdfWKzKPR5azIfKsw88ddJO0ht1ZrcqHoGRii4yNGrsXLLgrma7KpPMbXifwFuuvn5aWHuUyHzqEMqdMPF9p18vuzYlZCXSiZa2aWHT/ONqRr50HeaYk5Fd1hcI9X2YhBLbgGMdhgYDHGMFyXZYxKzRNfmj+1wqr2bl5Znc/bAYqTEBypWCjOz7Qt+zqC+6CL1/ZNRumrCoPFD6Lns4zVK5w1Ksc/psAhtujM/mec18H6m3JIu4nahTL0KtskBl7RVx0brfsw9pHsmVHbM7MaLnD+MCOL/STyXZFT09OQXBP19AC4DDVc= r";

    fn encode(parts: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for part in parts {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        STANDARD.encode(out)
    }

    #[test]
    fn reads_an_ed25519_key() {
        let key = parse(&format!("  {ED25519}\n")).unwrap();
        assert_eq!(key.algorithm, "ssh-ed25519");
        assert_eq!(key.comment, "ana@laptop");
        assert_eq!(key.bits, 256);
        assert_eq!(
            key.fingerprint,
            "SHA256:FwnmtEIDMmcpJYb+83of9cxbm/gsNFiir08UiSD06tA"
        );
        assert!(key.openssh().starts_with("ssh-ed25519 AAAAC3"));
        assert!(!key.openssh().contains("laptop"));
    }

    #[test]
    fn rsa_keys_need_2048_bits() {
        let real = parse(RSA_3072).unwrap();
        assert_eq!(real.bits, 3072);
        assert_eq!(
            real.fingerprint,
            "SHA256:3Ba485Z0DHwO6NMQXXi3K9V/is5Akbc1fI8mWHrbZyg"
        );
        let mut n = vec![0u8];
        n.extend(vec![0xC5; 256]);
        let key = parse(&format!(
            "ssh-rsa {}",
            encode(&[b"ssh-rsa", &[1, 0, 1], &n])
        ))
        .unwrap();
        assert_eq!(key.bits, 2048);
        let small = parse(&format!(
            "ssh-rsa {}",
            encode(&[b"ssh-rsa", &[1, 0, 1], &[0xC5; 128]])
        ))
        .unwrap_err();
        assert!(small.contains("1024 bits"), "{small}");
    }

    #[test]
    fn ecdsa_points_are_checked() {
        let mut point = vec![4u8];
        point.extend(vec![7; 64]);
        let blob = encode(&[b"ecdsa-sha2-nistp256", b"nistp256", &point]);
        assert_eq!(
            parse(&format!("ecdsa-sha2-nistp256 {blob}")).unwrap().bits,
            256
        );
        let wrong_curve = encode(&[b"ecdsa-sha2-nistp256", b"nistp384", &point]);
        assert!(parse(&format!("ecdsa-sha2-nistp256 {wrong_curve}")).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_public_key() {
        let cases = [
            ("", "Paste a public key"),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----",
                "private key",
            ),
            ("ssh-dss AAAAB3NzaC1kc3M=", "DSA"),
            ("hello world", "not a public key type"),
            ("ssh-ed25519", "cut short"),
            ("ssh-ed25519 %%%notbase64", "damaged"),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa",
                "its contents are ssh-ed25519",
            ),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54", "cut short"),
            (&format!("{ED25519}\n{ED25519}"), "one key at a time"),
            (
                "command=\"rm -rf /\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa",
                "options before the key",
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
        let long = format!("ssh-ed25519 {}", "A".repeat(MAX_LEN));
        assert!(parse(&long).unwrap_err().contains("longer than"));
        let extra = encode(&[b"ssh-ed25519", &[9; 32], b"x"]);
        assert!(
            parse(&format!("ssh-ed25519 {extra}"))
                .unwrap_err()
                .contains("extra bytes")
        );
    }
}
