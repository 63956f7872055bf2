//! Runtime control: config reload (file watch, SIGHUP), weights by hand and by the rollout
//! controller, upstream health checks, the live-figures sampler and the supervisor that restarts
//! a background task that died. The admin listener that drives it is [`crate::admin`].

pub mod gates;
pub mod health;
pub mod machine;
pub mod notices;
pub mod progress;
pub mod reload;
pub mod rollout;
pub mod sampler;
pub mod supervise;
