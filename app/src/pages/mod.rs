pub mod account;
pub mod admin_users;
pub mod home;
pub mod jobs;
pub mod login;
pub mod not_found;
pub mod password;
pub mod register;
