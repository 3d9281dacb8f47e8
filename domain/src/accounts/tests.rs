//! The account flows against a real SQLite database, with a mailer that
//! keeps what it sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::session::SESSION_TTL;
use super::*;
use crate::directory::Builtin;
use crate::mail::{Mail, MailError, Mailer};

#[derive(Default)]
struct Kept(Mutex<Vec<Mail>>);

#[async_trait]
impl Mailer for Kept {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        self.0.lock().unwrap().push(mail.clone());
        Ok(())
    }
}

struct Fixture {
    accounts: Accounts,
    mails: Arc<Kept>,
    _dir: tempfile::TempDir,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let mails = Arc::new(Kept::default());
    let accounts = Accounts::new(
        db.clone(),
        Arc::new(Builtin::new(db)),
        mails.clone(),
        Settings {
            allowed_domains: vec!["uminho.pt".into(), "di.uminho.pt".into()],
            password_min_length: 12,
            confirmation_ttl: Duration::from_secs(24 * 3600),
            base_url: "https://bootler.lab".into(),
            vpn_at_registration: true,
        },
    );
    Fixture {
        accounts,
        mails,
        _dir: dir,
    }
}

fn form(username: &str, email: &str) -> Registration {
    Registration {
        username: username.into(),
        display_name: "Ana Silva".into(),
        email: email.into(),
        password: "correct horse battery".into(),
        password_confirm: Some("correct horse battery".into()),
    }
}

impl Fixture {
    fn last_link(&self) -> String {
        let mails = self.mails.0.lock().unwrap();
        let text = &mails.last().unwrap().text;
        let start = text.find("https://bootler.lab/confirm/").unwrap();
        text[start..].split_whitespace().next().unwrap().to_string()
    }

    fn last_token(&self) -> String {
        self.last_link().rsplit('/').next().unwrap().to_string()
    }
}

#[tokio::test]
async fn register_confirm_and_sign_in() {
    let f = fixture().await;
    let user = f
        .accounts
        .register(form("ana", "Ana@UMinho.pt"), t0())
        .await
        .unwrap();
    assert_eq!(user.status, Status::Pending);
    assert_eq!(user.email, "ana@uminho.pt");
    assert_eq!(user.role, Role::User);

    let mail = f.mails.0.lock().unwrap()[0].clone();
    assert_eq!(mail.to, "ana@uminho.pt");
    assert!(mail.text.contains("within 24 hours"));

    // Pending: the right password says "confirm first", a wrong one says nothing.
    let err = f
        .accounts
        .authenticate("ana", "correct horse battery", t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::NotActive(ref m) if m.contains("a…a@uminho.pt")),
        "{err}"
    );
    let err = f
        .accounts
        .authenticate("ana", "wrong password!!", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::WrongCredentials));

    let token = f.last_token();
    let user = f
        .accounts
        .confirm(&token, t0() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(user.status, Status::Active);

    let signed_in = f
        .accounts
        .authenticate("ana", "correct horse battery", t0())
        .await
        .unwrap();
    assert_eq!(signed_in.id, user.id);
    let by_mail = f
        .accounts
        .authenticate("ana@uminho.pt", "correct horse battery", t0())
        .await
        .unwrap();
    assert_eq!(by_mail.id, user.id);
    assert!(matches!(
        f.accounts
            .authenticate("ana", "correct horse batterY", t0())
            .await,
        Err(AccountError::WrongCredentials)
    ));
    assert!(matches!(
        f.accounts
            .authenticate("nobody", "correct horse battery", t0())
            .await,
        Err(AccountError::WrongCredentials)
    ));

    // The link works once.
    let err = f.accounts.confirm(&token, t0()).await.unwrap_err();
    assert!(
        matches!(err, AccountError::BadLink(ref m) if m.contains("already used")),
        "{err}"
    );
}

#[tokio::test]
async fn expired_and_unknown_links_are_refused() {
    let f = fixture().await;
    f.accounts
        .register(form("ana", "ana@uminho.pt"), t0())
        .await
        .unwrap();
    let token = f.last_token();
    let err = f
        .accounts
        .confirm(&token, t0() + chrono::Duration::hours(25))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::BadLink(ref m) if m.contains("expired")),
        "{err}"
    );
    let err = f.accounts.confirm("not-a-token", t0()).await.unwrap_err();
    assert!(
        matches!(err, AccountError::BadLink(ref m) if m.contains("not valid")),
        "{err}"
    );
    // Still pending.
    assert_eq!(
        f.accounts.find("ana").await.unwrap().unwrap().status,
        Status::Pending
    );
}

#[tokio::test]
async fn every_invalid_field_is_reported() {
    let f = fixture().await;
    let err = f
        .accounts
        .register(
            Registration {
                username: "Root*".into(),
                display_name: " ".into(),
                email: "ana@gmail.com".into(),
                password: "short".into(),
                password_confirm: Some("other".into()),
            },
            t0(),
        )
        .await
        .unwrap_err();
    let AccountError::Invalid(errors) = err else {
        panic!("{err}")
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "username",
            "display_name",
            "email",
            "password",
            "password_confirm"
        ]
    );
    assert!(errors[2].message.contains("@uminho.pt, @di.uminho.pt"));
    assert!(f.mails.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn duplicates_are_refused_until_the_old_registration_expires() {
    let f = fixture().await;
    f.accounts
        .register(form("ana", "ana@uminho.pt"), t0())
        .await
        .unwrap();
    let err = f
        .accounts
        .register(form("ana", "other@uminho.pt"), t0())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AccountError::Taken {
                field: "username",
                ..
            }
        ),
        "{err}"
    );
    let err = f
        .accounts
        .register(form("other", "ANA@uminho.pt"), t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::Taken { field: "email", .. }),
        "{err}"
    );

    // After the link expired, the name is free again.
    let later = t0() + chrono::Duration::hours(30);
    let again = f
        .accounts
        .register(form("ana", "ana@di.uminho.pt"), later)
        .await
        .unwrap();
    assert_eq!(again.email, "ana@di.uminho.pt");
}

#[tokio::test]
async fn filter_metacharacters_never_match_other_accounts() {
    let f = fixture().await;
    f.accounts
        .create_user(
            NewUser {
                username: "ana".into(),
                display_name: "Ana".into(),
                email: "ana@uminho.pt".into(),
                password: "correct horse battery".into(),
                role: Role::Admin,
            },
            t0(),
        )
        .await
        .unwrap();
    for login in [
        "*",
        "a*",
        "ana)(uid=*",
        "ana\\",
        "ana\0",
        "%",
        "ana%",
        "_na",
    ] {
        assert!(f.accounts.find(login).await.unwrap().is_none(), "{login:?}");
        assert!(matches!(
            f.accounts
                .authenticate(login, "correct horse battery", t0())
                .await,
            Err(AccountError::WrongCredentials)
        ));
    }
    for username in ["a*", "ana)(uid=*", "ana\\x", "an\0a"] {
        let err = f
            .accounts
            .register(form(username, "x@uminho.pt"), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, AccountError::Invalid(_)), "{username:?}");
    }
}

#[tokio::test]
async fn created_users_are_active_at_once() {
    let f = fixture().await;
    let admin = f
        .accounts
        .create_user(
            NewUser {
                username: "boss".into(),
                display_name: "The Boss".into(),
                email: "boss@example.org".into(),
                password: "correct horse battery".into(),
                role: Role::Admin,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.status, Status::Active);
    assert_eq!(f.accounts.count_admins().await.unwrap(), 1);
    f.accounts
        .authenticate("boss", "correct horse battery", t0())
        .await
        .unwrap();
}

async fn active_user(f: &Fixture, username: &str) -> User {
    f.accounts
        .create_user(
            NewUser {
                username: username.into(),
                display_name: "Ana".into(),
                email: format!("{username}@uminho.pt"),
                password: "correct horse battery".into(),
                role: Role::User,
            },
            t0(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_open_resolve_extend_and_close() {
    let f = fixture().await;
    let user = active_user(&f, "ana").await;
    let new = f
        .accounts
        .sign_in("ana", "correct horse battery", Some("10.0.0.1"), t0())
        .await
        .unwrap();
    assert_eq!(new.user.id, user.id);
    assert_eq!(new.expires_at, t0() + SESSION_TTL);

    let session = f.accounts.session(&new.token, t0()).await.unwrap().unwrap();
    assert_eq!(session.user.username, "ana");
    assert_eq!(session.csrf_token.len(), 43);
    assert!(f.accounts.session("forged", t0()).await.unwrap().is_none());

    // Used after 13 days, it lasts 14 more.
    let later = t0() + chrono::Duration::days(13);
    assert!(
        f.accounts
            .session(&new.token, later)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.accounts
            .session(&new.token, later + chrono::Duration::days(13))
            .await
            .unwrap()
            .is_some()
    );
    // Unused for 14 days, it is gone.
    let gone = later + chrono::Duration::days(13) + SESSION_TTL + chrono::Duration::seconds(1);
    assert!(
        f.accounts
            .session(&new.token, gone)
            .await
            .unwrap()
            .is_none()
    );

    let new = f
        .accounts
        .sign_in("ana", "correct horse battery", None, t0())
        .await
        .unwrap();
    f.accounts.sign_out(&new.token).await.unwrap();
    assert!(
        f.accounts
            .session(&new.token, t0())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_account_and_per_address() {
    let f = fixture().await;
    active_user(&f, "ana").await;
    for _ in 0..throttle::ACCOUNT_LIMIT {
        let err = f
            .accounts
            .sign_in("ana", "wrong password!", Some("10.0.0.1"), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, AccountError::WrongCredentials), "{err}");
    }
    // Locked now, even with the right password, from anywhere.
    let err = f
        .accounts
        .sign_in(
            "ana",
            "correct horse battery",
            Some("10.0.0.2"),
            t0() + chrono::Duration::minutes(1),
        )
        .await
        .unwrap_err();
    let AccountError::RateLimited {
        retry_after_seconds,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(retry_after_seconds, 14 * 60);
    assert!(err.to_string().contains("Try again in 840 s"), "{err}");
    // After the window, the right password works and clears the count.
    let after = t0() + throttle::WINDOW + chrono::Duration::seconds(1);
    f.accounts
        .sign_in("ana", "correct horse battery", Some("10.0.0.1"), after)
        .await
        .unwrap();
    f.accounts
        .sign_in("ana", "wrong password!", None, after)
        .await
        .unwrap_err();
    f.accounts
        .sign_in("ana", "correct horse battery", None, after)
        .await
        .unwrap();

    // One address trying many accounts is stopped too.
    for i in 0..throttle::ADDRESS_LIMIT {
        let login = format!("nobody{i}");
        let err = f
            .accounts
            .sign_in(&login, "x", Some("10.9.9.9"), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, AccountError::WrongCredentials), "{err}");
    }
    let err = f
        .accounts
        .sign_in("ana", "correct horse battery", Some("10.9.9.9"), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::RateLimited { .. }), "{err}");
}

#[tokio::test]
async fn change_password_needs_the_current_one() {
    let f = fixture().await;
    let user = active_user(&f, "ana").await;
    let err = f
        .accounts
        .change_password(&user, "wrong one!!", "a new long password", None, t0())
        .await
        .unwrap_err();
    let AccountError::Invalid(errors) = err else {
        panic!("{err}")
    };
    assert_eq!(errors[0].field, "current_password");
    let err = f
        .accounts
        .change_password(&user, "correct horse battery", "short", None, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::Invalid(ref e) if e[0].field == "new_password"),
        "{err}"
    );
    f.accounts
        .change_password(
            &user,
            "correct horse battery",
            "a new long password",
            Some("a new long password"),
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(
        f.accounts
            .authenticate("ana", "correct horse battery", t0())
            .await,
        Err(AccountError::WrongCredentials)
    ));
    f.accounts
        .authenticate("ana", "a new long password", t0())
        .await
        .unwrap();
}

#[tokio::test]
async fn reset_by_mail_once_within_an_hour_and_sign_out_everywhere() {
    let f = fixture().await;
    active_user(&f, "ana").await;
    let session = f
        .accounts
        .sign_in("ana", "correct horse battery", None, t0())
        .await
        .unwrap();

    // Unknown accounts: no mail, no error.
    f.accounts
        .request_reset("nobody@uminho.pt", t0())
        .await
        .unwrap();
    assert!(f.mails.0.lock().unwrap().is_empty());

    f.accounts
        .request_reset("ana@uminho.pt", t0())
        .await
        .unwrap();
    // A second request within a minute sends nothing more.
    f.accounts
        .request_reset("ana", t0() + chrono::Duration::seconds(30))
        .await
        .unwrap();
    let mails = f.mails.0.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Reset your Bootler password");
    let link = mails[0]
        .text
        .split_whitespace()
        .find(|w| w.contains("/reset/"))
        .unwrap()
        .to_string();
    assert!(link.starts_with("https://bootler.lab/reset/"), "{link}");
    let token = link.rsplit('/').next().unwrap();

    let err = f
        .accounts
        .reset_password(token, "a new long password", Some("another one"), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::Invalid(_)), "{err}");
    let err = f
        .accounts
        .reset_password(
            token,
            "a new long password",
            None,
            t0() + chrono::Duration::minutes(61),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::BadLink(ref m) if m.contains("expired")),
        "{err}"
    );

    f.accounts
        .reset_password(token, "a new long password", None, t0())
        .await
        .unwrap();
    f.accounts
        .authenticate("ana", "a new long password", t0())
        .await
        .unwrap();
    assert!(
        f.accounts
            .session(&session.token, t0())
            .await
            .unwrap()
            .is_none(),
        "signed out everywhere"
    );
    let err = f
        .accounts
        .reset_password(token, "yet another password", None, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::BadLink(ref m) if m.contains("already used")),
        "{err}"
    );
}

#[tokio::test]
async fn confirmation_can_be_resent_once_a_minute_to_pending_accounts_only() {
    let f = fixture().await;
    f.accounts
        .register(form("ana", "ana@uminho.pt"), t0())
        .await
        .unwrap();
    // Within the minute: nothing more.
    f.accounts
        .resend_confirmation("ana@uminho.pt", t0() + chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(f.mails.0.lock().unwrap().len(), 1);
    // Unknown addresses: nothing, and no error.
    f.accounts
        .resend_confirmation("nobody@uminho.pt", t0())
        .await
        .unwrap();
    f.accounts
        .resend_confirmation("not an address", t0())
        .await
        .unwrap();
    assert_eq!(f.mails.0.lock().unwrap().len(), 1);
    let later = t0() + chrono::Duration::minutes(2);
    f.accounts
        .resend_confirmation("ANA@uminho.pt", later)
        .await
        .unwrap();
    assert_eq!(f.mails.0.lock().unwrap().len(), 2);
    // The new link works, also after the first one expired.
    let token = f.last_token();
    let user = f
        .accounts
        .confirm(
            &token,
            t0() + chrono::Duration::hours(24) + chrono::Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(user.status, Status::Active);
    // Active accounts get no more confirmation mails.
    f.accounts
        .resend_confirmation("ana@uminho.pt", t0() + chrono::Duration::hours(26))
        .await
        .unwrap();
    assert_eq!(f.mails.0.lock().unwrap().len(), 2);
}

async fn admin_user(f: &Fixture, username: &str) -> User {
    let user = active_user(f, username).await;
    let mut first_admin = user.clone();
    first_admin.role = Role::Admin;
    // Promote through the database: the first admin comes from `user add`.
    crate::with_pool!(&f.accounts.db, pool => {
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(user.id)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
    first_admin
}

#[tokio::test]
async fn admins_list_and_search_accounts() {
    let f = fixture().await;
    let boss = admin_user(&f, "boss").await;
    active_user(&f, "ana").await;
    active_user(&f, "bruno").await;
    f.accounts
        .register(form("carla_x", "carla@uminho.pt"), t0())
        .await
        .unwrap();
    let all = f
        .accounts
        .list_users(
            &boss,
            &UserQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.total, 4);
    let pending = f
        .accounts
        .list_users(
            &boss,
            &UserQuery {
                status: Some(Status::Pending),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        pending
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["carla_x"]
    );
    // By part of the address, case-insensitive; `_` is not a wildcard.
    let found = f
        .accounts
        .list_users(
            &boss,
            &UserQuery {
                search: "BRU".into(),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.users.len(), 1);
    assert_eq!(found.users[0].username, "bruno");
    let underscore = f
        .accounts
        .list_users(
            &boss,
            &UserQuery {
                search: "b_u".into(),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(underscore.total, 0);
    let literal = f
        .accounts
        .list_users(
            &boss,
            &UserQuery {
                search: "a_".into(),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(literal.users.len(), 1);
    // Pages.
    let page = f
        .accounts
        .list_users(
            &boss,
            &UserQuery {
                limit: 3,
                offset: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((page.users.len(), page.total), (1, 4));
    // Not for plain users.
    let ana = f.accounts.find("ana").await.unwrap().unwrap();
    assert!(matches!(
        f.accounts.list_users(&ana, &UserQuery::default()).await,
        Err(AccountError::Forbidden(_))
    ));
}

#[tokio::test]
async fn disabling_signs_out_and_locks_out_until_enabled() {
    let f = fixture().await;
    let boss = admin_user(&f, "boss").await;
    let ana = active_user(&f, "ana").await;
    let session = f
        .accounts
        .sign_in("ana", "correct horse battery", None, t0())
        .await
        .unwrap();
    let (_, token) = f.accounts.create_token(&ana, "ci", t0()).await.unwrap();
    let disabled = f.accounts.set_enabled(&boss, "ana", false).await.unwrap();
    assert_eq!(disabled.status, Status::Disabled);
    assert!(
        f.accounts
            .session(&session.token, t0())
            .await
            .unwrap()
            .is_none()
    );
    assert!(f.accounts.token_user(&token, t0()).await.unwrap().is_none());
    let err = f
        .accounts
        .authenticate("ana", "correct horse battery", t0())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disabled"), "{err}");
    // Again is fine; then back.
    f.accounts.set_enabled(&boss, "ana", false).await.unwrap();
    f.accounts.set_enabled(&boss, "ana", true).await.unwrap();
    f.accounts
        .authenticate("ana", "correct horse battery", t0())
        .await
        .unwrap();
    assert!(f.accounts.token_user(&token, t0()).await.unwrap().is_some());
    // Not oneself, not by a plain user, not an unknown name.
    assert!(matches!(
        f.accounts.set_enabled(&boss, "boss", false).await,
        Err(AccountError::Forbidden(_))
    ));
    assert!(matches!(
        f.accounts.set_enabled(&ana, "boss", false).await,
        Err(AccountError::Forbidden(_))
    ));
    assert!(matches!(
        f.accounts.set_enabled(&boss, "nobody", false).await,
        Err(AccountError::NotFound(_))
    ));
}

#[tokio::test]
async fn roles_change_but_never_ones_own() {
    let f = fixture().await;
    let boss = admin_user(&f, "boss").await;
    active_user(&f, "ana").await;
    let ana = f
        .accounts
        .set_role(&boss, "ana", Role::Admin)
        .await
        .unwrap();
    assert_eq!(ana.role, Role::Admin);
    assert_eq!(f.accounts.count_admins().await.unwrap(), 2);
    // Ana, now an admin, demotes the boss; the boss cannot demote himself.
    assert!(matches!(
        f.accounts.set_role(&boss, "boss", Role::User).await,
        Err(AccountError::Forbidden(_))
    ));
    f.accounts.set_role(&ana, "boss", Role::User).await.unwrap();
    assert_eq!(
        f.accounts.find("boss").await.unwrap().unwrap().role,
        Role::User
    );
}

#[tokio::test]
async fn pending_registrations_are_approved_or_deleted() {
    let f = fixture().await;
    let boss = admin_user(&f, "boss").await;
    f.accounts
        .register(form("carla", "carla@uminho.pt"), t0())
        .await
        .unwrap();
    let carla_link = f.last_token();
    f.accounts
        .register(form("typo", "typo@uminho.pt"), t0())
        .await
        .unwrap();
    assert!(matches!(
        f.accounts.set_enabled(&boss, "carla", true).await,
        Err(AccountError::Conflict(_))
    ));
    let carla = f.accounts.approve(&boss, "carla", t0()).await.unwrap();
    assert_eq!(carla.status, Status::Active);
    // The password chosen at registration works; the mailed link is spent.
    f.accounts
        .authenticate("carla", "correct horse battery", t0())
        .await
        .unwrap();
    assert!(matches!(
        f.accounts.confirm(&carla_link, t0()).await,
        Err(AccountError::BadLink(_))
    ));
    assert!(matches!(
        f.accounts.approve(&boss, "carla", t0()).await,
        Err(AccountError::Conflict(_))
    ));
    assert!(matches!(
        f.accounts.delete_pending(&boss, "carla").await,
        Err(AccountError::Conflict(_))
    ));
    f.accounts.delete_pending(&boss, "typo").await.unwrap();
    assert!(f.accounts.find("typo").await.unwrap().is_none());
    // The name is free again.
    f.accounts
        .register(form("typo", "typo@uminho.pt"), t0())
        .await
        .unwrap();
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa ana@laptop";

#[tokio::test]
async fn profile_names_and_ssh_keys() {
    let f = fixture().await;
    let ana = active_user(&f, "ana").await;
    let renamed = f
        .accounts
        .set_display_name(&ana, "  Ana Silva ")
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "Ana Silva");
    assert_eq!(
        f.accounts.find("ana").await.unwrap().unwrap().display_name,
        "Ana Silva"
    );
    assert!(matches!(
        f.accounts.set_display_name(&ana, "   ").await,
        Err(AccountError::Invalid(_))
    ));

    let key = f.accounts.add_ssh_key(&ana, None, KEY, t0()).await.unwrap();
    assert_eq!(key.name, "ana@laptop");
    assert_eq!(
        key.fingerprint,
        "SHA256:FwnmtEIDMmcpJYb+83of9cxbm/gsNFiir08UiSD06tA"
    );
    let again = f
        .accounts
        .add_ssh_key(&ana, Some("work"), KEY, t0())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already added"), "{again}");
    let bad = f
        .accounts
        .add_ssh_key(&ana, None, "ssh-ed25519 AAAA", t0())
        .await
        .unwrap_err();
    assert!(matches!(bad, AccountError::Invalid(ref e) if e[0].field == "public_key"));
    // Another person may add the same key.
    let bruno = active_user(&f, "bruno").await;
    f.accounts
        .add_ssh_key(&bruno, Some("shared"), KEY, t0())
        .await
        .unwrap();
    assert_eq!(
        f.accounts.list_ssh_keys(&ana).await.unwrap(),
        vec![key.clone()]
    );
    // Nobody deletes another person's key.
    assert!(!f.accounts.delete_ssh_key(&bruno, key.id).await.unwrap());
    assert!(f.accounts.delete_ssh_key(&ana, key.id).await.unwrap());
    assert!(f.accounts.list_ssh_keys(&ana).await.unwrap().is_empty());
}

#[tokio::test]
async fn at_most_twenty_keys() {
    let f = fixture().await;
    let ana = active_user(&f, "ana").await;
    for i in 0..MAX_SSH_KEYS {
        let mut point = vec![0u8; 32];
        point[0] = i as u8;
        let mut blob = Vec::new();
        for part in [&b"ssh-ed25519"[..], &point] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        use base64::Engine;
        let line = format!(
            "ssh-ed25519 {}",
            base64::engine::general_purpose::STANDARD.encode(blob)
        );
        f.accounts
            .add_ssh_key(&ana, None, &line, t0())
            .await
            .unwrap();
    }
    let err = f
        .accounts
        .add_ssh_key(&ana, None, KEY, t0())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("remove one"), "{err}");
}
