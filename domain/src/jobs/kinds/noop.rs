//! `noop`: the diagnostic job. It sleeps, then succeeds or fails as asked,
//! so admins (and tests) can check that workers run and notifications
//! arrive: `POST /api/v1/jobs {"kind": "noop", "sleep_ms": 500}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::jobs::{JobContext, JobError, JobKind};

/// The longest sleep a diagnostic job may ask for.
pub const MAX_SLEEP_MS: u64 = 600_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {
    /// How long to sleep, in milliseconds.
    #[serde(default)]
    pub sleep_ms: u64,
    /// Fail (after sleeping) instead of succeeding.
    #[serde(default)]
    pub fail: bool,
    /// With `fail`: a transient failure, retried with backoff, instead of
    /// a permanent one.
    #[serde(default)]
    pub transient: bool,
}

pub struct Noop;

impl JobKind for Noop {
    const KIND: &'static str = "noop";
    const TITLE: &'static str = "Diagnostic job";
    type Payload = NoopPayload;

    async fn run(&self, ctx: &JobContext, payload: NoopPayload) -> Result<Value, JobError> {
        let sleep = payload.sleep_ms.min(MAX_SLEEP_MS);
        if sleep > 0 {
            tokio::time::sleep(Duration::from_millis(sleep)).await;
        }
        match (payload.fail, payload.transient) {
            (false, _) => Ok(json!({ "slept_ms": sleep, "attempt": ctx.attempt })),
            (true, false) => Err(JobError::Permanent(
                "The diagnostic job failed, as asked.".into(),
            )),
            (true, true) => Err(JobError::Transient(
                "The diagnostic job failed transiently, as asked".into(),
            )),
        }
    }
}
