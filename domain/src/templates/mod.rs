//! Templates: *system* scripts (iPXE) and *unattended* files (preseed,
//! kickstart, Clonezilla commands, any text), rendered with minijinja in a
//! sandbox, and stored with every version. The shipped defaults come next.

pub mod defaults;
mod render;
pub mod sandbox;
mod store;
#[cfg(test)]
mod tests;

pub use render::{
    Compiled, HostContext, Limits, MacContext, RenderContext, RenderError, UserContext,
    check_syntax, render,
};
pub use sandbox::{Sandbox, Unavailable, WorkerLimits};
pub use store::{Actor, Draft, Kind, MAX_BODY, Template, Templates, TemplatesError, Version};
