//! Small reactive helpers shared by pages.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// A query-string parameter as a signal ("" when absent). The form handlers
/// send errors and typed values back this way.
pub fn query_param(key: &'static str) -> Signal<String> {
    let map = use_query_map();
    Signal::derive(move || map.read().get(key).unwrap_or_default())
}
