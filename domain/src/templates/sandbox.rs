//! Where templates run. Fuel, recursion and output limits bound what the
//! renderer counts, but not memory: `{{ s ~ s }}` in a macro that calls
//! itself 40 times asks for a terabyte in 40 steps. So the server renders
//! in worker processes (`bootler render-worker`), each limited in address
//! space, and stops a render that runs too long. A worker that dies or
//! stops is replaced; the template gets an error that says why.
//!
//! Protocol: one JSON request per line on the worker's stdin, one JSON
//! answer per line on its stdout.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, Semaphore};

use super::render::{Compiled, Limits, RenderContext, RenderError};

/// The argument that makes `bootler` a render worker.
pub const WORKER_ARG: &str = "render-worker";

/// How a worker is limited.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// Address space of a worker process.
    pub memory_bytes: u64,
    /// Wall-clock time of one render.
    pub time: Duration,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            memory_bytes: 512 * 1024 * 1024,
            time: Duration::from_secs(3),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Request {
    name: String,
    body: String,
    context: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    #[serde(rename = "output")]
    Output(String),
    #[serde(rename = "error")]
    Error { line: Option<usize>, reason: String },
}

/// Renders templates: in worker processes (the server), or in this
/// process (tests of trusted templates).
#[derive(Clone)]
pub struct Sandbox {
    workers: Option<Arc<Pool>>,
}

struct Pool {
    program: PathBuf,
    limits: WorkerLimits,
    idle: Mutex<Vec<Worker>>,
    permits: Semaphore,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Why the sandbox could not render at all (Bootler's problem, not the
/// template's).
#[derive(Debug, thiserror::Error)]
#[error("templates cannot be rendered right now: {0}")]
pub struct Unavailable(String);

impl Sandbox {
    /// Renders in this process, on a blocking thread: for tests, and for
    /// templates that are trusted.
    pub fn in_process() -> Sandbox {
        Sandbox { workers: None }
    }

    /// Renders in up to `workers` processes of `program` (which runs
    /// [`serve_worker`] when given [`WORKER_ARG`]), started on demand.
    pub fn workers(program: PathBuf, workers: usize, limits: WorkerLimits) -> Sandbox {
        Sandbox {
            workers: Some(Arc::new(Pool {
                program,
                limits,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(workers.max(1)),
            })),
        }
    }

    /// Renders `body` (named `name`) with `context`. The outer error is
    /// Bootler's; the inner one the template's.
    pub async fn render(
        &self,
        name: &str,
        body: &str,
        context: &RenderContext,
    ) -> Result<Result<String, RenderError>, Unavailable> {
        let Some(pool) = &self.workers else {
            let (name, body, context) = (name.to_string(), body.to_string(), context.clone());
            return tokio::task::spawn_blocking(move || {
                Compiled::new(&name, &body, Limits::default())?.render(&context)
            })
            .await
            .map_err(|err| Unavailable(format!("the render stopped: {err}")));
        };
        let request = Request {
            name: name.to_string(),
            body: body.to_string(),
            context: serde_json::to_value(context)
                .map_err(|err| Unavailable(format!("the context does not serialize: {err}")))?,
        };
        let mut line = serde_json::to_string(&request)
            .map_err(|err| Unavailable(format!("the request does not serialize: {err}")))?;
        line.push('\n');
        pool.render(name, &line).await
    }
}

impl Pool {
    async fn render(
        &self,
        name: &str,
        line: &str,
    ) -> Result<Result<String, RenderError>, Unavailable> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Unavailable("the sandbox is closed".into()))?;
        let idle = self.idle.lock().await.pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => self.spawn()?,
        };
        let exchange = async {
            worker.stdin.write_all(line.as_bytes()).await?;
            worker.stdin.flush().await?;
            let mut answer = String::new();
            worker.stdout.read_line(&mut answer).await?;
            Ok::<String, std::io::Error>(answer)
        };
        let template_error = |reason: String| RenderError {
            template: name.to_string(),
            line: None,
            reason,
        };
        let answer = match tokio::time::timeout(self.limits.time, exchange).await {
            Err(_) => {
                // Dropping the worker kills it.
                return Ok(Err(template_error(format!(
                    "the template ran longer than {} s",
                    self.limits.time.as_secs_f64()
                ))));
            }
            Ok(Err(err)) => {
                let status = worker.child.try_wait().ok().flatten();
                tracing::warn!(error = %err, ?status, "a render worker failed");
                return Ok(Err(template_error(format!(
                    "the template needs more memory than templates may use ({} MiB)",
                    self.limits.memory_bytes / (1024 * 1024)
                ))));
            }
            Ok(Ok(answer)) if answer.is_empty() => {
                // The worker died: out of memory (it aborts), or killed.
                let status = worker.child.wait().await.ok();
                tracing::info!(
                    ?status,
                    template = name,
                    "a render worker ended during a render"
                );
                return Ok(Err(template_error(format!(
                    "the template needs more memory than templates may use ({} MiB)",
                    self.limits.memory_bytes / (1024 * 1024)
                ))));
            }
            Ok(Ok(answer)) => answer,
        };
        let answer: Answer = serde_json::from_str(&answer)
            .map_err(|err| Unavailable(format!("a render worker answered nonsense: {err}")))?;
        self.idle.lock().await.push(worker);
        Ok(match answer {
            Answer::Output(text) => Ok(text),
            Answer::Error { line, reason } => Err(RenderError {
                template: name.to_string(),
                line,
                reason,
            }),
        })
    }

    fn spawn(&self) -> Result<Worker, Unavailable> {
        let mut child = Command::new(&self.program)
            .arg(WORKER_ARG)
            .arg(self.limits.memory_bytes.to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                Unavailable(format!(
                    "cannot start a render worker ({}): {err}",
                    self.program.display()
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Unavailable("a render worker has no pipes".into()));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

/// The worker's side: limits its own address space to `memory_bytes`,
/// then answers requests from stdin until it closes.
pub fn serve_worker(memory_bytes: u64) -> std::io::Result<()> {
    limit_memory(memory_bytes)?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = line?;
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(request) => match Compiled::new(&request.name, &request.body, Limits::default())
                .and_then(|template| template.render(&request.context))
            {
                Ok(text) => Answer::Output(text),
                Err(err) => Answer::Error {
                    line: err.line,
                    reason: err.reason,
                },
            },
            Err(err) => Answer::Error {
                line: None,
                reason: format!("the request was not understood: {err}"),
            },
        };
        let mut text = serde_json::to_string(&answer).map_err(std::io::Error::other)?;
        text.push('\n');
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}

fn limit_memory(bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let done = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
