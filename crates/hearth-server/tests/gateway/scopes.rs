//! Every route × every caller (no token, and a token of each scope): the status and error
//! code. The route list comes from the OpenAPI document, so a route added without a row
//! here fails the test.

use std::collections::BTreeSet;

use hearth_types::Scope;

use super::*;

/// The scope each operation needs (`None`: public).
const ROUTES: &[(&str, &str, Option<Scope>)] = &[
    ("GET", "/healthz", None),
    ("GET", "/openapi.json", None),
    ("GET", "/v1/functions", Some(Scope::Read)),
    ("GET", "/v1/functions/{name}", Some(Scope::Read)),
    ("PUT", "/v1/functions/{name}", Some(Scope::Deploy)),
    ("PATCH", "/v1/functions/{name}", Some(Scope::Deploy)),
    ("DELETE", "/v1/functions/{name}", Some(Scope::Deploy)),
    ("GET", "/v1/functions/{name}/code", Some(Scope::Read)),
    ("PUT", "/v1/functions/{name}/code", Some(Scope::Deploy)),
    ("GET", "/v1/functions/{name}/versions", Some(Scope::Read)),
    ("GET", "/v1/functions/{name}/aliases", Some(Scope::Read)),
    ("PUT", "/v1/functions/{name}/aliases/{alias}", Some(Scope::Deploy)),
    ("GET", "/v1/functions/{name}/aliases/{alias}", Some(Scope::Read)),
    ("DELETE", "/v1/functions/{name}/aliases/{alias}", Some(Scope::Deploy)),
    ("GET", "/v1/functions/{name}/instances", Some(Scope::Read)),
    ("GET", "/v1/functions/{name}/invocations", Some(Scope::Read)),
    ("GET", "/v1/functions/{name}/dead-letters", Some(Scope::Read)),
    ("POST", "/v1/functions/{name}/dead-letters/redrive", Some(Scope::Invoke)),
    ("GET", "/v1/invocations/{id}", Some(Scope::Read)),
    ("POST", "/v1/schedules", Some(Scope::Deploy)),
    ("GET", "/v1/schedules", Some(Scope::Read)),
    ("DELETE", "/v1/schedules/{id}", Some(Scope::Deploy)),
    ("GET", "/v1/usage", Some(Scope::Read)),
    ("GET", "/metrics", Some(Scope::Read)),
    ("POST", "/v1/nats-triggers", Some(Scope::Deploy)),
    ("GET", "/v1/nats-triggers", Some(Scope::Read)),
    ("DELETE", "/v1/nats-triggers/{id}", Some(Scope::Deploy)),
    ("GET", "/v1/functions/{name}/logs", Some(Scope::Read)),
    ("GET", "/v1/functions/{name}/logs/stream", Some(Scope::Read)),
    ("GET", "/v1/functions/{name}/stats", Some(Scope::Read)),
    ("GET", "/v1/stats", Some(Scope::Read)),
    ("POST", "/v1/functions/{name}/invoke", Some(Scope::Invoke)),
    ("POST", "/2015-03-31/functions/{name}/invocations", Some(Scope::Invoke)),
    ("GET", "/2015-03-31/functions", Some(Scope::Read)),
    ("POST", "/2015-03-31/functions", Some(Scope::Deploy)),
    ("GET", "/2015-03-31/functions/{name}", Some(Scope::Read)),
    ("DELETE", "/2015-03-31/functions/{name}", Some(Scope::Deploy)),
    ("GET", "/2015-03-31/functions/{name}/configuration", Some(Scope::Read)),
    ("PUT", "/2015-03-31/functions/{name}/configuration", Some(Scope::Deploy)),
    ("PUT", "/2015-03-31/functions/{name}/code", Some(Scope::Deploy)),
    ("GET", "/2015-03-31/functions/{name}/versions", Some(Scope::Read)),
    ("POST", "/2015-03-31/functions/{name}/versions", Some(Scope::Deploy)),
    ("GET", "/v1/node", Some(Scope::Read)),
    ("POST", "/v1/packages", Some(Scope::Deploy)),
    ("GET", "/v1/tokens", Some(Scope::Admin)),
    ("POST", "/v1/tokens", Some(Scope::Admin)),
    ("DELETE", "/v1/tokens/{id}", Some(Scope::Admin)),
    ("GET", "/v1/triggers", Some(Scope::Read)),
    ("POST", "/v1/triggers", Some(Scope::Deploy)),
    ("DELETE", "/v1/triggers/{id}", Some(Scope::Deploy)),
];

/// Operations any valid token may call, whatever its scopes (401 without one).
const ANY_TOKEN: &[(&str, &str)] = &[("GET", "/v1/token")];

const ZIP_ROUTES: &[&str] = &["/v1/packages", "/v1/functions/{name}/code"];

/// A request to `path` (template) as `caller` would make it, with valid input.
fn request(s: &Server, method: &str, path: &str, label: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    // Deleting uses a function that does not exist, so every row sees the same state.
    let name = if method == "DELETE" { "absent" } else { "scoped" };
    let url = format!(
        "{}{}",
        s.url,
        path.replace("{name}", name).replace("{id}", "00000000-0000-4000-8000-000000000000").replace("{alias}", "live")
    );
    // A stream that ends at once, so its body can be read.
    let url = if path.ends_with("/logs/stream") { format!("{url}?timeout_s=0") } else { url };
    let mut r = s.http.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    match (method, path) {
        (_, p) if ZIP_ROUTES.contains(&p) && method != "GET" => r
            .header("content-type", "application/zip")
            .body(deflated_zip(&[("main.py", format!("# {label}\ndef handler(e, c): return 1\n").as_bytes())])),
        ("PUT", "/v1/functions/{name}") => r.json(&py(json!({"description": label}))),
        ("PATCH", "/v1/functions/{name}") => r.json(&json!({"description": label})),
        ("POST", "/2015-03-31/functions") => r.json(&json!({
            "FunctionName": format!("created-{label}"), "Runtime": "python3.12", "Role": "r", "Handler": "main.handler",
            "Code": {"ZipFile": lambda_zip(label)},
        })),
        ("PUT", "/2015-03-31/functions/{name}/configuration") => r.json(&json!({"Description": label})),
        ("PUT", "/2015-03-31/functions/{name}/code") => r.json(&json!({"ZipFile": lambda_zip(label)})),
        ("POST", "/v1/tokens") => r.json(&json!({"scopes": ["read"], "name": label})),
        ("POST", "/v1/triggers") => r.json(&json!({"function": "scoped", "path": format!("/scoped-{label}")})),
        ("POST", _) => r.json(&json!({})),
        _ => r,
    }
}

/// A package as the Lambda API takes it: base64 in JSON.
fn lambda_zip(label: &str) -> String {
    use base64::Engine;
    let zip = deflated_zip(&[("main.py", format!("# lambda {label}\ndef handler(e, c): return 1\n").as_bytes())]);
    base64::engine::general_purpose::STANDARD.encode(zip)
}

#[tokio::test]
async fn every_route_answers_each_scope_as_documented() {
    let s = start().await;
    s.deploy("scoped", FUNCTION, py(json!({}))).await;
    // The table covers exactly the documented operations.
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")).unwrap(),
    )
    .unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), p.clone())))
        .filter(|(m, _)| ["GET", "PUT", "POST", "DELETE", "PATCH"].contains(&m.as_str()))
        .collect();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .chain(ANY_TOKEN.iter().map(|(m, p)| (m.to_string(), p.to_string())))
        .collect();
    assert_eq!(documented, table, "every documented operation has exactly one row (and no row is undocumented)");
    // One token per scope.
    let mut tokens = vec![];
    for scope in Scope::ALL {
        let r = s
            .http
            .post(format!("{}/v1/tokens", s.url))
            .bearer_auth(&s.token)
            .json(&json!({"scopes": [scope.as_str()], "name": format!("only-{scope}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        tokens.push((scope.as_str(), Some(v["token"].as_str().unwrap().to_owned()), Some(scope)));
    }
    tokens.push(("none", None, None));
    let mut checked = 0;
    // `Some(None)`: any token; `Some(Some(scope))`: a token granting it; `None`: public.
    let rows = ROUTES
        .iter()
        .map(|(m, p, needs)| (*m, *p, needs.map(Some)))
        .chain(ANY_TOKEN.iter().map(|(m, p)| (*m, *p, Some(None))));
    for (method, path, needs) in rows {
        for (label, token, held) in &tokens {
            let r = request(&s, method, path, label, token.as_deref()).send().await.unwrap();
            let status = r.status();
            let aws_type = r.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let what = format!("{method} {path} as {label}: {status} {body}");
            let granted = match (needs, held) {
                (None, _) => true,
                (Some(None), held) => held.is_some(),
                (Some(Some(n)), Some(h)) => h.grants(n),
                (Some(_), None) => false,
            };
            if granted {
                assert!(status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN, "{what}");
                assert!(!status.is_server_error(), "{what}");
            } else if token.is_none() {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                if !path.starts_with("/2015-03-31/") {
                    assert_eq!(body["code"], "MissingToken", "{what}");
                }
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                // Hearth's routes answer with its codes, the Lambda API's as AWS does.
                match path.starts_with("/2015-03-31/") {
                    false => assert_eq!(body["code"], "InsufficientScope", "{what}"),
                    true => assert_eq!(aws_type.as_deref(), Some("AccessDeniedException"), "{what}"),
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, (ROUTES.len() + ANY_TOKEN.len()) * 5);
    // The trigger origin's `/fn/` needs the invoke scope too.
    for (label, token, held) in &tokens {
        let mut r = s.http.get(format!("{}/fn/scoped/x", s.trigger_url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let status = r.send().await.unwrap().status();
        let expected = match held {
            None => StatusCode::UNAUTHORIZED,
            Some(h) if h.grants(Scope::Invoke) => StatusCode::OK,
            Some(_) => StatusCode::FORBIDDEN,
        };
        assert_eq!(status, expected, "/fn/ as {label}");
    }
}
