use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Who is signed in, as the pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub username: String,
    pub display_name: String,
    pub admin: bool,
    /// Goes back in the forms of signed-in pages.
    pub csrf: String,
    /// The person's newest event when the page was rendered: the live
    /// connection replays what came after, so a job that ends between the
    /// page and the WebSocket is not missed.
    pub last_event_id: i64,
}

/// The signed-in user of this request, from the session cookie.
#[server(prefix = "/sfn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<SignedIn>, ServerFnError> {
    use bootler_domain::accounts::Role;
    let Some(s) = request_session().await? else {
        return Ok(None);
    };
    let last_event_id = match use_context::<bootler_domain::jobs::Jobs>() {
        Some(jobs) => jobs.events().last_id(s.user.id).await.unwrap_or(0),
        None => 0,
    };
    Ok(Some(SignedIn {
        admin: s.user.role == Role::Admin,
        username: s.user.username,
        display_name: s.user.display_name,
        csrf: s.csrf_token,
        last_event_id,
    }))
}

/// The accounts service of this request.
#[cfg(feature = "ssr")]
pub fn accounts() -> Result<bootler_domain::accounts::Accounts, ServerFnError> {
    use_context::<bootler_domain::accounts::Accounts>()
        .ok_or_else(|| ServerFnError::new("accounts service missing"))
}

/// A cookie of this request by name.
#[cfg(feature = "ssr")]
pub fn request_cookie(name: &str) -> Option<String> {
    let parts = use_context::<http::request::Parts>()?;
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty())
}

/// The session of this request (signed in and active), if any.
#[cfg(feature = "ssr")]
pub async fn request_session() -> Result<Option<bootler_domain::accounts::Session>, ServerFnError> {
    let accounts = accounts()?;
    let Some(token) = request_cookie(bootler_domain::accounts::COOKIE) else {
        return Ok(None);
    };
    accounts
        .session(&token, chrono::Utc::now())
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// The signed-in user as a resource every page shares (provided by `App`).
#[derive(Clone, Copy)]
pub struct CurrentUserResource(pub Resource<Result<Option<SignedIn>, ServerFnError>>);

pub fn use_current_user() -> Signal<Option<SignedIn>> {
    let resource = use_context::<CurrentUserResource>().map(|c| c.0);
    Signal::derive(move || {
        resource
            .and_then(|r| r.get())
            .and_then(Result::ok)
            .flatten()
    })
}
