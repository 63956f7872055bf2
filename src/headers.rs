//! Which request headers are strangler's to set: told apart while a request's header is first
//! checked ([`crate::limits::inspect`]), acted on when it is forwarded ([`crate::proxy`]).

/// Whether a header of this name is one a client may not set (unless it is a trusted proxy, or
/// the name is a route's override header): strangler's own marks, and the proxy headers naming
/// a client's address or host.
pub fn may_be_mark(name: &str) -> bool {
    name.starts_with("x-strangler-")
        || matches!(name, "forwarded" | "x-real-ip" | "x-forwarded-host")
        || client_address(name)
}

/// The rest of the client-address family: headers through which proxies and CDNs tell an
/// upstream who the client is or what it asked for, which frameworks believe (Spring and IIS
/// route on `X-Original-URL`). Only a trusted proxy may send them.
fn client_address(name: &str) -> bool {
    matches!(
        name,
        "true-client-ip"
            | "x-client-ip"
            | "x-cluster-client-ip"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-forwarded-server"
    )
}

/// Headers strangler sets for the upstream, which a client must not be able to drop by naming
/// them in `Connection` (nominated headers are hop-by-hop and stripped).
pub const PROTECTED: [&str; 4] = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// Whether a `Connection` value could nominate one of [`PROTECTED`]. The common values
/// (`keep-alive`, `close`) cannot, and are told by their length first, inline in the header walk;
/// anything else gets a byte scan, nothing allocated.
#[inline]
pub fn may_nominate_protected(conn: &[u8]) -> bool {
    match conn.len() {
        10 if conn.eq_ignore_ascii_case(b"keep-alive") => false,
        5 if conn.eq_ignore_ascii_case(b"close") => false,
        // Shorter than "host", the shortest name it looks for.
        0..=3 => false,
        _ => mentions_protected(conn),
    }
}

#[inline(never)]
fn mentions_protected(conn: &[u8]) -> bool {
    let mentions = |needle: &[u8]| conn.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    mentions(b"host") || mentions(b"forwarded")
}
