//! The sandboxed renderer. A template sees only the context it is given:
//! no files (templates are not loaded from anywhere), no environment, no
//! configuration. Undefined names are errors (`|default(…)` still works),
//! and every render is bounded: fuel (instructions), recursion depth and
//! output size. Errors name the template, the line and the reason.

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// How much one render may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Instructions (minijinja "fuel"); a loop that never ends runs out.
    pub fuel: u64,
    /// Nesting of includes, macros and blocks.
    pub recursion: usize,
    /// Bytes of output.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 200_000,
            recursion: 50,
            output_bytes: 1024 * 1024,
        }
    }
}

/// What a template may use (thesis listings A.1–A.4 use `host.name`,
/// `host.interface`, `mac.mac_address`, `vars.*`, `base_url`, `email`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderContext {
    pub host: HostContext,
    pub mac: MacContext,
    /// The host's JSON variables.
    pub vars: serde_json::Value,
    /// Bootler's address, without a trailing slash.
    pub base_url: String,
    /// The holder's e-mail address.
    pub email: String,
    pub user: UserContext,
    /// The holder's SSH public keys, one `authorized_keys` line each.
    pub ssh_keys: Vec<String>,
    /// This host's own boot endpoints.
    pub unattended_url: String,
    pub done_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostContext {
    pub id: i64,
    pub name: String,
    /// The installer's network interface, e.g. `eth0`.
    pub interface: String,
    /// `52:54:00:12:34:56`.
    pub mac: String,
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacContext {
    /// `52-54-00-12-34-56`, as in the boot URLs.
    pub mac_address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserContext {
    pub username: String,
    pub display_name: String,
    pub email: String,
}

/// Why a template did not render, for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template “{template}”{}: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct RenderError {
    pub template: String,
    pub line: Option<usize>,
    pub reason: String,
}

/// Stops writing past the output limit.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
    exceeded: Rc<Cell<bool>>,
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders `body` (named `name` in errors) with `context` within `limits`.
/// CPU-bound and bounded by the fuel: call it from a blocking task.
pub fn render(
    name: &str,
    body: &str,
    context: &RenderContext,
    limits: Limits,
) -> Result<String, RenderError> {
    Compiled::new(name, body, limits)?.render(context)
}

/// A template compiled once and rendered any number of times, each render
/// with the whole of its limits (minijinja counts fuel per render).
pub struct Compiled {
    name: String,
    env: Environment<'static>,
    limits: Limits,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .finish()
    }
}

impl Compiled {
    /// Compiles `body`; a syntax error names the line.
    pub fn new(name: &str, body: &str, limits: Limits) -> Result<Compiled, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion);
        // iPXE scripts, preseeds and kickstarts are not HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Files end with a newline as written.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.add_template_owned(name.to_string(), body.to_string())
            .map_err(|err| RenderError {
                template: name.to_string(),
                line: err.line(),
                reason: reason(&err),
            })?;
        Ok(Compiled {
            name: name.to_string(),
            env,
            limits,
        })
    }

    /// Renders with `context`. CPU-bound and bounded by the fuel: call it
    /// from a blocking task.
    pub fn render<C: Serialize + ?Sized>(&self, context: &C) -> Result<String, RenderError> {
        let error = |err: minijinja::Error, exceeded: bool| RenderError {
            template: self.name.clone(),
            line: err.line(),
            reason: if exceeded {
                format!(
                    "the output is longer than {} bytes",
                    self.limits.output_bytes
                )
            } else {
                reason(&err)
            },
        };
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|err| error(err, false))?;
        let exceeded = Rc::new(Cell::new(false));
        let mut writer = Bounded {
            out: Vec::new(),
            limit: self.limits.output_bytes,
            exceeded: Rc::clone(&exceeded),
        };
        let value = minijinja::Value::from(minijinja::value::Serde(context));
        template
            .render_captured_to(value, &mut writer)
            .map_err(|err| error(err, exceeded.get()))?;
        String::from_utf8(writer.out).map_err(|_| RenderError {
            template: self.name.clone(),
            line: None,
            reason: "the output is not valid UTF-8".into(),
        })
    }
}

/// Whether `body` compiles (the error names the line), without rendering.
pub fn check_syntax(name: &str, body: &str) -> Result<(), RenderError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.template_from_named_str(name, body)
        .map(|_| ())
        .map_err(|err| RenderError {
            template: name.to_string(),
            line: err.line(),
            reason: reason(&err),
        })
}

/// The reason of a minijinja error in words for template authors.
fn reason(err: &minijinja::Error) -> String {
    let detail = err.detail().map(str::to_string);
    let what = match err.kind() {
        ErrorKind::OutOfFuel => {
            return "the template does too much work (a loop that never ends?)".into();
        }
        ErrorKind::UndefinedError => "undefined value",
        ErrorKind::SyntaxError => "syntax error",
        ErrorKind::TemplateNotFound => "there are no other templates to include or import here",
        _ => "",
    };
    match (what, detail) {
        ("", Some(detail)) => detail,
        ("", None) => err.kind().to_string(),
        (what, Some(detail)) => format!("{what}: {detail}"),
        (what, None) => what.to_string(),
    }
}
