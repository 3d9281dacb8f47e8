//! `/images/{name}/{file}`: the boot image store over HTTP. Whole files,
//! ranges, validators and `HEAD`; what is refused (paths out of the
//! image, callers outside the provisioning networks); and memory that
//! stays flat while 8 clients fetch a 300 MB file at once.

use std::time::{Duration, Instant};

use bootler_domain::images::ImageStore;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    LAST_MODIFIED, RANGE,
};

use crate::support::app::TestApp;
use crate::support::process::{Process, command};

/// A server whose store has image `deb` (linux: 0..=255 repeated).
async fn app_with_image(adjust: impl FnOnce(&mut bootler_domain::Config)) -> (TestApp, Vec<u8>) {
    let source = tempfile::tempdir().unwrap();
    let kernel: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(source.path().join("linux"), &kernel).unwrap();
    std::fs::write(source.path().join("initrd.gz"), b"initrd").unwrap();
    let app = TestApp::start_with(None, adjust).await;
    ImageStore::new(app.config.images_dir())
        .import_dir("deb", source.path(), false, |_, _| {})
        .unwrap();
    (app, kernel)
}

#[tokio::test]
async fn files_ranges_and_validators() {
    let (app, kernel) = app_with_image(|_| {}).await;
    let url = format!("{}/images/deb/linux", app.url);
    let whole = app.client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[CONTENT_LENGTH], "10000");
    assert_eq!(whole.headers()[ACCEPT_RANGES], "bytes");
    let etag = whole.headers()[ETAG].to_str().unwrap().to_string();
    let modified = whole.headers()[LAST_MODIFIED].to_str().unwrap().to_string();
    assert_eq!(whole.bytes().await.unwrap().as_ref(), kernel.as_slice());

    // HEAD: the headers alone.
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[CONTENT_LENGTH], "10000");
    assert!(head.bytes().await.unwrap().is_empty());

    for (range, status, content_range, bytes) in [
        (
            "bytes=0-9",
            206,
            Some("bytes 0-9/10000"),
            Some(&kernel[0..10]),
        ),
        (
            "bytes=9990-",
            206,
            Some("bytes 9990-9999/10000"),
            Some(&kernel[9990..]),
        ),
        (
            "bytes=-4",
            206,
            Some("bytes 9996-9999/10000"),
            Some(&kernel[9996..]),
        ),
        (
            "bytes=300-20000",
            206,
            Some("bytes 300-9999/10000"),
            Some(&kernel[300..]),
        ),
        ("bytes=10000-", 416, Some("bytes */10000"), None),
        ("bytes=0-1,4-5", 200, None, Some(&kernel[..])),
    ] {
        let res = app
            .client
            .get(&url)
            .header(RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{range}");
        assert_eq!(
            res.headers()
                .get(CONTENT_RANGE)
                .map(|v| v.to_str().unwrap()),
            content_range,
            "{range}"
        );
        if let Some(bytes) = bytes {
            assert_eq!(
                res.headers()[CONTENT_LENGTH],
                bytes.len().to_string().as_str()
            );
            assert_eq!(res.bytes().await.unwrap().as_ref(), bytes, "{range}");
        }
    }
    // A download resumed against the same version gets the rest; against
    // another version, the whole file.
    let resumed = app
        .client
        .get(&url)
        .header(RANGE, "bytes=5000-")
        .header(IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::PARTIAL_CONTENT);
    let stale = app
        .client
        .get(&url)
        .header(RANGE, "bytes=5000-")
        .header(IF_RANGE, "\"another-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.bytes().await.unwrap().len(), 10_000);

    // Unchanged: 304 without a body.
    let cached = app
        .client
        .get(&url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let cached = app
        .client
        .get(&url)
        .header(IF_MODIFIED_SINCE, &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let changed = app
        .client
        .get(&url)
        .header(IF_NONE_MATCH, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn paths_out_of_the_image_are_not_found() {
    let (app, _) = app_with_image(|_| {}).await;
    let store = app.config.images_dir();
    std::fs::write(store.join("outside"), b"not for nodes").unwrap();
    std::os::unix::fs::symlink(store.join("outside"), store.join("deb/escape")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", store.join("deb/passwd")).unwrap();
    for path in [
        "/images/deb/../outside",
        "/images/deb/%2e%2e/outside",
        "/images/deb/%2e%2e%2foutside",
        "/images/deb/..%2F..%2Fetc%2Fpasswd",
        "/images/deb/escape",
        "/images/deb/passwd",
        "/images/deb/.bootler-sha256",
        "/images/deb//etc/passwd",
        "/images/deb/missing",
        "/images/nope/linux",
        "/images/..%2Fimages%2Fdeb/linux",
    ] {
        // Sent as written (reqwest would normalize `..`).
        let mut stream = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://"))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status: u16 = answer[9..12].parse().unwrap();
        assert!(
            status == 404 || status == 400,
            "{path}: {}",
            answer.lines().next().unwrap_or_default()
        );
        assert!(
            !answer.contains("not for nodes") && !answer.contains("root:"),
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn only_provisioning_networks_fetch_images() {
    let (app, _) = app_with_image(|config| {
        config.boot.allowed_networks = vec!["10.10.0.0/16".into()];
    })
    .await;
    let res = app
        .client
        .get(format!("{}/images/deb/linux", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn eight_downloads_of_a_large_file_keep_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("clonezilla");
    std::fs::create_dir_all(&source).unwrap();
    // 300 MB that are not all alike (so nothing could compress them away).
    let mut piece = vec![0u8; 1 << 20];
    for (i, b) in piece.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    {
        use std::io::Write;
        let mut file = std::fs::File::create(source.join("filesystem.squashfs")).unwrap();
        for _ in 0..300 {
            file.write_all(&piece).unwrap();
        }
    }
    let env = vec![(
        "BOOTLER_DATA_DIR",
        dir.path().join("data").display().to_string(),
    )];
    let out = command(dir.path(), &env)
        .args(["images", "import", "clonezilla", "--from"])
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&source).unwrap();
    let server = Process::serve(dir.path(), &env, &[]).await;
    let pid = server.pid();
    let url = format!("{}/images/clonezilla/filesystem.squashfs", server.url);
    let client = reqwest::Client::new();
    // Warm: one small request, so the baseline includes the runtime.
    let _ = client
        .get(&url)
        .header(RANGE, "bytes=0-0")
        .send()
        .await
        .unwrap();
    let before = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let start = Instant::now();
    let downloads: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let res = client.get(&url).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                let mut stream = res.bytes_stream();
                let mut total = 0u64;
                while let Some(chunk) = stream.next().await {
                    total += chunk.unwrap().len() as u64;
                    // A slow client: the server must not buffer for it.
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
                total
            })
        })
        .collect();
    for download in downloads {
        assert_eq!(download.await.unwrap(), 300 << 20);
    }
    sampler.abort();
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    eprintln!(
        "8 × 300 MiB in {:?}; server RSS {} MiB before, grew by at most {} MiB",
        start.elapsed(),
        before / 1024,
        grew / 1024
    );
    // 8 streams of 64 KiB pieces, plus the socket buffers: a few MiB. A
    // server that read whole files would grow by 2.4 GB.
    assert!(grew < 48 * 1024, "the server grew by {} MiB", grew / 1024);
    server.stop();
}
