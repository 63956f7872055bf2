//! The admin side, apart from what it controls: the listener that serves the API, health,
//! metrics and the console ([`server`], its paths in [`endpoint`]), the console's files
//! ([`console`]), and the API's client with the CLI's text renderings of its answers
//! ([`client`], [`render`]). What a change does is [`crate::control`]'s business.

pub mod client;
pub mod console;
pub mod endpoint;
pub mod render;
pub mod server;
pub mod views;
