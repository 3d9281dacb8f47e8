//! Templates: *system* scripts (iPXE) and *unattended* files (preseed,
//! kickstart, Clonezilla commands, any text), rendered with minijinja in a
//! sandbox. Storage, versions and the shipped defaults come next; this is
//! the renderer and its context.

mod render;
#[cfg(test)]
mod tests;

pub use render::{Limits, RenderContext, RenderError, render};
