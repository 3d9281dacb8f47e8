//! Templates: *system* scripts (iPXE) and *unattended* files (preseed,
//! kickstart, Clonezilla commands, any text), rendered with minijinja in a
//! sandbox, and stored with every version. The shipped defaults come next.

pub mod defaults;
mod render;
mod store;
#[cfg(test)]
mod tests;

pub use render::{
    HostContext, Limits, MacContext, RenderContext, RenderError, UserContext, check_syntax, render,
};
pub use store::{Actor, Draft, Kind, MAX_BODY, Template, Templates, TemplatesError, Version};
