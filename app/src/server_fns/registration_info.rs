use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the registration form tells people before they type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRules {
    pub allowed_domains: Vec<String>,
    pub password_min_length: usize,
}

#[server(prefix = "/sfn", endpoint = "registration_info")]
pub async fn registration_info() -> Result<RegistrationRules, ServerFnError> {
    let accounts = use_context::<bootler_domain::accounts::Accounts>()
        .ok_or_else(|| ServerFnError::new("accounts service missing"))?;
    let settings = accounts.settings();
    Ok(RegistrationRules {
        allowed_domains: settings.allowed_domains.clone(),
        password_min_length: settings.password_min_length,
    })
}
