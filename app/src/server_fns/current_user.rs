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
}

/// The signed-in user of this request, from the session cookie.
#[server(prefix = "/sfn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<SignedIn>, ServerFnError> {
    use bootler_domain::accounts::{Accounts, Role};
    let accounts =
        use_context::<Accounts>().ok_or_else(|| ServerFnError::new("accounts service missing"))?;
    let Some(parts) = use_context::<http::request::Parts>() else {
        return Ok(None);
    };
    let token = parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(bootler_domain::accounts::token_from_cookies)
        .map(str::to_string);
    let Some(token) = token else {
        return Ok(None);
    };
    let session = accounts
        .session(&token, chrono::Utc::now())
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(session.map(|s| SignedIn {
        admin: s.user.role == Role::Admin,
        username: s.user.username,
        display_name: s.user.display_name,
        csrf: s.csrf_token,
    }))
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
