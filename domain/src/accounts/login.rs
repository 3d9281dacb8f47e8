//! Signing in: username or e-mail address, and a password the directory
//! checks. The answer never tells whether the username exists.

use chrono::{DateTime, Utc};

use super::{AccountError, Accounts, Status, User};

impl Accounts {
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
        _now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        let Some((user, pending_hash)) = self.find_row(login).await? else {
            // As slow as a real check, so timing does not tell either.
            self.directory.verify_hash(password, None).await;
            return Err(AccountError::WrongCredentials);
        };
        match user.status {
            Status::Active => {
                if self.directory.verify(&user.entry(), password).await? {
                    Ok(user)
                } else {
                    Err(AccountError::WrongCredentials)
                }
            }
            Status::Pending => {
                // Only someone who knows the password learns the account is pending.
                if self
                    .directory
                    .verify_hash(password, pending_hash.as_deref())
                    .await
                {
                    Err(AccountError::NotActive(format!(
                        "Confirm your e-mail address first: the link was sent to {}.",
                        mask_email(&user.email)
                    )))
                } else {
                    Err(AccountError::WrongCredentials)
                }
            }
            Status::Disabled => {
                if self.directory.verify(&user.entry(), password).await? {
                    Err(AccountError::NotActive(
                        "This account is disabled. Ask the lab's administrator.".into(),
                    ))
                } else {
                    Err(AccountError::WrongCredentials)
                }
            }
        }
    }
}

/// `ana.silva@uminho.pt` → `a…a@uminho.pt`.
fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('?');
            let last = local.chars().last().unwrap_or('?');
            format!("{first}…{last}@{domain}")
        }
        None => "your address".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_addresses() {
        assert_eq!(super::mask_email("ana.silva@uminho.pt"), "a…a@uminho.pt");
        assert_eq!(super::mask_email("x@uminho.pt"), "x…x@uminho.pt");
    }
}
