//! The embedded default: every message becomes an `.eml` file in a folder,
//! so Bootler works without a mail server and an operator can read what
//! would have been sent.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Mail, MailError, Mailer, build_message};

pub struct Outbox {
    dir: PathBuf,
    from: String,
}

impl Outbox {
    pub fn new(dir: PathBuf, from: String) -> Outbox {
        Outbox { dir, from }
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        let bytes = message.formatted();
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            crate::secret::new_token()
                .map_err(|e| MailError::Transport(e.to_string()))?
                .get(..8)
                .unwrap_or("x")
        );
        let final_path = self.dir.join(&name);
        let temp_path = self.dir.join(format!(".{name}.tmp"));
        let io =
            |e: std::io::Error| MailError::Transport(format!("outbox {}: {e}", self.dir.display()));
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        // Written under a temporary name first: a reader never sees half a mail.
        tokio::fs::write(&temp_path, bytes).await.map_err(io)?;
        tokio::fs::rename(&temp_path, &final_path)
            .await
            .map_err(io)?;
        tracing::info!(to = %mail.to, file = %final_path.display(), "mail written to the outbox");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_a_parseable_eml() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(
            dir.path().join("outbox"),
            "Bootler <bootler@lab.example>".into(),
        );
        let mail = Mail {
            to: "ana@uminho.pt".into(),
            subject: "Confirm your Bootler account".into(),
            text: "Open https://bootler.lab/confirm/abc to confirm.\nÀ bientôt".into(),
        };
        outbox.send(&mail).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].extension().unwrap(), "eml");
        let raw = std::fs::read(&files[0]).unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some("Confirm your Bootler account"));
        assert_eq!(
            parsed.to().unwrap().first().unwrap().address(),
            Some("ana@uminho.pt")
        );
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("bootler@lab.example")
        );
        let body = parsed.body_text(0).unwrap();
        assert!(body.contains("https://bootler.lab/confirm/abc"), "{body}");
        assert!(body.contains("À bientôt"), "{body}");
    }

    #[tokio::test]
    async fn bad_recipient_is_invalid_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_path_buf(), "bootler@lab.example".into());
        let err = outbox
            .send(&Mail {
                to: "not an address".into(),
                subject: "x".into(),
                text: "y".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Invalid(_)));
    }
}
