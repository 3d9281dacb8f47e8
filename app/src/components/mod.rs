pub mod alert;
pub mod field;
pub mod layout;
pub mod tabs;
pub mod toasts;
