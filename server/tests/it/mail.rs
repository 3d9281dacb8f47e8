//! Mail over SMTP to a real SMTP server.

use bootler_domain::mail::{Mail, MailError, Mailer, Smtp, SmtpSettings, SmtpTls};

use crate::support::smtp::SmtpSink;

fn settings(port: u16, tls: SmtpTls) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls,
        username: None,
        password: None,
        timeout: std::time::Duration::from_secs(5),
    }
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server() {
    let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
    let smtp = Smtp::new(
        settings(sink.port, SmtpTls::None),
        "Bootler <bootler@lab.example>".into(),
    )
    .unwrap();
    smtp.send(&Mail {
        to: "ana@uminho.pt".into(),
        subject: "Confirm your Bootler account".into(),
        text: "Open http://bootler.lab/confirm/abc\n".into(),
    })
    .await
    .unwrap();
    let messages = sink.wait_for(1);
    let parsed = mail_parser::MessageParser::default()
        .parse(&messages[0])
        .unwrap();
    assert_eq!(parsed.subject(), Some("Confirm your Bootler account"));
    assert_eq!(
        parsed.to().unwrap().first().unwrap().address(),
        Some("ana@uminho.pt")
    );
    assert!(parsed.body_text(0).unwrap().contains("/confirm/abc"));
}

#[tokio::test]
async fn starttls_is_required_when_asked_for() {
    // aiosmtpd without a certificate offers no STARTTLS: refusing to send in
    // clear is the point.
    let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
    let smtp = Smtp::new(
        settings(sink.port, SmtpTls::StartTls),
        "bootler@lab.example".into(),
    )
    .unwrap();
    let err = smtp
        .send(&Mail {
            to: "ana@uminho.pt".into(),
            subject: "x".into(),
            text: "y".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transport(_)), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = Smtp::new(settings(port, SmtpTls::None), "bootler@lab.example".into()).unwrap();
    let started = std::time::Instant::now();
    let err = smtp
        .send(&Mail {
            to: "ana@uminho.pt".into(),
            subject: "x".into(),
            text: "y".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transport(_)), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
}

#[tokio::test]
async fn registration_mail_over_smtp_activates_the_account() {
    use bootler_domain::config::{MailKind, SmtpTlsMode};

    let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
    let port = sink.port;
    let app = crate::support::app::TestApp::start_with(None, |config| {
        config.mail.kind = MailKind::Smtp;
        config.mail.smtp.host = "127.0.0.1".into();
        config.mail.smtp.port = Some(port);
        config.mail.smtp.tls = SmtpTlsMode::None;
    })
    .await;
    let res = app
        .post_json(
            "/api/v1/register",
            serde_json::json!({
                "username": "ana",
                "display_name": "Ana Silva",
                "email": "ana@uminho.pt",
                "password": "correct horse battery",
            }),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert!(app.mails().is_empty(), "nothing in the outbox with SMTP");
    let messages = sink.wait_for(1);
    let parsed = mail_parser::MessageParser::default()
        .parse(&messages[0])
        .unwrap();
    let text = parsed.body_text(0).unwrap().to_string();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/confirm/"))
        .unwrap()
        .to_string();
    assert!(link.starts_with(&app.url), "{link}");
    let token = link.rsplit('/').next().unwrap();
    let res = app
        .post_json("/api/v1/confirm", serde_json::json!({ "token": token }))
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}
