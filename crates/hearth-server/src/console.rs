//! The web console at `/console/` on the API's origin: three files built by `console/build.mjs`
//! and checked in, compiled into the binary (nothing from another host; `cargo build` needs no
//! Node). Every response carries a Content-Security-Policy that allows script, style and
//! connections only from this origin and no inline script, and forbids framing.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// A file of the console: its name, type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/app.js"),
    },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../console/app.css") },
];

/// No inline script, nothing from another origin, no framing, no plugins, no forms posted
/// elsewhere. Style sheets come only from this origin, except CodeMirror's `<style>`
/// element, which carries the page's nonce (`{nonce}`: new for every load of the page, given
/// to the script in `<meta name="csp-nonce">`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'nonce-{nonce}'; img-src 'self' data: blob:; font-src 'self'; \
     connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; object-src 'none'";

/// The policy of a response whose page has `nonce` (assets have none: no inline style).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    match nonce {
        Some(n) => CONTENT_SECURITY_POLICY.replace("{nonce}", n),
        None => CONTENT_SECURITY_POLICY.replace(" 'nonce-{nonce}'", ""),
    }
}

/// `/console` (redirects to `/console/`), `/console/` and its files, and `/` (redirects to
/// the console: what a person who opens the server's address in a browser wants).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(page))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
        )
}

/// A weak validator of the build: its bytes' length and a hash, so a new binary's console is
/// fetched anew and an unchanged one answers 304.
fn etag(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("\"{:x}-{:016x}\"", bytes.len(), h.finish())
}

/// The page, with a nonce of its own for CodeMirror's style element; never cached.
async fn page() -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let html = std::str::from_utf8(ASSETS[0].bytes).expect("index.html is UTF-8").replace("{{CSP_NONCE}}", &nonce);
    let mut r = ([(header::CONTENT_TYPE, ASSETS[0].content_type)], html).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(h, Some(&nonce));
    r
}

fn serve(file: &str, request: &HeaderMap) -> Response {
    // The page itself only at /console/, where it gets its nonce.
    let Some(asset) = ASSETS.iter().skip(1).find(|a| a.name == file) else {
        let mut r = (StatusCode::NOT_FOUND, "no such console file; open /console/").into_response();
        secure(r.headers_mut(), None);
        return r;
    };
    // Computed once per file: the bytes are the binary's own.
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| ASSETS.iter().map(|a| etag(a.bytes)).collect());
    let tag = &tags[ASSETS.iter().position(|a| a.name == asset.name).expect("a listed asset")];
    let mut r = if request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(tag).expect("an etag is a header value"));
    // Revalidated on every load: a new binary brings its own console at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h, None);
    r
}

fn secure(h: &mut HeaderMap, nonce: Option<&str>) {
    let csp = content_security_policy(nonce);
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("the policy is a header value"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=(), usb=()"));
}
