//! OpenVPN's management interface (a line protocol on TCP): who is
//! connected (`status 3`) and disconnecting someone (`kill <name>`).
//! Each call opens its own connection: the interface takes one client at
//! a time, and Bootler asks rarely.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One connected client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connected {
    /// The username (the server runs with `username-as-common-name`).
    pub username: String,
    pub real_address: String,
    pub virtual_address: String,
    pub bytes_received: i64,
    pub bytes_sent: i64,
    pub connected_since: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("OpenVPN's management interface at {0} does not answer: {1}")]
    Unreachable(SocketAddr, String),
    #[error("OpenVPN's management interface refused: {0}")]
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct Management {
    address: SocketAddr,
    password: Option<String>,
    timeout: Duration,
}

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    address: SocketAddr,
    timeout: Duration,
}

impl Management {
    pub fn new(address: SocketAddr, password: Option<String>) -> Management {
        Management {
            address,
            password,
            timeout: Duration::from_secs(3),
        }
    }

    /// Everyone connected now.
    pub async fn clients(&self) -> Result<Vec<Connected>, ManagementError> {
        let mut conn = self.open().await?;
        conn.send("status 3").await?;
        let mut header: Vec<String> = Vec::new();
        let mut clients = Vec::new();
        loop {
            let line = conn.line().await?;
            if line == "END" {
                break;
            }
            if let Some(error) = line.strip_prefix("ERROR:") {
                return Err(ManagementError::Refused(error.trim().to_string()));
            }
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.first() {
                Some(&"HEADER") if fields.get(1) == Some(&"CLIENT_LIST") => {
                    header = fields[2..].iter().map(|f| f.to_string()).collect();
                }
                Some(&"CLIENT_LIST") => {
                    let field = |name: &str| {
                        header
                            .iter()
                            .position(|h| h == name)
                            .and_then(|i| fields.get(i + 1))
                            .copied()
                            .unwrap_or_default()
                    };
                    let username = match field("Username") {
                        "" | "UNDEF" => field("Common Name"),
                        name => name,
                    };
                    clients.push(Connected {
                        username: username.to_string(),
                        real_address: field("Real Address").to_string(),
                        virtual_address: field("Virtual Address").to_string(),
                        bytes_received: field("Bytes Received").parse().unwrap_or(0),
                        bytes_sent: field("Bytes Sent").parse().unwrap_or(0),
                        connected_since: field("Connected Since (time_t)")
                            .parse()
                            .ok()
                            .and_then(|t| DateTime::from_timestamp(t, 0)),
                    });
                }
                _ => {}
            }
        }
        conn.quit().await;
        Ok(clients)
    }

    /// Disconnects every session of `username`; how many there were.
    pub async fn kill(&self, username: &str) -> Result<usize, ManagementError> {
        if username.is_empty()
            || username
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ManagementError::Refused(format!(
                "“{username}” is not a username"
            )));
        }
        let mut conn = self.open().await?;
        conn.send(&format!("kill {username}")).await?;
        let answer = conn.answer().await?;
        conn.quit().await;
        if let Some(error) = answer.strip_prefix("ERROR:") {
            // "common name 'x' not found": nobody to disconnect.
            if error.contains("not found") {
                return Ok(0);
            }
            return Err(ManagementError::Refused(error.trim().to_string()));
        }
        // "SUCCESS: common name 'ana' found, 1 client(s) killed"
        Ok(answer
            .split(", ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1))
    }

    async fn open(&self) -> Result<Conn, ManagementError> {
        let unreachable = |err: String| ManagementError::Unreachable(self.address, err);
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(self.address))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|err| unreachable(err.to_string()))?;
        let (reader, writer) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::new(reader),
            writer,
            address: self.address,
            timeout: self.timeout,
        };
        if let Some(password) = &self.password {
            // The prompt comes without a newline.
            let mut prompt = [0u8; 15];
            tokio::time::timeout(
                self.timeout,
                tokio::io::AsyncReadExt::read_exact(&mut conn.reader, &mut prompt),
            )
            .await
            .map_err(|_| unreachable("no password prompt".into()))?
            .map_err(|err| unreachable(err.to_string()))?;
            if &prompt != b"ENTER PASSWORD:" {
                return Err(ManagementError::Refused(format!(
                    "expected a password prompt, got “{}”",
                    String::from_utf8_lossy(&prompt)
                )));
            }
            conn.send(password).await?;
            let answer = conn.answer().await?;
            if !answer.starts_with("SUCCESS") {
                return Err(ManagementError::Refused(format!(
                    "the password was not accepted ({answer}); see vpn.management_password_file"
                )));
            }
        }
        Ok(conn)
    }
}

impl Conn {
    async fn send(&mut self, line: &str) -> Result<(), ManagementError> {
        let sent = async {
            self.writer.write_all(line.as_bytes()).await?;
            self.writer.write_all(b"\n").await
        };
        tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| ManagementError::Unreachable(self.address, "timed out".into()))?
            .map_err(|err| ManagementError::Unreachable(self.address, err.to_string()))
    }

    /// The next line that is not a real-time notification (`>…`).
    async fn line(&mut self) -> Result<String, ManagementError> {
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
                .await
                .map_err(|_| ManagementError::Unreachable(self.address, "timed out".into()))?
                .map_err(|err| ManagementError::Unreachable(self.address, err.to_string()))?;
            if read == 0 {
                return Err(ManagementError::Unreachable(
                    self.address,
                    "the connection closed".into(),
                ));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if !line.starts_with('>') {
                return Ok(line.to_string());
            }
        }
    }

    /// The next `SUCCESS:` or `ERROR:` line.
    async fn answer(&mut self) -> Result<String, ManagementError> {
        loop {
            let line = self.line().await?;
            if line.starts_with("SUCCESS:") || line.starts_with("ERROR:") {
                return Ok(line);
            }
        }
    }

    async fn quit(mut self) {
        let _ = self.writer.write_all(b"quit\n").await;
    }
}
