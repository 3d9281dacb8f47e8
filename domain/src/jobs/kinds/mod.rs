//! The job kinds, one file each.

pub mod noop;
pub mod power;
pub mod power_state;
pub mod vm;

use super::Registry;

/// Every kind this build knows. Kinds that need services (a mailer, a
/// power driver) are added by whoever builds those services.
pub fn builtin() -> Registry {
    Registry::default().with(noop::Noop)
}
