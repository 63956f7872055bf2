//! Runtime control: config reload (file watch, SIGHUP) and the admin listener.

pub mod admin;
pub mod reload;
