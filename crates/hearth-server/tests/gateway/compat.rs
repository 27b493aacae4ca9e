//! Compatibility: the official runtime client, AWS SDKs and CLI, the OpenAPI document.

use super::*;

#[tokio::test]
async fn openapi_document_is_served_and_checked_in() {
    let s = start().await;
    let served: Value = s.http.get(format!("{}/openapi.json", s.url)).send().await.unwrap().json().await.unwrap();
    let generated = serde_json::to_value(openapi()).unwrap();
    assert_eq!(served, generated);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    let pretty = openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("HEARTH_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == pretty,
        "openapi.json is out of date: regenerate it with `HEARTH_UPDATE_OPENAPI=1 cargo test -p hearth-server openapi` and commit it"
    );
    for p in ["/v1/functions/{name}", "/v1/functions/{name}/invoke", "/v1/functions/{name}/instances", "/openapi.json"]
    {
        assert!(generated["paths"][p].is_object(), "{p} documented");
    }
}

#[tokio::test]
async fn the_official_python_runtime_client_serves_invocations() {
    let ric = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/awslambdaric-pkg");
    assert!(ric.join("awslambdaric").exists(), "{} is missing: run scripts/test-deps.sh", ric.display());
    let mut entries = entries_of(&ric, "");
    entries.push(hearth_blob::fixtures::RawEntry::file(
        "main.py",
        b"def handler(event, context):\n    return {'ric': True, 'echo': event, 'id': context.aws_request_id}\n",
    ));
    let mut boot = hearth_blob::fixtures::RawEntry::file(
        "bootstrap",
        b"#!/bin/sh\ncd \"$LAMBDA_TASK_ROOT\"\nexec /usr/bin/python3 -m awslambdaric main.handler\n",
    );
    boot.unix_mode = 0o100755;
    entries.push(boot);
    let s = start().await;
    s.deploy_zip("ric", hearth_blob::fixtures::raw_zip(&entries), json!({"runtime": "provided", "timeout_s": 30}))
        .await;
    for i in 0..2 {
        let r = s.event("ric", json!({"i": i})).await;
        assert_eq!(r.error, None, "{:?}", r.body);
        assert_eq!((r.body["ric"].as_bool(), &r.body["echo"]), (Some(true), &json!({"i": i})));
        assert_eq!(r.body["id"].as_str(), r.request_id.as_deref(), "context.aws_request_id is the request id");
    }
}

const BOTO3_CLIENT: &str = r#"
import base64, json, sys
import boto3, botocore
from botocore.config import Config

url, token = sys.argv[1], sys.argv[2]
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="unused", aws_secret_access_key="unused",
                      config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}, read_timeout=60))

def bearer(request, **kwargs):
    request.headers["Authorization"] = "Bearer " + token

client.meta.events.register("before-send.lambda.*", bearer)
out = {}
r = client.invoke(FunctionName="sdk", Payload=b'{"a": 1}', LogType="Tail")
out["ok"] = {"status": r["StatusCode"], "error": r.get("FunctionError"), "version": r.get("ExecutedVersion"),
             "payload": json.loads(r["Payload"].read())}
out["tail"] = base64.b64decode(r["LogResult"]).decode()
ctx = {"custom": {"k": "v"}, "env": {"platform": "py"}, "client": {"app_title": "sdk-test"}}
ctx = base64.b64encode(json.dumps(ctx).encode()).decode()
r = client.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:sdk", Qualifier="1",
                  Payload=b'{"fail": "x"}', ClientContext=ctx)
out["failed"] = {"status": r["StatusCode"], "error": r.get("FunctionError"), "payload": json.loads(r["Payload"].read())}
out["context"] = json.loads(client.invoke(FunctionName="sdk", Payload=b'{"c": 1}', ClientContext=ctx)["Payload"].read())
try:
    client.invoke(FunctionName="missing")
    out["missing"] = "no error"
except client.exceptions.ResourceNotFoundException as e:
    out["missing"] = e.response["Error"]["Code"]
out["dry_run"] = client.invoke(FunctionName="sdk", InvocationType="DryRun")["StatusCode"]
queued = client.invoke(FunctionName="sdk", InvocationType="Event", Payload=b'{"e": 1}')
out["event"] = {"status": queued["StatusCode"], "id": queued["ResponseMetadata"]["RequestId"]}
# Unmodified SDK use: SigV4-signed, the token as the access key id.
signed = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id=token, aws_secret_access_key="any",
                      config=Config(retries={"max_attempts": 1}))
out["signed"] = json.loads(signed.invoke(FunctionName="sdk", Payload=b'{"s": 1}')["Payload"].read())
print(json.dumps(out))
"#;

/// Echoes its event, and the client context it was given (`context.client_context`, with
/// AWS's attributes) when there is one.
const SDK_FUNCTION: &str = r#"
def handler(event, context):
    if event.get('fail'):
        raise ValueError(event['fail'])
    cc = context.client_context
    if cc is None:
        return {'got': event}
    app_title = cc.client.app_title if cc.client else None
    return {'got': event, 'custom': cc.custom, 'env': cc.env, 'app_title': app_title}
"#;

#[tokio::test]
async fn aws_sdk_invokes_through_the_lambda_invoke_api() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/test-deps.sh", python.display());
    let s = start().await;
    s.deploy("sdk", SDK_FUNCTION, py(json!({}))).await;
    let (url, token) = (s.url.clone(), s.token.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).args(["-c", BOTO3_CLIENT, &url, &token]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "boto3 script failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], json!({"status": 200, "error": null, "version": "1", "payload": {"got": {"a": 1}}}));
    let tail = v["tail"].as_str().unwrap();
    assert!(tail.contains("START RequestId") && tail.contains("REPORT RequestId"), "Tail returns the log: {tail}");
    assert_eq!((v["failed"]["status"].as_u64(), v["failed"]["error"].as_str()), (Some(200), Some("Unhandled")));
    assert_eq!(v["failed"]["payload"]["errorType"], "ValueError");
    assert_eq!(v["missing"], "ResourceNotFoundException");
    assert_eq!(v["dry_run"], 204);
    // InvocationType=Event: 202 and a request id the event is then delivered under.
    assert_eq!(v["event"]["status"], 202);
    let id = v["event"]["id"].as_str().unwrap();
    let e = s.wait_event(id, "succeeded").await;
    assert_eq!(serde_json::from_str::<Value>(e["result"].as_str().unwrap()).unwrap()["got"], json!({"e": 1}));
    assert_eq!(v["signed"], json!({"got": {"s": 1}}));
    assert_eq!(
        v["context"],
        json!({"got": {"c": 1}, "custom": {"k": "v"}, "env": {"platform": "py"}, "app_title": "sdk-test"}),
        "the function sees the client context as AWS's context.client_context"
    );

    // The AWS CLI v1, unmodified, with the token as its access key id.
    let aws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/aws");
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let (url, token, out_path) = (s.url.clone(), s.token.clone(), out_file.path().to_owned());
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(aws)
            .args([
                "lambda",
                "invoke",
                "--endpoint-url",
                &url,
                "--function-name",
                "sdk",
                "--payload",
                r#"{"cli": true}"#,
                "--client-context",
                // {"custom":{"via":"cli"},"env":{"platform":"linux"}}
                "eyJjdXN0b20iOnsidmlhIjoiY2xpIn0sImVudiI6eyJwbGF0Zm9ybSI6ImxpbnV4In19",
            ])
            .arg(&out_path)
            .env("AWS_ACCESS_KEY_ID", &token)
            .env("AWS_SECRET_ACCESS_KEY", "any")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(cli.status.success(), "aws lambda invoke failed: {}", String::from_utf8_lossy(&cli.stderr));
    let meta: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!((meta["StatusCode"].as_u64(), meta["ExecutedVersion"].as_str()), (Some(200), Some("1")));
    let result: Value = serde_json::from_slice(&std::fs::read(out_file.path()).unwrap()).unwrap();
    let seen = json!({"got": {"cli": true}, "custom": {"via": "cli"}, "env": {"platform": "linux"}, "app_title": null});
    assert_eq!(result, seen, "the function sees the CLI's --client-context");

    // Without credentials the API answers HTTP's 401; with a key id that is no token, AWS's
    // 403; both in the SDK's error shape.
    let lambda = || s.http.post(format!("{}/2015-03-31/functions/sdk/invocations", s.url));
    let r = lambda().body("{}").send().await.unwrap();
    assert_eq!(
        (
            r.status(),
            r.headers()["x-amzn-errortype"].to_str().unwrap(),
            r.headers()["www-authenticate"].to_str().unwrap()
        ),
        (StatusCode::UNAUTHORIZED, "MissingAuthenticationTokenException", "Bearer")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["Type"], "User");
    let signed =
        "AWS4-HMAC-SHA256 Credential=hth_0000/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00";
    let r = lambda().header("authorization", signed).body("{}").send().await.unwrap();
    assert_eq!(
        (r.status(), r.headers()["x-amzn-errortype"].to_str().unwrap()),
        (StatusCode::FORBIDDEN, "UnrecognizedClientException")
    );
    let r = lambda().bearer_auth(&s.token).header("x-amz-log-type", "Everything").body("{}").send().await.unwrap();
    assert_eq!(
        (r.status(), r.headers()["x-amzn-errortype"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "InvalidParameterValueException")
    );
    // The path segment is decoded once: an ARN with encoded colons names the function, a
    // qualifier that is neither a version nor an alias name is refused even when the
    // Qualifier parameter is set, and DryRun checks the version or alias named.
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Asdk";
    let r = s.http.post(format!("{}/2015-03-31/functions/{arn}/invocations", s.url)).bearer_auth(&s.token);
    assert_eq!(r.header("x-amz-invocation-type", "DryRun").send().await.unwrap().status(), StatusCode::NO_CONTENT);
    for (path, status) in [
        ("sdk:1x/invocations?Qualifier=1", StatusCode::NOT_FOUND),
        ("sdk:prod/invocations", StatusCode::NOT_FOUND),
        ("sdk:7/invocations", StatusCode::NOT_FOUND),
        ("sdk:prod/invocations?Qualifier=1", StatusCode::NO_CONTENT),
    ] {
        let r = s.http.post(format!("{}/2015-03-31/functions/{path}", s.url));
        let r = r.bearer_auth(&s.token).header("x-amz-invocation-type", "DryRun").send().await.unwrap();
        assert_eq!(r.status(), status, "DryRun {path}");
    }
    let r = s
        .http
        .post(format!("{}/2015-03-31/functions/sdk/invocations", s.url))
        .bearer_auth(&s.token)
        .header("x-amz-invocation-type", "Later")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "an unknown invocation type is refused");
    let r = s
        .http
        .post(format!("{}/2015-03-31/functions/sdk/invocations", s.url))
        .bearer_auth(&s.token)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-amzn-errortype"], "InvalidRequestContentException");
}
