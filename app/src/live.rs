//! Live events from `/ws` while someone is signed in: job notifications as
//! toasts, and a signal pages watch to refresh what they show.
//!
//! The browser reconnects with backoff (0.5 s, 1 s, 2 s, … at most 30 s)
//! and asks for what it missed (`?after=<last id>`); the server closes with
//! 4001 when the session ended, and then the page stops trying.

use leptos::prelude::*;
use serde::Deserialize;

/// A job event as the server sends it (`event.data` of kind `job`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct JobEvent {
    pub id: i64,
    #[serde(default)]
    pub kind: String,
    pub title: String,
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub target_id: Option<i64>,
}

/// A host's state changed (`event.data` of kind `host`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HostEvent {
    pub host: i64,
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub detail: String,
}

/// A VM changed (`event.data` of kind `instance`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InstanceEvent {
    pub instance: i64,
    pub hostname: String,
    pub state: String,
    #[serde(default)]
    pub detail: String,
}

/// The notification for a VM event: it runs, it broke, it is gone.
pub fn instance_toast(event: &InstanceEvent) -> Option<(crate::components::toasts::Level, String)> {
    use crate::components::toasts::Level;
    let name = &event.hostname;
    match event.state.as_str() {
        "running" if event.detail.starts_with("running") => {
            Some((Level::Success, format!("{name} is {}.", event.detail)))
        }
        "failed" => Some((
            Level::Error,
            format!("{name} could not be created: {}", event.detail),
        )),
        "missing" => Some((Level::Error, format!("{name} is {}.", event.detail))),
        "destroying" if event.detail == "destroyed" => {
            Some((Level::Info, format!("{name} was destroyed.")))
        }
        // A start, stop or destroy that did not work leaves it as it was.
        _ if event.detail.starts_with("Could not") => {
            Some((Level::Error, format!("{name}: {}", event.detail)))
        }
        "stopped" if event.detail == "stopped" => {
            Some((Level::Info, format!("{name} is stopped.")))
        }
        _ => None,
    }
}

/// One notification per happening: a VM's own events say what became of
/// it (with its address), so the job that did it stays quiet, unless it
/// failed without the VM saying so (a database error on its last try).
#[derive(Default)]
pub struct Notifier {
    /// VMs whose last notification was an error not yet matched by its
    /// job's failure.
    told_failure: std::collections::HashSet<i64>,
}

impl Notifier {
    pub fn job(&mut self, event: &JobEvent) -> Option<(crate::components::toasts::Level, String)> {
        if event.kind == "vm" {
            match event.state.as_str() {
                "succeeded" => return None,
                "failed" => {
                    if let Some(id) = event.target_id
                        && self.told_failure.remove(&id)
                    {
                        return None;
                    }
                }
                _ => {}
            }
        }
        job_toast(event)
    }

    pub fn instance(
        &mut self,
        event: &InstanceEvent,
    ) -> Option<(crate::components::toasts::Level, String)> {
        let toast = instance_toast(event);
        if matches!(toast, Some((crate::components::toasts::Level::Error, _))) {
            self.told_failure.insert(event.instance);
        }
        toast
    }
}

/// A lease changed (`event.data` of kind `lease`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LeaseEvent {
    pub host: i64,
    pub name: String,
    /// `allocate`, `lend`, `give`, `release`, `force_release`, `expire`,
    /// `extend`, `reminder`.
    pub action: String,
    #[serde(default)]
    pub detail: String,
}

/// The notification for a lease event: what others did to your node, and
/// what the clock did (one's own clicks already say so on the page).
pub fn lease_toast(event: &LeaseEvent) -> Option<(crate::components::toasts::Level, String)> {
    use crate::components::toasts::Level;
    let level = match event.action.as_str() {
        "expire" | "force_release" => Level::Error,
        "reminder" | "lend" | "give" => Level::Info,
        _ => return None,
    };
    Some((level, format!("{}: {}.", event.name, event.detail)))
}

/// The notification for a host event, if it deserves one.
pub fn host_toast(event: &HostEvent) -> Option<(crate::components::toasts::Level, String)> {
    use crate::components::toasts::Level;
    let name = &event.name;
    match event.state.as_str() {
        "installing" => Some((
            Level::Info,
            format!("{name} got its install and is installing."),
        )),
        "installed" => Some((Level::Success, format!("{name} is installed."))),
        "failed" => Some((Level::Error, format!("{name}: {}", event.detail))),
        _ => None,
    }
}

/// Shared by the pages (provided by `App`).
#[derive(Clone, Copy)]
pub struct Live {
    /// The newest job event; pages showing jobs refetch when it changes.
    pub last_job: RwSignal<Option<JobEvent>>,
    /// The newest host event; host pages refetch when it changes.
    pub last_host: RwSignal<Option<HostEvent>>,
    /// The newest VM event (with its event id); the VM page refetches.
    pub last_instance: RwSignal<Option<(i64, InstanceEvent)>>,
    /// Whether the WebSocket is open.
    pub connected: RwSignal<bool>,
}

impl Live {
    pub fn new() -> Live {
        Live {
            last_job: RwSignal::new(None),
            last_host: RwSignal::new(None),
            last_instance: RwSignal::new(None),
            connected: RwSignal::new(false),
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

pub fn use_live() -> Live {
    use_context::<Live>().unwrap_or_default()
}

/// The notification for a job event, if it deserves one.
pub fn job_toast(event: &JobEvent) -> Option<(crate::components::toasts::Level, String)> {
    use crate::components::toasts::Level;
    let name = format!("{} #{}", event.title, event.id);
    match event.state.as_str() {
        "succeeded" => Some((Level::Success, format!("{name} succeeded."))),
        "failed" => Some((
            Level::Error,
            format!(
                "{name} failed: {}",
                event.error.as_deref().unwrap_or("no reason given.")
            ),
        )),
        "cancelled" => Some((Level::Info, format!("{name} was cancelled."))),
        _ => None,
    }
}

/// Connects once the page runs in the browser with someone signed in.
pub fn connect_when_signed_in(signed_in: Signal<Option<i64>>) {
    let live = use_live();
    let toasts = crate::components::toasts::use_toasts();
    let started = StoredValue::new(false);
    Effect::new(move |_| {
        if let Some(after) = signed_in.get()
            && !started.get_value()
        {
            started.set_value(true);
            #[cfg(feature = "hydrate")]
            socket::start(live, toasts, after);
            #[cfg(not(feature = "hydrate"))]
            let _ = (live, toasts, after);
        }
    });
}

#[cfg(feature = "hydrate")]
mod socket {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::rc::Rc;
    use std::time::Duration;

    use leptos::prelude::*;
    use serde::Deserialize;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::{
        HostEvent, InstanceEvent, JobEvent, LeaseEvent, Live, Notifier, host_toast, lease_toast,
    };
    use crate::components::toasts::Toasts;

    #[derive(Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase")]
    enum Message {
        Hello { last_event_id: i64 },
        Event { event: EventBody },
    }

    #[derive(Deserialize)]
    struct EventBody {
        id: i64,
        kind: String,
        data: serde_json::Value,
    }

    #[derive(Default)]
    struct State {
        last_id: i64,
        /// `last_id` came with the page: replay from it even if it is 0.
        from_page: bool,
        seen: HashSet<i64>,
        notifier: Notifier,
        attempt: u32,
        signed_out: bool,
    }

    /// Connects, replaying the events after `after` (the newest when the
    /// page was rendered).
    pub fn start(live: Live, toasts: Toasts, after: i64) {
        let state = State {
            last_id: after,
            from_page: true,
            ..State::default()
        };
        open(Rc::new(RefCell::new(state)), live, toasts);
    }

    fn url(last_id: i64, replay: bool) -> Option<String> {
        let location = window().location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        let host = location.host().ok()?;
        Some(if last_id > 0 || replay {
            format!("{scheme}://{host}/ws?after={last_id}")
        } else {
            format!("{scheme}://{host}/ws")
        })
    }

    fn open(state: Rc<RefCell<State>>, live: Live, toasts: Toasts) {
        let Some(url) = url(state.borrow().last_id, state.borrow().from_page) else {
            return;
        };
        let Ok(ws) = WebSocket::new(&url) else {
            retry(state, live, toasts);
            return;
        };
        let on_open = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut()>::new(move || {
                state.borrow_mut().attempt = 0;
                live.connected.set(true);
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        on_open.forget();

        let on_message = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
                let Some(text) = message.data().as_string() else {
                    return;
                };
                match serde_json::from_str::<Message>(&text) {
                    Ok(Message::Hello { last_event_id }) => {
                        let mut state = state.borrow_mut();
                        // On the first connection, only what happens from now on.
                        if state.last_id == 0 && !state.from_page {
                            state.last_id = last_event_id;
                        }
                    }
                    Ok(Message::Event { event }) => {
                        {
                            let mut state = state.borrow_mut();
                            if !state.seen.insert(event.id) {
                                return;
                            }
                            state.last_id = state.last_id.max(event.id);
                        }
                        if event.kind == "job"
                            && let Ok(job) = serde_json::from_value::<JobEvent>(event.data.clone())
                        {
                            let toast = state.borrow_mut().notifier.job(&job);
                            if let Some((level, text)) = toast {
                                toasts.push(level, text);
                            }
                            live.last_job.set(Some(job));
                        } else if event.kind == "host"
                            && let Ok(host) =
                                serde_json::from_value::<HostEvent>(event.data.clone())
                        {
                            if let Some((level, text)) = host_toast(&host) {
                                toasts.push(level, text);
                            }
                            live.last_host.set(Some(host));
                        } else if event.kind == "instance"
                            && let Ok(instance) =
                                serde_json::from_value::<InstanceEvent>(event.data.clone())
                        {
                            let toast = state.borrow_mut().notifier.instance(&instance);
                            if let Some((level, text)) = toast {
                                toasts.push(level, text);
                            }
                            live.last_instance.set(Some((event.id, instance)));
                        } else if event.kind == "lease"
                            && let Ok(lease) = serde_json::from_value::<LeaseEvent>(event.data)
                        {
                            if let Some((level, text)) = lease_toast(&lease) {
                                toasts.push(level, text);
                            }
                            // Pages showing the host refetch (each lease
                            // event is a new "state" to them).
                            live.last_host.set(Some(HostEvent {
                                host: lease.host,
                                name: lease.name,
                                state: format!("lease-{}", event.id),
                                detail: lease.detail,
                            }));
                        }
                    }
                    Err(_) => {}
                }
            })
        };
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();

        let on_close = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                live.connected.set(false);
                if event.code() == 4001 {
                    state.borrow_mut().signed_out = true;
                    return;
                }
                retry(Rc::clone(&state), live, toasts);
            })
        };
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        on_close.forget();
    }

    fn retry(state: Rc<RefCell<State>>, live: Live, toasts: Toasts) {
        let delay = {
            let mut s = state.borrow_mut();
            if s.signed_out {
                return;
            }
            s.attempt = (s.attempt + 1).min(7);
            // 0.5 s, 1 s, 2 s, … 30 s, with some jitter so a restarted
            // server is not hit by every browser at once.
            let base = (500u64 << (s.attempt - 1)).min(30_000);
            base + (js_sys_random() * 250.0) as u64
        };
        // Keep the Rc alive in the timer.
        let state = Rc::clone(&state);
        set_timeout(
            move || open(state, live, toasts),
            Duration::from_millis(delay),
        );
    }

    fn js_sys_random() -> f64 {
        // Good enough jitter without js-sys: the clock's sub-millisecond part.
        window()
            .performance()
            .map(|p| p.now().fract())
            .unwrap_or(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::toasts::Level;

    fn job(kind: &str, state: &str, target: i64) -> JobEvent {
        JobEvent {
            id: 7,
            kind: kind.into(),
            title: "Create VM web-1".into(),
            state: state.into(),
            error: Some("the backend said no".into()),
            target_id: Some(target),
        }
    }

    fn vm(state: &str, detail: &str) -> InstanceEvent {
        InstanceEvent {
            instance: 3,
            hostname: "web-1".into(),
            state: state.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_vm_that_runs_is_told_once_with_its_address() {
        let mut notifier = Notifier::default();
        let told = notifier.instance(&vm("running", "running at 10.0.0.5"));
        assert_eq!(
            told,
            Some((Level::Success, "web-1 is running at 10.0.0.5.".into()))
        );
        assert_eq!(notifier.job(&job("vm", "succeeded", 3)), None);
    }

    #[test]
    fn a_vm_failure_is_told_once_and_a_silent_one_by_its_job() {
        let mut notifier = Notifier::default();
        assert!(matches!(
            notifier.instance(&vm("failed", "no space left")),
            Some((Level::Error, _))
        ));
        assert_eq!(notifier.job(&job("vm", "failed", 3)), None);
        // The next failure of the same VM without an event of its own.
        assert!(matches!(
            notifier.job(&job("vm", "failed", 3)),
            Some((Level::Error, text)) if text.contains("the backend said no")
        ));
    }

    #[test]
    fn a_stop_that_did_not_work_is_an_error_and_one_that_did_is_news() {
        let mut notifier = Notifier::default();
        assert!(matches!(
            notifier.instance(&vm("running", "Could not stop it: busy")),
            Some((Level::Error, text)) if text == "web-1: Could not stop it: busy"
        ));
        assert_eq!(
            notifier.instance(&vm("stopped", "stopped")),
            Some((Level::Info, "web-1 is stopped.".into()))
        );
    }

    #[test]
    fn other_jobs_keep_their_notifications() {
        let mut notifier = Notifier::default();
        assert!(notifier.job(&job("power", "succeeded", 3)).is_some());
        assert!(notifier.job(&job("power", "failed", 3)).is_some());
    }
}
