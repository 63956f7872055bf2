//! What every other module shares and that depends on nothing of ours: the two sides of a
//! migration, a value per side, and an exact percentage.

use std::fmt;
use std::ops::{Index, IndexMut};

/// Which service answers: the one being replaced, or its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Legacy,
    New,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Legacy, Side::New];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::New => "new",
        }
    }

    /// The side that did not serve: where a shadow copy goes.
    pub fn other(self) -> Side {
        match self {
            Side::Legacy => Side::New,
            Side::New => Side::Legacy,
        }
    }
}

/// One value per side, indexed by [`Side`]: `stats[Side::New]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BySide<T> {
    pub legacy: T,
    pub new: T,
}

impl<T> BySide<T> {
    /// Both values made by `f` from their side.
    pub fn from_fn(mut f: impl FnMut(Side) -> T) -> Self {
        BySide { legacy: f(Side::Legacy), new: f(Side::New) }
    }

    pub fn map<U>(&self, mut f: impl FnMut(Side, &T) -> U) -> BySide<U> {
        BySide { legacy: f(Side::Legacy, &self.legacy), new: f(Side::New, &self.new) }
    }
}

/// Written as `[legacy, new]`, the form readings have always had in etcd and the state file.
impl<T: serde::Serialize> serde::Serialize for BySide<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.legacy, &self.new).serialize(s)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for BySide<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (legacy, new) = <(T, T)>::deserialize(d)?;
        Ok(BySide { legacy, new })
    }
}

impl<T> Index<Side> for BySide<T> {
    type Output = T;

    fn index(&self, side: Side) -> &T {
        match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        }
    }
}

impl<T> IndexMut<Side> for BySide<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Legacy => &mut self.legacy,
            Side::New => &mut self.new,
        }
    }
}

/// Percentages are kept in hundredths: 0..=10000.
pub const WEIGHT_SCALE: u32 = 10_000;

/// A percentage kept exactly, in hundredths of a percent (0..=10000): weights, steps, samples.
/// Operators write `12.5`; the request path compares integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Percent(u32);

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const FULL: Percent = Percent(WEIGHT_SCALE);

    /// A percentage as written (`12.5`), refused when outside 0..=100 or finer than 0.01;
    /// `what` names the values in the message ("weights").
    pub fn parse(w: f64, what: &str) -> Result<Percent, String> {
        if !w.is_finite() || !(0.0..=100.0).contains(&w) {
            return Err("must be a percentage from 0 to 100".to_string());
        }
        let scaled = w * 100.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return Err(format!("has more than two decimals; {what} go in steps of 0.01 (e.g. 12.5 or 0.25)"));
        }
        Ok(Percent(rounded as u32))
    }

    /// From hundredths of a percent, clamped to 100%.
    pub const fn from_hundredths(h: u32) -> Percent {
        Percent(if h < WEIGHT_SCALE { h } else { WEIGHT_SCALE })
    }

    pub fn hundredths(self) -> u32 {
        self.0
    }

    /// As written: `12.5`.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_full(self) -> bool {
        self.0 >= WEIGHT_SCALE
    }

    /// A random draw that comes out true this share of the time: always at 100%, never at 0%.
    pub fn draw(self) -> bool {
        use rand::Rng;
        self.is_full() || (!self.is_zero() && rand::thread_rng().gen_range(0..WEIGHT_SCALE) < self.0)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_indexes_its_own_value() {
        let mut v = BySide::from_fn(|s| s.as_str().len());
        assert_eq!((v[Side::Legacy], v[Side::New]), (6, 3));
        v[Side::New] += 1;
        assert_eq!(v, BySide { legacy: 6, new: 4 });
        assert_eq!(v.map(|s, n| (s.other(), *n)).legacy, (Side::New, 6));
    }

    #[test]
    fn by_side_is_written_as_the_legacy_then_new_array() {
        let v = BySide { legacy: 1, new: 2 };
        assert_eq!(serde_json::to_string(&v).unwrap(), "[1,2]");
        assert_eq!(serde_json::from_str::<BySide<u8>>("[1,2]").unwrap(), v);
        assert!(serde_json::from_str::<BySide<u8>>("[1]").is_err());
    }
}
