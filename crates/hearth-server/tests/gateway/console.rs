//! The web console as the server serves it: from the binary, on the API's origin only, under a
//! Content-Security-Policy with no inline script and no other origin, with a nonce of its own
//! per page load. (What it does in a browser: `console/tests`, run by `scripts/console-test`.)

use super::*;

fn csp(r: &reqwest::Response) -> String {
    r.headers().get("content-security-policy").expect("a CSP header").to_str().unwrap().to_string()
}

#[tokio::test]
async fn console_is_served_from_the_binary_under_a_strict_policy() {
    let s = start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The server's address and /console lead to the console.
    for path in ["/", "/console"] {
        let r = http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert!(r.status().is_redirection(), "{path}: {}", r.status());
        assert_eq!(r.headers()["location"], "/console/", "{path}");
    }

    let page = http.get(format!("{}/console/", s.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let policy = csp(&page);
    let html = page.text().await.unwrap();
    // Script only from this origin, never inline; nothing from elsewhere; no framing.
    for directive in
        ["default-src 'none'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]
    {
        assert!(policy.contains(directive), "{directive} missing from {policy}");
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval") && !policy.contains("http"),
        "{policy}"
    );
    // The page's nonce is in its policy and its meta tag, and new for every load.
    let nonce = policy.split("'nonce-").nth(1).and_then(|n| n.split('\'').next()).expect("a nonce").to_string();
    assert!(nonce.len() >= 32 && nonce.chars().all(|c| c.is_ascii_alphanumeric()), "{nonce}");
    assert!(html.contains(&format!("<meta name=\"csp-nonce\" content=\"{nonce}\">")), "{html}");
    assert!(!html.contains("{{CSP_NONCE}}"));
    let again = http.get(format!("{}/console/", s.url)).send().await.unwrap();
    assert!(!csp(&again).contains(&nonce), "a nonce is used once");
    // No inline script in the page: every script is a file of this origin.
    assert!(html.contains("<script type=\"module\" src=\"app.js\"></script>"));
    assert_eq!(html.matches("<script").count(), 1, "{html}");

    // Its files, with validators; the policy on each (no nonce: assets need none).
    for (file, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let r = http.get(format!("{}/console/{file}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{file}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(kind), "{file}");
        assert!(!csp(&r).contains("nonce"), "{file}");
        let etag = r.headers()["etag"].clone();
        assert!(r.bytes().await.unwrap().len() > 1000, "{file}");
        let cached = http.get(format!("{}/console/{file}", s.url)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{file}");
    }
    // Nothing else, and no way out of the folder.
    for path in ["/console/index.html", "/console/missing.js", "/console/..%2fCargo.toml", "/console/app.js/x"] {
        let r = http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // The console needs no token to load (it asks for one), and the API still does.
    let r = http.get(format!("{}/v1/functions", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn console_is_never_on_the_triggers_origin() {
    let s = start().await;
    s.deploy("page", "def handler(e, c):\n    return {'statusCode': 200, 'body': 'function page'}\n", py(json!({})))
        .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/console/", "/console/app.js"] {
        let r = http.get(format!("{}{path}", s.trigger_url)).send().await.unwrap();
        assert!(
            r.headers().get("content-security-policy").is_none_or(|v| !v.to_str().unwrap().contains("nonce")),
            "{path}"
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("Hearth console") && !body.contains("csp-nonce"), "{path}: {body}");
    }
    // No trigger may take the console's path either (so no link to it can reach a function).
    let (status, body) = s.add_trigger(json!({"function": "page", "path": "/console"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "ReservedTriggerPath");
}
