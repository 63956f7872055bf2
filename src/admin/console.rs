//! The migration console: a web page the admin listener serves at `/` and `/ui`, built from
//! files compiled into the binary (`console/` in the source tree), so it works offline and on an
//! air-gapped host. The page reads and changes things only through the admin API, with the same
//! token and the same cross-site rules as any other client.
//!
//! The charts are uPlot, vendored under `console/vendor` with its license; `console/vendor/update.sh`
//! refreshes it from the npm registry. Nothing here needs Node to build.

use std::sync::OnceLock;

use http::{HeaderValue, Response, StatusCode};

/// One embedded file.
pub struct Asset {
    /// The path after `/ui/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/style.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/vendor/uPlot.min.css"),
    },
    Asset {
        name: "LICENSE-uPlot",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../console/vendor/LICENSE-uPlot"),
    },
];

/// The page's own rules for the browser: scripts, styles and requests only from this listener
/// (no inline script, so an injected string cannot run), never framed by another page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset a path names: `/`, `/ui` and `/ui/` are the page; `/ui/NAME` a file of it.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let name = match path {
        "/" | "/ui" | "/ui/" => "index.html",
        _ => path.strip_prefix("/ui/")?,
    };
    ASSETS.iter().find(|a| a.name == name)
}

/// An asset's entity tag: a hash of its bytes, so a new binary's page is fetched afresh.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS
        .get_or_init(|| ASSETS.iter().map(|a| format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(a.body))).collect());
    ASSETS.iter().position(|a| a.name == asset.name).map_or("", |i| tags[i].as_str())
}

/// The answer for `asset`: the bytes, or 304 when the browser's copy (`If-None-Match`) is current.
/// Browsers revalidate every load (`no-cache`), so an upgraded binary's page is never stale.
pub fn serve(asset: &Asset, if_none_match: Option<&HeaderValue>) -> Response<Vec<u8>> {
    let tag = etag(asset);
    let fresh = if_none_match.and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = Response::new(if fresh { Vec::new() } else { asset.body.to_vec() });
    *resp.status_mut() = if fresh { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let headers = resp.headers_mut();
    let mut set = |name: http::header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(http::header::CONTENT_TYPE, asset.content_type);
    set(http::header::CACHE_CONTROL, "no-cache");
    set(http::header::ETAG, tag);
    set(http::header::CONTENT_SECURITY_POLICY, CSP);
    set(http::header::X_FRAME_OPTIONS, "DENY");
    set(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(http::header::REFERRER_POLICY, "no-referrer");
    let len = resp.body().len();
    resp.headers_mut().insert(http::header::CONTENT_LENGTH, len.into());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_at_the_root_and_under_ui() {
        for path in ["/", "/ui", "/ui/"] {
            assert_eq!(asset(path).map(|a| a.name), Some("index.html"), "{path}");
        }
        assert_eq!(asset("/ui/app.js").map(|a| a.content_type), Some("text/javascript; charset=utf-8"));
        assert!(asset("/ui/../Cargo.toml").is_none());
        assert!(asset("/app.js").is_none(), "assets live under /ui/ only");
    }

    #[test]
    fn a_current_copy_gets_304_without_a_body() {
        let page = asset("/").expect("the page");
        let first = serve(page, None);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.body().as_slice(), page.body);
        let tag = first.headers().get(http::header::ETAG).expect("an etag").clone();
        let again = serve(page, Some(&tag));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.body().is_empty());
        let stale = serve(page, Some(&HeaderValue::from_static("\"0\"")));
        assert_eq!(stale.status(), StatusCode::OK);
    }
}
