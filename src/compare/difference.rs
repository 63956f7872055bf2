//! What a comparison finds: where two answers differ ([`Field`]), each difference, and the
//! record of one mismatching pair as it is kept, served and written to the diffs file. These
//! are also the admin API's shapes (re-exported by `api`), so their JSON is a contract.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::core::Side;

/// One mismatching pair, as the API and the diffs file show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRecord {
    /// RFC 3339, UTC.
    pub at: String,
    pub route: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The side whose answer the client got.
    pub served_by: Side,
    pub legacy: SideAnswer,
    pub new: SideAnswer,
    pub differences: Vec<Difference>,
    /// More differences existed than were kept.
    pub truncated: bool,
    /// Repeated headers as arrays; redacted ones as `[redacted]`.
    pub request_headers: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideAnswer {
    pub status: u16,
    pub duration_ms: f64,
}

/// One difference between legacy's and new's answer. `None` = absent on that side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    #[serde(rename = "where")]
    pub field: Field,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub legacy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub new: Option<Value>,
    /// For `body`: the first byte offset where the two bodies differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// For a text `body`: where the lines differ and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<LineDiff>,
}

/// A line diff summary of two text bodies; `legacy` and `new` then hold the first differing lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDiff {
    /// 1-based, in legacy's body.
    pub first: usize,
    /// Lines only legacy has.
    pub removed: usize,
    /// Lines only new has.
    pub added: usize,
}

/// A value that is there, `null` included: only a missing key is `None`.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Where two answers differ. Written as `status`, `header:NAME`, `json:$.path` or `body`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Status,
    /// A header, by lowercase name.
    Header(String),
    /// A JSON value, by path (`$.items[3].price`, or generalised `$.items[*].price`).
    Json(String),
    /// A body that is not JSON.
    Body,
}

impl Field {
    /// The metric label (`strangler_shadow_mismatches_total{where}`).
    pub fn kind(&self) -> MismatchKind {
        match self {
            Field::Status => MismatchKind::Status,
            Field::Header(_) => MismatchKind::Header,
            Field::Json(_) | Field::Body => MismatchKind::Body,
        }
    }

    /// The length of its written form (`json:$.a` is 8).
    pub fn name_len(&self) -> usize {
        match self {
            Field::Status => 6,
            Field::Header(h) => 7 + h.len(),
            Field::Json(p) => 5 + p.len(),
            Field::Body => 4,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Status => f.write_str("status"),
            Field::Header(h) => write!(f, "header:{h}"),
            Field::Json(p) => write!(f, "json:{p}"),
            Field::Body => f.write_str("body"),
        }
    }
}

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Field, String> {
        match s.split_once(':') {
            None if s == "status" => Ok(Field::Status),
            None if s == "body" => Ok(Field::Body),
            Some(("header", name)) if !name.is_empty() => Ok(Field::Header(name.to_string())),
            Some(("json", path)) if path.starts_with('$') => Ok(Field::Json(path.to_string())),
            _ => Err(format!("{s:?} is not a field: use status, header:NAME, json:$.path or body")),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What part of an answer a mismatch is in, as counted in `strangler_shadow_mismatches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MismatchKind {
    Status,
    Header,
    /// The body, JSON or not.
    Body,
}

impl MismatchKind {
    pub const ALL: [MismatchKind; 3] = [MismatchKind::Status, MismatchKind::Header, MismatchKind::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Status => "status",
            MismatchKind::Header => "header",
            MismatchKind::Body => "body",
        }
    }
}
