//! Small reactive helpers shared by pages.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// A query-string parameter as a signal ("" when absent). The form handlers
/// send errors and typed values back this way.
pub fn query_param(key: &'static str) -> Signal<String> {
    let map = use_query_map();
    Signal::derive(move || map.read().get(key).unwrap_or_default())
}

/// A list page's link: `path` with the non-empty `params` and the page
/// number (left out for the first page).
pub fn list_href(path: &str, params: &[(&str, &str)], page: i64) -> String {
    let mut query: Vec<String> = params
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    if page > 1 {
        query.push(format!("page={page}"));
    }
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_links_keep_what_is_set_and_encode_it() {
        assert_eq!(
            list_href("/hosts", &[("state", ""), ("pool", "")], 1),
            "/hosts"
        );
        assert_eq!(
            list_href(
                "/hosts",
                &[("state", "local"), ("mac", "52:54:00:12:34:56")],
                3
            ),
            "/hosts?state=local&mac=52%3A54%3A00%3A12%3A34%3A56&page=3"
        );
        assert_eq!(
            list_href("/admin/users", &[("q", "ana silva")], 1),
            "/admin/users?q=ana%20silva"
        );
    }
}
