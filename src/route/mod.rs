//! Which route a request belongs to ([`table`]) and which side serves it ([`split`]).

pub mod path;
pub mod split;
pub mod table;

pub use split::{bucket, choose_side, Choice, Decision};
pub use table::{Matched, RouteTable};
