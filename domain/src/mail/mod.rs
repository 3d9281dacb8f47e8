//! Outgoing mail: a small trait with one implementation per transport,
//! chosen by `mail.kind` at start.

mod outbox;
mod smtp;

use std::sync::Arc;

use async_trait::async_trait;

pub use outbox::Outbox;
pub use smtp::{Smtp, SmtpSettings, SmtpTls};

/// A plain-text message to one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The address or the message cannot be sent as given.
    #[error("the message cannot be built: {0}")]
    Invalid(String),
    /// The transport failed; trying again later may work.
    #[error("the mail could not be delivered: {0}")]
    Transport(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

pub type SharedMailer = Arc<dyn Mailer>;

/// Builds the RFC 5322 message (headers and a UTF-8 text body).
pub fn build_message(from: &str, mail: &Mail) -> Result<lettre::Message, MailError> {
    let from = from
        .parse()
        .map_err(|e| MailError::Invalid(format!("sender `{from}`: {e}")))?;
    let to = mail
        .to
        .parse()
        .map_err(|e| MailError::Invalid(format!("recipient `{}`: {e}", mail.to)))?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(mail.text.clone())
        .map_err(|e| MailError::Invalid(e.to_string()))
}
