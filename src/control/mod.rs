//! Runtime control: config reload (file watch, SIGHUP), weights by hand and by the rollout
//! controller, the live-figures sampler, the admin listener and its console, and the admin API's client with the
//! CLI's renderings of its answers.

pub mod admin;
pub mod client;
pub mod console;
pub mod gates;
pub mod health;
pub mod reload;
pub mod render;
pub mod rollout;
pub mod sampler;
pub mod supervise;
