//! Groups of people, for pool access (`@name` in a pool's access list).
//! The built-in directory keeps them in Bootler and administrators change
//! them here; with LDAP they are read from `ldap.groups_dn` and kept with
//! the lab's LDAP tools.

use super::{AccountError, Accounts, FieldError, User, admin::require_admin};
use crate::directory::{Group, valid_group_name};

fn invalid(field: &'static str, message: String) -> AccountError {
    AccountError::Invalid(vec![FieldError { field, message }])
}

/// Most members one group takes in one change.
const MAX_MEMBERS: usize = 1000;

impl Accounts {
    /// Every group with its members (anyone signed in may see them: pools
    /// name them).
    pub async fn groups(&self) -> Result<Vec<Group>, AccountError> {
        Ok(self.directory.groups().await?)
    }

    /// The groups `username` belongs to.
    pub async fn groups_of(&self, username: &str) -> Result<Vec<String>, AccountError> {
        Ok(self.directory.groups_of(username).await?)
    }

    /// Whether an administrator can change groups here (the built-in
    /// directory), rather than in LDAP.
    pub fn groups_editable(&self) -> bool {
        self.directory.kind() == "builtin"
    }

    /// Replaces the members of group `name` (none: the group is gone).
    /// Administrators only; every username must name an account.
    pub async fn set_group(
        &self,
        actor: &User,
        name: &str,
        usernames: &[String],
    ) -> Result<Group, AccountError> {
        require_admin(actor)?;
        let name = name.trim();
        if !valid_group_name(name) {
            return Err(invalid(
                "name",
                "A group's name is 1–64 letters, digits, dots, dashes or underscores, starting with a letter or digit.".into(),
            ));
        }
        if !self.groups_editable() {
            return Err(AccountError::Conflict(
                "Groups are kept in LDAP (ldap.groups_dn); change them with the lab's LDAP tools."
                    .into(),
            ));
        }
        if usernames.len() > MAX_MEMBERS {
            return Err(invalid(
                "members",
                format!("A group takes at most {MAX_MEMBERS} members at once."),
            ));
        }
        let mut members: Vec<String> = usernames
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        members.sort();
        members.dedup();
        let mut ids = Vec::with_capacity(members.len());
        for username in &members {
            let found: Option<i64> = crate::with_pool!(&self.db, pool => {
                sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(pool)
                    .await
            })?;
            match found {
                Some(id) => ids.push(id),
                None => {
                    return Err(invalid(
                        "members",
                        format!(
                            "There is no account named “{}”.",
                            username.chars().take(64).collect::<String>()
                        ),
                    ));
                }
            }
        }
        self.directory.set_group(name, &ids).await?;
        tracing::info!(group = name, members = members.len(), by = %actor.username, "group changed");
        Ok(Group {
            name: name.to_string(),
            members,
        })
    }
}
