//! Toasts: short notifications in a corner. "Work sent" appears the moment
//! a form is sent; the server's "done" or "failed" arrives over the
//! WebSocket (see `live`). Announced to screen readers (`aria-live`).

use leptos::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Success,
    Error,
}

impl Level {
    fn class(self) -> &'static str {
        match self {
            Level::Info => "toast toast-info",
            Level::Success => "toast toast-success",
            Level::Error => "toast toast-error",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Toast {
    pub id: u64,
    pub level: Level,
    pub text: String,
}

/// The page's toasts (provided by `App`).
#[derive(Clone, Copy)]
pub struct Toasts {
    list: RwSignal<Vec<Toast>>,
    next: StoredValue<u64>,
}

impl Toasts {
    pub fn new() -> Toasts {
        Toasts {
            list: RwSignal::new(Vec::new()),
            next: StoredValue::new(1),
        }
    }

    /// Shows a toast; it goes away by itself after a while (errors stay
    /// longer) or when dismissed. Returns its id, for [`Toasts::replace`].
    pub fn push(&self, level: Level, text: impl Into<String>) -> u64 {
        let id = self.next.get_value();
        self.next.set_value(id + 1);
        self.list.update(|list| {
            list.push(Toast {
                id,
                level,
                text: text.into(),
            });
            // A burst of events must not fill the screen.
            if list.len() > 5 {
                list.remove(0);
            }
        });
        self.expire(id, level);
        id
    }

    /// Changes a toast in place ("sending…" → "sent").
    pub fn replace(&self, id: u64, level: Level, text: impl Into<String>) {
        let text = text.into();
        let mut found = false;
        self.list.update(|list| {
            if let Some(toast) = list.iter_mut().find(|t| t.id == id) {
                toast.level = level;
                toast.text = text.clone();
                found = true;
            }
        });
        if found {
            self.expire(id, level);
        } else {
            self.push(level, text);
        }
    }

    pub fn dismiss(&self, id: u64) {
        self.list.update(|list| list.retain(|t| t.id != id));
    }

    fn expire(&self, id: u64, level: Level) {
        let toasts = *self;
        let after = match level {
            Level::Error => std::time::Duration::from_secs(20),
            _ => std::time::Duration::from_secs(10),
        };
        set_timeout(move || toasts.dismiss(id), after);
    }
}

impl Default for Toasts {
    fn default() -> Self {
        Toasts::new()
    }
}

pub fn use_toasts() -> Toasts {
    use_context::<Toasts>().unwrap_or_default()
}

/// Where toasts appear.
#[component]
pub fn Toaster() -> impl IntoView {
    let toasts = use_toasts();
    let live = crate::live::use_live();
    view! {
        <div
            class="toasts"
            role="region"
            aria-label="Notifications"
            aria-live="polite"
            // Whether live notifications are connected (for tests and the curious).
            data-live=move || live.connected.get().to_string()
        >
            <For each=move || toasts.list.get() key=|t| (t.id, t.text.clone()) let:toast>
                <div class=toast.level.class() role="status" data-level=format!("{:?}", toast.level).to_lowercase()>
                    <span class="toast-text">{toast.text.clone()}</span>
                    <button
                        type="button"
                        class="toast-close"
                        aria-label="Dismiss"
                        on:click=move |_| toasts.dismiss(toast.id)
                    >
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}
