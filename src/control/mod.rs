//! Runtime control: config reload (file watch, SIGHUP), the admin listener, and the admin API's
//! client with the CLI's renderings of its answers.

pub mod admin;
pub mod client;
pub mod reload;
pub mod render;
