//! Templates in the database: global ones (admins manage them) and private
//! ones (their owner's). Every change is a new version; the old ones stay.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::Db;

/// The longest template body accepted.
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An iPXE script, served by `/boot/{mac}` to a marked host.
    System,
    /// The installer's answer file, served by `/boot/{mac}/unattended`.
    Unattended,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::System => "system",
            Kind::Unattended => "unattended",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "system" => Some(Kind::System),
            "unattended" => Some(Kind::Unattended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    /// `None`: global.
    pub owner: Option<String>,
    pub description: String,
    pub version: i32,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Version {
    pub version: i32,
    pub body: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: i64,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplatesError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    kind: String,
    owner_id: Option<i64>,
    owner: Option<String>,
    description: String,
    version: i32,
    body: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_template(self) -> (Template, Option<i64>) {
        (
            Template {
                id: self.id,
                name: self.name,
                kind: Kind::parse(&self.kind).unwrap_or(Kind::Unattended),
                owner: self.owner,
                description: self.description,
                version: self.version,
                body: self.body,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            self.owner_id,
        )
    }
}

macro_rules! select_template {
    ($rest:literal) => {
        concat!(
            "SELECT t.id, t.name, t.kind, t.owner_id, u.username AS owner, t.description, t.version, t.body, \
             t.created_at, t.updated_at FROM templates t LEFT JOIN users u ON u.id = t.owner_id ",
            $rest
        )
    };
}

/// What a new template or a change says.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub name: Option<String>,
    pub kind: Option<Kind>,
    pub description: Option<String>,
    pub body: Option<String>,
    /// For a change: the version it was made on; a newer one is a conflict.
    pub expected_version: Option<i32>,
}

fn check_name(name: &str) -> Result<String, TemplatesError> {
    let name = name.trim();
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(TemplatesError::Invalid(
            "A template name has 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit (for example debian-12-preseed).".into(),
        ))
    }
}

/// The body must compile; the error names the line.
fn check_body(name: &str, body: &str) -> Result<(), TemplatesError> {
    if body.len() > MAX_BODY {
        return Err(TemplatesError::Invalid(format!(
            "The template is {} bytes long; at most {MAX_BODY} are accepted.",
            body.len()
        )));
    }
    super::render::check_syntax(name, body).map_err(|e| TemplatesError::Invalid(e.to_string()))
}

/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 1000;

fn check_description(description: Option<&str>) -> Result<(), TemplatesError> {
    match description {
        Some(text) if text.chars().count() > MAX_DESCRIPTION => Err(TemplatesError::Invalid(
            format!("A description has at most {MAX_DESCRIPTION} characters."),
        )),
        _ => Ok(()),
    }
}

#[derive(Clone)]
pub struct Templates {
    db: Db,
}

impl Templates {
    pub fn new(db: Db) -> Templates {
        Templates { db }
    }

    /// Creates a template: global for admins unless `private`, else the
    /// actor's own.
    pub async fn create(
        &self,
        actor: Actor,
        draft: Draft,
        private: bool,
        now: DateTime<Utc>,
    ) -> Result<Template, TemplatesError> {
        let name = check_name(draft.name.as_deref().unwrap_or_default())?;
        let kind = draft.kind.ok_or_else(|| {
            TemplatesError::Invalid(
                "Say which kind of template: \"system\" or \"unattended\".".into(),
            )
        })?;
        let body = draft.body.unwrap_or_default();
        check_body(&name, &body)?;
        check_description(draft.description.as_deref())?;
        let owner = if actor.admin && !private {
            None
        } else {
            Some(actor.user_id)
        };
        let mut tx = self.db.begin().await?;
        let inserted = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "INSERT INTO templates (name, kind, owner_id, description, version, body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 1, $5, $6, $6) RETURNING id",
            )
            .bind(&name)
            .bind(kind.as_str())
            .bind(owner)
            .bind(draft.description.unwrap_or_default())
            .bind(&body)
            .bind(now)
            .fetch_one(conn)
            .await
        });
        let id: i64 = match inserted {
            Ok(id) => id,
            Err(err) if crate::db::unique_violation(&err).is_some() => {
                return Err(TemplatesError::Conflict(format!(
                    "There is already a template named “{name}”; choose another name."
                )));
            }
            Err(err) => return Err(err.into()),
        };
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO template_versions (template_id, version, body, created_by, created_at) VALUES ($1, 1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&body)
            .bind(actor.user_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        self.get(actor, id).await
    }

    async fn row(&self, id: i64) -> Result<Option<(Template, Option<i64>)>, sqlx::Error> {
        let row: Option<Row> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_template!("WHERE t.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Row::into_template))
    }

    /// A template the actor may see: global ones, their own, any for admins.
    pub async fn get(&self, actor: Actor, id: i64) -> Result<Template, TemplatesError> {
        match self.row(id).await? {
            Some((template, owner))
                if actor.admin || owner.is_none() || owner == Some(actor.user_id) =>
            {
                Ok(template)
            }
            _ => Err(TemplatesError::NotFound(format!(
                "There is no template {id} you can see."
            ))),
        }
    }

    /// Global templates and the actor's own (admins: everyone's), by name.
    pub async fn list(&self, actor: Actor) -> Result<Vec<Template>, TemplatesError> {
        let rows: Vec<Row> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_template!(
                "WHERE $1 OR t.owner_id IS NULL OR t.owner_id = $2 ORDER BY t.owner_id IS NOT NULL, t.name, t.id"
            ))
            .bind(actor.admin)
            .bind(actor.user_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|r| r.into_template().0).collect())
    }

    /// Changes a template (its owner's, or a global one by an admin). A new
    /// body makes a new version.
    pub async fn update(
        &self,
        actor: Actor,
        id: i64,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<Template, TemplatesError> {
        let current = self.editable(actor, id).await?;
        if let Some(expected) = draft.expected_version
            && expected != current.version
        {
            return Err(TemplatesError::Conflict(format!(
                "“{}” is at version {} now, not {expected}: someone changed it meanwhile. Reload it and apply your change again.",
                current.name, current.version
            )));
        }
        if draft.kind.is_some_and(|k| k != current.kind) {
            return Err(TemplatesError::Invalid(
                "A template's kind cannot change; create a new template instead.".into(),
            ));
        }
        let name = match &draft.name {
            Some(name) => check_name(name)?,
            None => current.name.clone(),
        };
        let body = draft.body.clone().unwrap_or_else(|| current.body.clone());
        check_body(&name, &body)?;
        check_description(draft.description.as_deref())?;
        let new_version = body != current.body;
        let version = if new_version {
            current.version + 1
        } else {
            current.version
        };
        let mut tx = self.db.begin().await?;
        let updated = crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE templates SET name = $1, description = $2, body = $3, version = $4, updated_at = $5 \
                 WHERE id = $6 AND version = $7",
            )
            .bind(&name)
            .bind(draft.description.clone().unwrap_or_else(|| current.description.clone()))
            .bind(&body)
            .bind(version)
            .bind(now)
            .bind(id)
            .bind(current.version)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        });
        match updated {
            Ok(1) => {}
            Ok(_) => {
                return Err(TemplatesError::Conflict(
                    "Someone changed this template meanwhile; reload it and apply your change again.".into(),
                ));
            }
            Err(err) if crate::db::unique_violation(&err).is_some() => {
                return Err(TemplatesError::Conflict(format!(
                    "There is already a template named “{name}”; choose another name."
                )));
            }
            Err(err) => return Err(err.into()),
        }
        if new_version {
            crate::with_tx!(&mut tx, conn => {
                sqlx::query(
                    "INSERT INTO template_versions (template_id, version, body, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(version)
                .bind(&body)
                .bind(actor.user_id)
                .bind(now)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
        }
        crate::changes::notify(&mut tx, crate::changes::Change::Templates).await?;
        tx.commit().await?;
        crate::changes::changed(crate::changes::Change::Templates);
        self.get(actor, id).await
    }

    async fn editable(&self, actor: Actor, id: i64) -> Result<Template, TemplatesError> {
        let Some((template, owner)) = self.row(id).await? else {
            return Err(TemplatesError::NotFound(format!(
                "There is no template {id} you can see."
            )));
        };
        match owner {
            Some(owner) if owner == actor.user_id || actor.admin => Ok(template),
            None if actor.admin => Ok(template),
            None => Err(TemplatesError::Forbidden(format!(
                "“{}” is a global template; only administrators change it. Copy it into a template of your own instead.",
                template.name
            ))),
            Some(_) => Err(TemplatesError::NotFound(format!(
                "There is no template {id} you can see."
            ))),
        }
    }

    /// Deletes a template no host has chosen (a host's boot options would
    /// silently lose it).
    pub async fn delete(&self, actor: Actor, id: i64) -> Result<(), TemplatesError> {
        let template = self.editable(actor, id).await?;
        let users: Vec<String> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT name FROM hosts WHERE system_template_id = $1 OR unattended_template_id = $1 ORDER BY name LIMIT 6",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?;
        if !users.is_empty() {
            let more = if users.len() > 5 { ", …" } else { "" };
            return Err(TemplatesError::Conflict(format!(
                "“{}” is a boot option of {}{more}; choose another template there first.",
                template.name,
                users.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        // In one statement with the check, so a host that chooses it
        // meanwhile does not lose its boot option.
        let deleted = crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "DELETE FROM templates WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM hosts WHERE system_template_id = $1 OR unattended_template_id = $1)",
            )
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if deleted == 0 {
            return Err(TemplatesError::Conflict(format!(
                "“{}” just became a boot option of a host; choose another template there first.",
                template.name
            )));
        }
        crate::changes::announce(&self.db, crate::changes::Change::Templates).await;
        Ok(())
    }

    /// Adds the shipped templates (`defaults::SHIPPED`) as global ones,
    /// each once: one an admin deleted or renamed is not brought back, and
    /// one whose name is taken is left alone. Returns the names added.
    pub async fn seed_shipped(&self, now: DateTime<Utc>) -> Result<Vec<String>, TemplatesError> {
        const KEY: &str = "shipped_templates";
        let mut tx = self.db.begin().await?;
        let seeded: Option<String> = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(KEY)
                .fetch_optional(conn)
                .await
        })?;
        let mut done: Vec<String> = seeded
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        let mut added = Vec::new();
        for shipped in super::defaults::SHIPPED {
            if done.iter().any(|n| n == shipped.name) {
                continue;
            }
            let id: Option<i64> = crate::with_tx!(&mut tx, conn => {
                sqlx::query_scalar(
                    "INSERT INTO templates (name, kind, owner_id, description, version, body, created_at, updated_at) \
                     SELECT $1, $2, NULL, $3, 1, $4, $5, $5 \
                     WHERE NOT EXISTS (SELECT 1 FROM templates WHERE name = $1 AND owner_id IS NULL) RETURNING id",
                )
                .bind(shipped.name)
                .bind(shipped.kind.as_str())
                .bind(shipped.description)
                .bind(shipped.body)
                .bind(now)
                .fetch_optional(conn)
                .await
            })?;
            if let Some(id) = id {
                crate::with_tx!(&mut tx, conn => {
                    sqlx::query(
                        "INSERT INTO template_versions (template_id, version, body, created_by, created_at) VALUES ($1, 1, $2, NULL, $3)",
                    )
                    .bind(id)
                    .bind(shipped.body)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(|_| ())
                })?;
                added.push(shipped.name.to_string());
            }
            done.push(shipped.name.to_string());
        }
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(KEY)
            .bind(done.join(","))
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(added)
    }

    /// Every version, newest first.
    pub async fn versions(&self, actor: Actor, id: i64) -> Result<Vec<Version>, TemplatesError> {
        self.get(actor, id).await?;
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT v.version, v.body, u.username AS created_by, v.created_at FROM template_versions v \
                 LEFT JOIN users u ON u.id = v.created_by WHERE v.template_id = $1 ORDER BY v.version DESC",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?)
    }
}
