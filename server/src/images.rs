//! `GET /images/{name}/{file}`: the boot image store, for nodes (no
//! authentication, like the boot endpoints, and limited to the same
//! provisioning networks). Files are streamed from disk in 64 KiB pieces,
//! so many nodes fetching a large squashfs at once do not grow memory;
//! `Range` (one range), `If-Range`, `ETag`/`If-None-Match` and
//! `Last-Modified`/`If-Modified-Since` work as HTTP says; `HEAD` answers
//! the headers alone.

use std::io::SeekFrom;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::state::AppState;

/// Bytes read from disk at a time.
const PIECE: usize = 64 * 1024;

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// What a `Range` header asks for, against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// `start..=end`.
    Part(u64, u64),
    Unsatisfiable,
}

fn wanted(range: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    // Several ranges: the whole file is a valid answer.
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let part = if first.is_empty() {
        // The last `n` bytes.
        match last.parse::<u64>() {
            Ok(0) | Err(_) => return Wanted::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
        }
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Wanted::Whole;
        };
        let end = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            match last.parse::<u64>() {
                Ok(end) if end >= start => end.min(len.saturating_sub(1)),
                _ => return Wanted::Whole,
            }
        };
        (start, end)
    };
    if len == 0 || part.0 >= len {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(part.0, part.1)
    }
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn serve(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    method: Method,
    Path((name, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(path) = state.images.file(&name, &file) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("There is no file “{file}” in image “{name}”.\n"),
        );
    };
    let opened = async {
        let file = tokio::fs::File::open(&path).await?;
        let meta = file.metadata().await?;
        std::io::Result::Ok((file, meta))
    }
    .await;
    let (mut handle, meta) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read an image file");
            return plain(
                StatusCode::NOT_FOUND,
                format!("The file “{file}” of image “{name}” cannot be read.\n"),
            );
        }
    };
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let stamp = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!("\"{len:x}-{stamp:x}\"");
    let last_modified = httpdate::fmt_http_date(modified);
    let mut answer = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            answer.insert(name, value);
        }
    };
    set(header::ETAG, &etag);
    set(header::LAST_MODIFIED, &last_modified);
    set(header::ACCEPT_RANGES, "bytes");
    // Images may be replaced under the same name: caches ask again.
    set(header::CACHE_CONTROL, "no-cache");

    let unchanged = match header(&headers, header::IF_NONE_MATCH) {
        Some(tags) => tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        None => header(&headers, header::IF_MODIFIED_SINCE)
            .and_then(|since| httpdate::parse_http_date(since).ok())
            .is_some_and(|since| {
                // HTTP dates have whole seconds.
                modified
                    .duration_since(since)
                    .map_or(true, |newer| newer.as_secs() == 0)
            }),
    };
    if unchanged {
        return (StatusCode::NOT_MODIFIED, answer).into_response();
    }
    // `If-Range` with another version: the whole (new) file.
    let range = match header(&headers, header::IF_RANGE) {
        Some(tag) if tag.trim() != etag && tag.trim() != last_modified => None,
        _ => header(&headers, header::RANGE),
    };
    let (status, start, length) = match wanted(range, len) {
        Wanted::Whole => (StatusCode::OK, 0, len),
        Wanted::Part(start, end) => {
            set(header::CONTENT_RANGE, &format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Wanted::Unsatisfiable => {
            set(header::CONTENT_RANGE, &format!("bytes */{len}"));
            return (StatusCode::RANGE_NOT_SATISFIABLE, answer).into_response();
        }
    };
    if start > 0
        && let Err(err) = handle.seek(SeekFrom::Start(start)).await
    {
        tracing::warn!(path = %path.display(), error = %err, "cannot seek in an image file");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The file could not be read.\n".into(),
        );
    }
    set(header::CONTENT_TYPE, "application/octet-stream");
    set(header::CONTENT_LENGTH, &length.to_string());
    if method == Method::GET {
        // A step of the install of the node at this address, if one runs.
        let what = if status == StatusCode::PARTIAL_CONTENT {
            format!("bytes {start}-{} of ", start + length - 1)
        } else {
            String::new()
        };
        let detail = format!(
            "served {what}/images/{name}/{file} ({:.1} MB)",
            len as f64 / 1e6
        );
        if let Err(err) = state
            .hosts
            .image_served(peer.ip(), &detail, chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %err, "could not note an image download on a host's timeline");
        }
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(handle.take(length), PIECE);
    (status, answer, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::{Wanted, wanted};

    #[test]
    fn ranges() {
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-9"), 100), Wanted::Part(0, 9));
        assert_eq!(wanted(Some("bytes=90-"), 100), Wanted::Part(90, 99));
        assert_eq!(wanted(Some("bytes=90-1000"), 100), Wanted::Part(90, 99));
        assert_eq!(wanted(Some("bytes=-10"), 100), Wanted::Part(90, 99));
        assert_eq!(wanted(Some("bytes=-1000"), 100), Wanted::Part(0, 99));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-0"), 0), Wanted::Unsatisfiable);
        // Not understood, or several: the whole file.
        assert_eq!(wanted(Some("bytes=9-0"), 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-1,5-6"), 100), Wanted::Whole);
        assert_eq!(wanted(Some("lines=1-2"), 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=x-2"), 100), Wanted::Whole);
    }
}
