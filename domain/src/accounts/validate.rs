//! Rules for what a person may type when registering. Pure functions, so the
//! rules are tested as tables.

/// Names that would collide with system accounts or confuse people.
pub const RESERVED_USERNAMES: &[&str] = &[
    "root",
    "admin",
    "administrator",
    "bin",
    "daemon",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "nogroup",
    "postmaster",
    "hostmaster",
    "webmaster",
    "abuse",
    "security",
    "support",
    "bootler",
    "ldap",
    "openldap",
    "postgres",
    "sshd",
    "systemd-network",
    "messagebus",
    "operator",
    "guest",
    "ubuntu",
    "debian",
    "rocky",
    "alma",
    "centos",
    "fedora",
    "user",
    "test",
];

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const DISPLAY_NAME_MAX: usize = 100;
pub const EMAIL_MAX: usize = 254;
/// argon2 takes any length, but a megabyte of "password" is an attack.
pub const PASSWORD_MAX: usize = 1024;

/// A POSIX-safe login name: lower-case letters, digits, `-`, `_` and `.`,
/// starting with a letter, 3–32 characters, not reserved.
pub fn username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(format!(
            "A username has {USERNAME_MIN} to {USERNAME_MAX} characters."
        ));
    }
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Err("A username starts with a lower-case letter (a–z).".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            "A username may contain only lower-case letters, digits, '-', '_' and '.'.".into(),
        );
    }
    if name.ends_with(['-', '.']) {
        return Err("A username cannot end with '-' or '.'.".into());
    }
    if RESERVED_USERNAMES.contains(&name) {
        return Err(format!(
            "The username “{name}” is reserved; choose another."
        ));
    }
    Ok(())
}

pub fn display_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("Enter your name as colleagues know it.".into());
    }
    if trimmed.chars().count() > DISPLAY_NAME_MAX {
        return Err(format!("A name has at most {DISPLAY_NAME_MAX} characters."));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("A name cannot contain control characters.".into());
    }
    Ok(())
}

/// Normalises an address (trims, lower-cases it: nobody's institution
/// tells `Ana@` from `ana@`, and one person must not get two accounts) and
/// checks its syntax. Deliberately conservative: a local part of letters, digits and
/// `.!#$%&'+-/=?^_`{|}~`; no quoted strings, no IP literals.
pub fn email(address: &str) -> Result<String, String> {
    let address = address.trim();
    let invalid = || format!("“{address}” is not an e-mail address.");
    if address.len() > EMAIL_MAX {
        return Err(format!(
            "An e-mail address has at most {EMAIL_MAX} characters."
        ));
    }
    let (local, domain) = address.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'+-/=?^_`{|}~".contains(c))
    {
        return Err(invalid());
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|label| {
            label.is_empty()
                || label.len() > 63
                || label.starts_with('-')
                || label.ends_with('-')
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        return Err(invalid());
    }
    Ok(format!("{}@{domain}", local.to_ascii_lowercase()))
}

/// The address's domain must be on the allow-list exactly: a subdomain
/// registers only if it is listed itself.
pub fn email_domain_allowed(normalised: &str, allowed: &[String]) -> Result<(), String> {
    if allowed.is_empty() {
        return Err("Registration is closed on this server: no e-mail domain is allowed yet. Ask the lab's administrator.".into());
    }
    let domain = normalised
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(domain)) {
        Ok(())
    } else {
        Err(format!(
            "Registration needs an institutional address ({}); “{domain}” is not one of them.",
            allowed
                .iter()
                .map(|d| format!("@{d}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

pub fn password(password: &str, min_length: usize) -> Result<(), String> {
    let len = password.chars().count();
    if len < min_length {
        return Err(format!(
            "A password has at least {min_length} characters; a few words make a good one."
        ));
    }
    if len > PASSWORD_MAX {
        return Err(format!("A password has at most {PASSWORD_MAX} characters."));
    }
    if password.chars().any(|c| c == '\0') {
        return Err("A password cannot contain a NUL character.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        let ok = [
            "abc",
            "jdoe",
            "j.doe",
            "j_doe-2",
            "a23456789012345678901234567890ab",
        ];
        for name in ok {
            assert_eq!(username(name), Ok(()), "{name}");
        }
        let bad = [
            "",
            "ab",
            "a234567890123456789012345678901bc",
            "Jdoe",
            "1doe",
            "-doe",
            "doe-",
            "doe.",
            "jo hn",
            "jo*n",
            "jo(n",
            "jo)n",
            "jo\\n",
            "jo\0n",
            "jöhn",
            "root",
            "admin",
            "../etc",
            "uid=x",
        ];
        for name in bad {
            assert!(username(name).is_err(), "{name:?} should be refused");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            email(" Ana.Silva@DI.UMinho.pt ").unwrap(),
            "ana.silva@di.uminho.pt"
        );
        assert_eq!(email("a+tag@uminho.pt").unwrap(), "a+tag@uminho.pt");
        let bad = [
            "",
            "plain",
            "@uminho.pt",
            "a@",
            "a@pt",
            "a@@uminho.pt",
            "a b@uminho.pt",
            "a*)(uid=*@uminho.pt",
            "a\\@uminho.pt",
            "a@-uminho.pt",
            "a@uminho..pt",
            ".a@uminho.pt",
            "a..b@uminho.pt",
            "a@uminho.pt\0",
            "\"a\"@uminho.pt",
        ];
        for address in bad {
            assert!(email(address).is_err(), "{address:?} should be refused");
        }
    }

    #[test]
    fn domains_must_be_listed_exactly() {
        let allowed = vec!["uminho.pt".to_string(), "di.uminho.pt".to_string()];
        assert!(email_domain_allowed("a@uminho.pt", &allowed).is_ok());
        assert!(email_domain_allowed("a@di.uminho.pt", &allowed).is_ok());
        let err = email_domain_allowed("a@eng.uminho.pt", &allowed).unwrap_err();
        assert!(err.contains("@uminho.pt, @di.uminho.pt"), "{err}");
        assert!(email_domain_allowed("a@evil-uminho.pt", &allowed).is_err());
        assert!(email_domain_allowed("a@uminho.pt.evil.com", &allowed).is_err());
        assert!(
            email_domain_allowed("a@uminho.pt", &[])
                .unwrap_err()
                .contains("closed")
        );
    }

    #[test]
    fn passwords() {
        assert!(password("correct horse", 12).is_ok());
        assert!(password("short", 12).is_err());
        assert!(password("exactly12chr", 12).is_ok());
        assert!(password(&"x".repeat(PASSWORD_MAX + 1), 12).is_err());
        assert!(password("with a \0 inside it", 12).is_err());
        assert!(display_name("Ana Silva").is_ok());
        assert!(display_name("   ").is_err());
        assert!(display_name("Ana\nSilva").is_err());
    }
}
