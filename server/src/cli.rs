//! The `bootler` command line.

use std::path::PathBuf;

use anyhow::Context;
use bootler_domain::{Config, Db, config::LogFormat};
use clap::{Parser, Subcommand};

/// Bootler: self-service provisioning of bare-metal nodes, virtual machines
/// and VPN access for research labs.
///
/// Configuration comes from a TOML file (--config, or ./bootler.toml when it
/// exists) overlaid by BOOTLER_* environment variables; a nested key maps to
/// a double underscore (ldap.url is BOOTLER_LDAP__URL). With no configuration
/// at all Bootler listens on 127.0.0.1:3000 and keeps a SQLite database
/// under ./data/.
#[derive(Debug, Parser)]
#[command(name = "bootler", version)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./bootler.toml if present.
    #[arg(
        long,
        short,
        global = true,
        env = "BOOTLER_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server: pages, REST API, boot endpoints (the default).
    ///
    /// Applies pending database migrations first.
    Serve {
        /// Job workers in this process (default: `jobs.workers`, 4); 0 for
        /// an API-only replica.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Apply pending database migrations, then exit.
    ///
    /// Useful before starting several replicas against one PostgreSQL.
    Migrate,
    /// Manage accounts from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// The lab's OpenVPN server: its configuration and templates.
    #[command(subcommand)]
    Vpn(VpnCommand),
    /// The boot image store served at /images/ (kernels, initrds,
    /// squashfs files of installers).
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Check a VPN sign-in for OpenVPN's `auth-user-pass-verify`: exit
    /// status 0 accepts, 1 refuses.
    ///
    /// `via-file`: FILE holds the username and the password on two lines;
    /// `via-env`: no FILE, they come in the `username` and `password`
    /// variables. The password is never logged. Decided within
    /// `vpn.auth_timeout_seconds`, directory down or not.
    VpnAuth {
        /// The credentials file OpenVPN wrote (via-file).
        file: Option<PathBuf>,
    },
    /// OpenVPN's `client-connect` hook: records the session (user, time,
    /// address) for the VPN page. Never refuses a connection.
    VpnConnect {
        /// The file OpenVPN offers for dynamic options (unused).
        file: Option<PathBuf>,
    },
    /// OpenVPN's `client-disconnect` hook: ends the session's record.
    VpnDisconnect {
        /// Unused.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Import a folder's files as an image (atomically: an interrupted
    /// import leaves nothing under the name).
    ///
    /// Debian's netboot installer, for example, after
    /// `apt-get install debian-installer-12-netboot-amd64`:
    /// `bootler images import debian-12-amd64 --from
    /// /usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64`
    Import {
        /// The image's name: lower-case letters, digits, '.', '_', '-'.
        name: String,
        /// The folder whose files (and sub-folders) make the image.
        #[arg(long)]
        from: PathBuf,
        /// Replace an image of the same name once the new one is complete.
        #[arg(long)]
        replace: bool,
    },
    /// List the images with their sizes.
    List,
    /// An image's files with their sizes and SHA-256 checksums.
    Show { name: String },
    /// Delete an image.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum VpnCommand {
    /// Print the OpenVPN server configuration for the lab, from
    /// `vpn.server_template_file` or the built-in template, with Bootler's
    /// sign-in check and session hooks wired in.
    ServerConfig,
    /// Print the built-in server and client templates (a start for your own).
    Templates,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an active account at once (no confirmation mail), for example
    /// the first administrator.
    ///
    /// The password is read from standard input when it is not a terminal
    /// (`echo "$PASSWORD" | bootler user add …`), else asked for twice.
    Add {
        /// Login name: lower-case letters, digits, '-', '_', '.'.
        username: String,
        /// E-mail address (any domain: the allow-list applies to self-registration only).
        #[arg(long)]
        email: String,
        /// Display name. Default: the username.
        #[arg(long)]
        name: Option<String>,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
    },
}

const DEFAULT_CONFIG_FILE: &str = "bootler.toml";

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_file = cli
        .config
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()));
    let config =
        Config::load(config_file.as_deref(), std::env::vars()).context("invalid configuration")?;
    // What OpenVPN runs, and what prints a file, keep standard output clean.
    let quiet = matches!(
        cli.command,
        Some(
            Command::Vpn(_)
                | Command::VpnAuth { .. }
                | Command::VpnConnect { .. }
                | Command::VpnDisconnect { .. }
        )
    );
    init_tracing(config.log_format, quiet);
    if let Some(path) = &config_file {
        tracing::info!(file = %path.display(), "configuration loaded");
    }
    match cli.command.unwrap_or(Command::Serve { workers: None }) {
        Command::Serve { workers } => {
            let mut config = config;
            if let Some(workers) = workers {
                config.jobs.workers = workers;
            }
            crate::serve(config).await
        }
        Command::Migrate => migrate(&config).await,
        Command::User(UserCommand::Add {
            username,
            email,
            name,
            admin,
        }) => user_add(&config, username, email, name, admin).await,
        Command::Vpn(VpnCommand::ServerConfig) => {
            if !config.vpn.enabled {
                eprintln!(
                    "note: vpn.enabled is off, so `bootler vpn-auth` refuses every sign-in until it is on"
                );
            }
            let command = match &config.vpn.command {
                Some(command) => command.clone(),
                None => hook_command(config_file.as_deref())?,
            };
            // OpenVPN gives its scripts only the variables it sets.
            let environment: Vec<(String, String)> = std::env::vars()
                .filter(|(name, _)| name.starts_with("BOOTLER_") && name != "BOOTLER_CONFIG")
                .collect();
            let text = bootler_domain::vpn::server_config(
                &config.vpn,
                &config.base_url(),
                &command,
                &environment,
            )?;
            print!("{text}");
            Ok(())
        }
        Command::Vpn(VpnCommand::Templates) => {
            let (server, client) = bootler_domain::vpn::Vpn::builtin_templates();
            println!("# ---- server (vpn.server_template_file) ----\n{server}");
            println!("# ---- client profile (vpn.client_template_file) ----\n{client}");
            Ok(())
        }
        Command::Images(command) => images(&config, command),
        Command::VpnAuth { file } => crate::vpn_hooks::auth(&config, file.as_deref()).await,
        Command::VpnConnect { .. } => crate::vpn_hooks::connect(&config).await,
        Command::VpnDisconnect { .. } => crate::vpn_hooks::disconnect(&config).await,
    }
}

/// "12.3 MB".
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn images(config: &Config, command: ImagesCommand) -> anyhow::Result<()> {
    use std::io::Write;
    let store = bootler_domain::images::ImageStore::new(config.images_dir());
    match command {
        ImagesCommand::Import {
            name,
            from,
            replace,
        } => {
            let mut shown = u64::MAX;
            let image = store.import_dir(&name, &from, replace, |done, total| {
                let percent = done * 100 / total.max(1);
                if percent != shown {
                    shown = percent;
                    let bar = "#".repeat((percent / 4) as usize);
                    eprint!(
                        "\r  [{bar:<25}] {percent:>3} %  {} of {}",
                        megabytes(done),
                        megabytes(total)
                    );
                    let _ = std::io::stderr().flush();
                }
            })?;
            eprintln!();
            println!(
                "imported “{}”: {} files, {}; served at /images/{}/",
                image.name,
                image.files.len(),
                megabytes(image.size),
                image.name
            );
            Ok(())
        }
        ImagesCommand::List => {
            let images = store.list()?;
            if images.is_empty() {
                println!(
                    "no images in {} (bootler images import <name> --from <folder>)",
                    store.dir().display()
                );
            }
            for image in images {
                println!(
                    "{:<32} {:>4} files  {:>10}",
                    image.name,
                    image.files,
                    megabytes(image.size)
                );
            }
            Ok(())
        }
        ImagesCommand::Show { name } => {
            let image = store.inspect(&name)?;
            println!(
                "{}: {} files, {}",
                image.name,
                image.files.len(),
                megabytes(image.size)
            );
            for file in image.files {
                println!("  {}  {:>12}  {}", file.sha256, file.size, file.path);
            }
            Ok(())
        }
        ImagesCommand::Delete { name } => {
            store.delete(&name)?;
            println!("deleted “{name}”");
            Ok(())
        }
    }
}

/// How OpenVPN starts this program: its absolute path, and the same
/// configuration file.
fn hook_command(config_file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("where this program is")?;
    Ok(match config_file {
        Some(path) => {
            let path = std::path::absolute(path).context("the configuration file's path")?;
            format!("{} --config {}", exe.display(), path.display())
        }
        None => exe.display().to_string(),
    })
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = open_database(config).await?;
    tracing::info!(engine = db.engine(), "database is up to date");
    db.close().await;
    Ok(())
}

async fn user_add(
    config: &Config,
    username: String,
    email: String,
    name: Option<String>,
    admin: bool,
) -> anyhow::Result<()> {
    use bootler_domain::accounts::{AccountError, NewUser, Role};
    let password = read_password()?;
    let db = open_database(config).await?;
    let accounts = crate::services::accounts(config, &db)?;
    let result = accounts
        .create_user(
            NewUser {
                display_name: name.unwrap_or_else(|| username.clone()),
                username,
                email,
                password,
                role: if admin { Role::Admin } else { Role::User },
            },
            chrono::Utc::now(),
        )
        .await;
    db.close().await;
    match result {
        Ok(user) => {
            println!(
                "created {} account “{}” <{}>",
                if admin { "admin" } else { "user" },
                user.username,
                user.email
            );
            Ok(())
        }
        Err(AccountError::Invalid(errors)) => {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("  {}: {}", e.field, e.message))
                .collect();
            anyhow::bail!("the account was not created:\n{}", lines.join("\n"))
        }
        Err(err) => Err(anyhow::anyhow!("the account was not created: {err}")),
    }
}

/// The password from standard input (first line) or, on a terminal, a prompt.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == second, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        Ok(password)
    }
}

/// Connects and applies migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    let db = Db::connect(&url, config.database_max_connections)
        .await
        .with_context(|| format!("database {}", redact(&url)))?;
    db.migrate().await?;
    Ok(db)
}

/// Hides the password in a database URL for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Logs to standard output, or to standard error (`to_stderr`) for
/// commands whose output is a file or whose caller reads it.
fn init_tracing(format: LogFormat, to_stderr: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if to_stderr { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || -> Box<dyn std::io::Write> {
            if to_stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        });
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://bootler:s3cret@db:5432/bootler"),
            "postgres://bootler:***@db:5432/bootler"
        );
        assert_eq!(redact("postgres://db/bootler"), "postgres://db/bootler");
        assert_eq!(
            redact("sqlite://data/bootler.db"),
            "sqlite://data/bootler.db"
        );
    }

    #[test]
    fn user_add_parses() {
        let cli = Cli::try_parse_from([
            "bootler",
            "user",
            "add",
            "--admin",
            "ana",
            "--email",
            "ana@uminho.pt",
        ])
        .unwrap();
        match cli.command {
            Some(Command::User(UserCommand::Add {
                username,
                email,
                admin,
                name,
            })) => {
                assert_eq!(username, "ana");
                assert_eq!(email, "ana@uminho.pt");
                assert!(admin);
                assert_eq!(name, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["bootler", "user", "add", "ana"]).is_err());
    }

    #[test]
    fn cli_parses_subcommands() {
        let cli = Cli::try_parse_from(["bootler"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["bootler", "migrate", "--config", "x.toml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert!(Cli::try_parse_from(["bootler", "frobnicate"]).is_err());
    }
}
