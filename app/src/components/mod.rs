pub mod layout;
pub mod tabs;
