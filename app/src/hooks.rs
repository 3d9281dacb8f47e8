//! Small reactive helpers shared by pages.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// A query-string parameter as a signal ("" when absent). The form handlers
/// send errors and typed values back this way.
pub fn query_param(key: &'static str) -> Signal<String> {
    let map = use_query_map();
    Signal::derive(move || map.read().get(key).unwrap_or_default())
}

/// Percent-encodes a query-string value ('/' may stay: RFC 3986 allows it
/// in a query, and `?next=/hosts/3` reads better).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
