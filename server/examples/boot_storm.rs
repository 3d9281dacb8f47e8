//! Boot-storm load generator (run by `scripts/bench-boot.sh`): many
//! keep-alive connections, one client task each, asking for boot paths as
//! fast as the server answers, and one JSON line with what it measured.
//!
//! Paths come from `--macs N` (hosts 1..=N have the MACs
//! `52-54-00-XX-XX-XX` of their number, put into `--path-template`), from
//! `--paths-file` (one a line) or from `--path` (repeatable). Each request
//! picks a random path (a seeded xorshift, so runs repeat), except with
//! `--each-once`: every path exactly once, shuffled (the one-shot install
//! script of marked hosts).
//!
//! Every answer must have status `--expect-status` (200) and, when
//! `--expect-prefix` is not empty (`#!ipxe` by default), a body starting
//! with it; anything else counts as an error, with a few samples.
//!
//! ```text
//! cargo run --release --example boot_storm -- \
//!     --url-base http://127.0.0.1:3000 --macs 10000 --concurrency 256 --duration 20
//! ```
//!
//! The default client is a minimal HTTP/1.1 client over tokio sockets (no
//! pipelining; `Content-Length` and chunked bodies), so that on a small
//! machine the generator takes as little CPU from the server as it can;
//! `--client reqwest` uses reqwest instead (one client and connection per
//! task), to cross-check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tokio::net::TcpStream;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "boot_storm",
    about = "Boot-storm load generator for Bootler's /boot endpoints"
)]
struct Args {
    /// Where the server is, e.g. http://127.0.0.1:3000 (plain HTTP).
    #[arg(long)]
    url_base: String,
    /// Hosts 1..=N, MAC 52-54-00-XX-XX-XX of their number, put into
    /// --path-template.
    #[arg(long)]
    macs: Option<u32>,
    /// The path of host n for --macs: {mac} is its MAC (52-54-00-00-00-01),
    /// {n} its number.
    #[arg(long, default_value = "/boot/{mac}?hostname=node-{n}")]
    path_template: String,
    /// A file of paths, one a line.
    #[arg(long)]
    paths_file: Option<std::path::PathBuf>,
    /// A path (repeatable).
    #[arg(long)]
    path: Vec<String>,
    /// Connections, each with its own client task.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Seconds measured (after --warmup), unless --requests or --each-once.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of load before measuring starts (--duration only).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Stop after this many requests (all measured; no warm-up).
    #[arg(long)]
    requests: Option<usize>,
    /// Every path exactly once, in a shuffled order (all measured).
    #[arg(long)]
    each_once: bool,
    /// The status every answer must have.
    #[arg(long, default_value_t = 200)]
    expect_status: u16,
    /// The text every body must start with; empty: not checked.
    #[arg(long, default_value = "#!ipxe")]
    expect_prefix: String,
    /// Seed of the random path choice and the shuffle.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Runtime threads of the generator (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// `raw` (a minimal HTTP/1.1 client) or `reqwest`.
    #[arg(long, default_value = "raw")]
    client: String,
    /// Copied into the JSON line, to tell runs apart.
    #[arg(long, default_value = "")]
    label: String,
}

/// xorshift64*: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Never zero, and seeds 1, 2, 3… far apart.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in 0..n (n > 0); the bias is negligible for our n.
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) % n as u64) as usize
    }
}

/// `52-54-00-XX-XX-XX` of host number `n`.
fn mac_of(n: u32) -> String {
    format!(
        "52-54-00-{:02x}-{:02x}-{:02x}",
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

fn paths(args: &Args) -> anyhow::Result<Vec<String>> {
    let mut paths = args.path.clone();
    if let Some(n) = args.macs {
        if n > 0x00ff_ffff {
            bail!("--macs: at most 16777215 hosts");
        }
        paths.extend((1..=n).map(|i| {
            args.path_template
                .replace("{mac}", &mac_of(i))
                .replace("{n}", &i.to_string())
        }));
    }
    if let Some(file) = &args.paths_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        paths.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if paths.is_empty() {
        bail!("no paths: give --macs, --paths-file or --path");
    }
    if let Some(bad) = paths.iter().find(|p| !p.starts_with('/')) {
        bail!("a path must start with '/': {bad}");
    }
    Ok(paths)
}

/// `http://host:port[/prefix]` → (address, Host header, prefix).
async fn target(url_base: &str) -> anyhow::Result<(SocketAddr, String, String)> {
    let rest = url_base
        .strip_prefix("http://")
        .context("--url-base must start with http:// (no TLS here)")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
        None => (rest, String::new()),
    };
    let with_port = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("cannot resolve {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} has no address"))?;
    Ok((addr, authority.to_string(), prefix))
}

/// One answer: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection (reconnects after an error or a
/// `Connection: close`).
struct RawConn {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    /// Bytes read but not used yet.
    buf: Vec<u8>,
    request: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body complete in `data`: (body, bytes used); `Ok(None)` if
/// more is needed.
fn dechunk(data: &[u8]) -> anyhow::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find(&data[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[at..at + eol])?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            let Some(end) = find(&data[at..], b"\r\n") else {
                return Ok(None);
            };
            if end == 0 {
                return Ok(Some((body, at + 2)));
            }
            let Some(end) = find(&data[at..], b"\r\n\r\n") else {
                return Ok(None);
            };
            return Ok(Some((body, at + end + 4)));
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[at..at + size]);
        at += size + 2;
    }
}

impl RawConn {
    fn new(addr: SocketAddr, host: String) -> RawConn {
        RawConn {
            addr,
            host,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
            request: Vec::with_capacity(512),
        }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        Ok(())
    }

    /// Reads more bytes into `buf`; an error at the end of the stream.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let stream = self.stream.as_ref().context("not connected")?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut chunk) {
                Ok(0) => bail!("the server closed the connection"),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        let result = self.exchange(path).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.connect().await?;
        self.request.clear();
        self.request.extend_from_slice(b"GET ");
        self.request.extend_from_slice(path.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.request.extend_from_slice(self.host.as_bytes());
        self.request
            .extend_from_slice(b"\r\nUser-Agent: boot_storm\r\nAccept: */*\r\n\r\n");
        {
            let stream = self.stream.as_ref().context("not connected")?;
            let mut data: &[u8] = &self.request;
            while !data.is_empty() {
                stream.writable().await?;
                match stream.try_write(data) {
                    Ok(n) => data = &data[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("header not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = version == "HTTP/1.0";
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let start = head_end + 4;
        let body = if chunked {
            loop {
                if let Some((body, used)) = dechunk(&self.buf[start..])? {
                    self.buf.drain(..start + used);
                    break body;
                }
                self.fill().await?;
            }
        } else if let Some(length) = length {
            while self.buf.len() < start + length {
                self.fill().await?;
            }
            let body = self.buf[start..start + length].to_vec();
            self.buf.drain(..start + length);
            body
        } else {
            // Until the end of the stream.
            loop {
                if self.fill().await.is_err() {
                    break;
                }
            }
            let body = self.buf[start.min(self.buf.len())..].to_vec();
            self.buf.clear();
            close = true;
            body
        };
        if close {
            self.stream = None;
        }
        Ok(Answer { status, body })
    }
}

enum Client {
    Raw(RawConn),
    Reqwest {
        client: reqwest::Client,
        base: String,
    },
}

impl Client {
    async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        match self {
            Client::Raw(conn) => conn.get(path).await,
            Client::Reqwest { client, base } => {
                let response = client.get(format!("{base}{path}")).send().await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?.to_vec();
                Ok(Answer { status, body })
            }
        }
    }

    async fn warm(&mut self) -> anyhow::Result<()> {
        match self {
            Client::Raw(conn) => conn.connect().await,
            // reqwest connects lazily (a first request would change state
            // on the server): its connection setup falls into the warm-up.
            Client::Reqwest { .. } => Ok(()),
        }
    }
}

/// How the run ends.
#[derive(Clone, Copy)]
enum Mode {
    /// Measure requests that end in [warm_end, end].
    Timed { warm_end: Instant, end: Instant },
    /// A shared budget of requests, all measured.
    Count(usize),
    /// Every path once.
    EachOnce,
}

#[derive(Default)]
struct TaskResult {
    /// Requests that got an answer or failed, warm-up included.
    sent: usize,
    /// Microseconds of each measured request.
    latencies: Vec<u32>,
    errors: usize,
    non_2xx: usize,
    wrong_status: usize,
    bad_body: usize,
    io_errors: usize,
    body_bytes: u64,
    statuses: std::collections::BTreeMap<u16, usize>,
    last_done: Option<Instant>,
}

struct Shared {
    paths: Vec<String>,
    /// For --each-once: the shuffled order.
    order: Vec<usize>,
    next: AtomicUsize,
    samples: Mutex<Vec<String>>,
    expect_status: u16,
    expect_prefix: Vec<u8>,
    timeout: Duration,
}

impl Shared {
    fn sample(&self, text: String) {
        if let Ok(mut samples) = self.samples.lock()
            && samples.len() < 5
        {
            samples.push(text);
        }
    }
}

async fn client_task(
    mut client: Client,
    shared: Arc<Shared>,
    connected: Arc<tokio::sync::Barrier>,
    mut start: tokio::sync::watch::Receiver<Option<Mode>>,
    task: usize,
    seed: u64,
) -> TaskResult {
    let mut rng = Rng::new(seed.wrapping_add(task as u64 + 1));
    let mut result = TaskResult::default();
    if let Err(err) = client.warm().await {
        shared.sample(format!("connect: {err:#}"));
        result.io_errors += 1;
        result.errors += 1;
    }
    connected.wait().await;
    let mode = match start.wait_for(Option::is_some).await {
        Ok(mode) => mode.unwrap_or(Mode::Count(0)),
        Err(_) => return result,
    };
    loop {
        let path = match mode {
            Mode::Timed { end, .. } => {
                if Instant::now() >= end {
                    break;
                }
                &shared.paths[rng.below(shared.paths.len())]
            }
            Mode::Count(n) => {
                if shared.next.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
                &shared.paths[rng.below(shared.paths.len())]
            }
            Mode::EachOnce => {
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                let Some(&p) = shared.order.get(i) else {
                    break;
                };
                &shared.paths[p]
            }
        };
        let began = Instant::now();
        let answer = tokio::time::timeout(shared.timeout, client.get(path)).await;
        let done = Instant::now();
        result.sent += 1;
        let measured = match mode {
            Mode::Timed { warm_end, end } => done >= warm_end && done <= end,
            _ => true,
        };
        if !measured {
            continue;
        }
        result.last_done = Some(done);
        let micros = u32::try_from(done.duration_since(began).as_micros()).unwrap_or(u32::MAX);
        result.latencies.push(micros);
        match answer {
            Err(_) => {
                result.errors += 1;
                result.io_errors += 1;
                shared.sample(format!("{path}: no answer within {:?}", shared.timeout));
                // The connection may be stuck mid-answer: start afresh.
                if let Client::Raw(conn) = &mut client {
                    conn.stream = None;
                }
            }
            Ok(Err(err)) => {
                result.errors += 1;
                result.io_errors += 1;
                shared.sample(format!("{path}: {err:#}"));
            }
            Ok(Ok(answer)) => {
                *result.statuses.entry(answer.status).or_default() += 1;
                result.body_bytes += answer.body.len() as u64;
                let mut bad = false;
                if !(200..300).contains(&answer.status) {
                    result.non_2xx += 1;
                    bad = true;
                }
                if answer.status != shared.expect_status {
                    result.wrong_status += 1;
                    bad = true;
                } else if !answer.body.starts_with(&shared.expect_prefix) {
                    result.bad_body += 1;
                    bad = true;
                }
                if bad {
                    result.errors += 1;
                    let text = String::from_utf8_lossy(&answer.body);
                    let text: String = text.chars().take(160).collect();
                    shared.sample(format!("{path}: {} {text:?}", answer.status));
                }
            }
        }
    }
    result
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    let paths = paths(&args)?;
    let (addr, host, prefix) = target(&args.url_base).await?;
    let paths: Vec<String> = paths.into_iter().map(|p| format!("{prefix}{p}")).collect();
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let mut rng = Rng::new(args.seed);
    let mut order: Vec<usize> = Vec::new();
    if args.each_once {
        order = (0..paths.len()).collect();
        // Fisher–Yates.
        for i in (1..order.len()).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
    }
    let shared = Arc::new(Shared {
        paths,
        order,
        next: AtomicUsize::new(0),
        samples: Mutex::new(Vec::new()),
        expect_status: args.expect_status,
        expect_prefix: args.expect_prefix.clone().into_bytes(),
        timeout: Duration::from_secs_f64(args.timeout),
    });
    // Every task opens its connection; the clock starts once all are open.
    let connected = Arc::new(tokio::sync::Barrier::new(args.concurrency + 1));
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Mode>);
    let mut tasks = Vec::with_capacity(args.concurrency);
    for task in 0..args.concurrency {
        let client = match args.client.as_str() {
            "raw" => Client::Raw(RawConn::new(addr, host.clone())),
            "reqwest" => Client::Reqwest {
                client: reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .timeout(Duration::from_secs_f64(args.timeout))
                    .build()?,
                base: args.url_base.trim_end_matches('/').to_string(),
            },
            other => bail!("--client: raw or reqwest, not {other}"),
        };
        tasks.push(tokio::spawn(client_task(
            client,
            shared.clone(),
            connected.clone(),
            start_rx.clone(),
            task,
            args.seed,
        )));
    }
    connected.wait().await;
    let began = Instant::now();
    let warmup = if args.requests.is_none() && !args.each_once {
        args.warmup
    } else {
        0.0
    };
    let mode = if args.each_once {
        Mode::EachOnce
    } else if let Some(n) = args.requests {
        Mode::Count(n)
    } else {
        let warm_end = began + Duration::from_secs_f64(warmup);
        Mode::Timed {
            warm_end,
            end: warm_end + Duration::from_secs_f64(args.duration),
        }
    };
    start_tx.send_replace(Some(mode));
    let mut total = TaskResult::default();
    for task in tasks {
        let r = task.await?;
        total.sent += r.sent;
        total.latencies.extend(r.latencies);
        total.errors += r.errors;
        total.non_2xx += r.non_2xx;
        total.wrong_status += r.wrong_status;
        total.bad_body += r.bad_body;
        total.io_errors += r.io_errors;
        total.body_bytes += r.body_bytes;
        for (status, n) in r.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.last_done = total.last_done.max(r.last_done);
    }
    let seconds = match mode {
        Mode::Timed { .. } => args.duration,
        _ => total
            .last_done
            .map(|t| t.duration_since(began).as_secs_f64())
            .unwrap_or(0.0),
    };
    total.latencies.sort_unstable();
    let requests = total.latencies.len();
    let answered: usize = total.statuses.values().sum();
    let samples = shared.samples.lock().map(|s| s.clone()).unwrap_or_default();
    let statuses: serde_json::Map<String, serde_json::Value> = total
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    Ok(json!({
        "label": args.label,
        "url_base": args.url_base,
        "mode": match mode {
            Mode::Timed { .. } => "duration",
            Mode::Count(_) => "requests",
            Mode::EachOnce => "each_once",
        },
        "client": args.client,
        "concurrency": args.concurrency,
        "paths": shared.paths.len(),
        "requests": requests,
        "sent": total.sent,
        "errors": total.errors,
        "non_2xx": total.non_2xx,
        "wrong_status": total.wrong_status,
        "bad_body": total.bad_body,
        "io_errors": total.io_errors,
        "statuses": statuses,
        "error_sample": samples,
        "warmup_seconds": warmup,
        "seconds": round(seconds, 3),
        "rps": if seconds > 0.0 { round(requests as f64 / seconds, 1) } else { 0.0 },
        "p50_ms": round(percentile(&total.latencies, 50.0), 3),
        "p90_ms": round(percentile(&total.latencies, 90.0), 3),
        "p99_ms": round(percentile(&total.latencies, 99.0), 3),
        "max_ms": round(percentile(&total.latencies, 100.0), 3),
        "bytes_per_response": if answered > 0 {
            round(total.body_bytes as f64 / answered as f64, 1)
        } else {
            0.0
        },
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let line = runtime.block_on(run(args))?;
    println!("{line}");
    Ok(())
}
