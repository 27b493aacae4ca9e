//! The Lambda management API with the AWS CLI v1 and boto3, unmodified (the token as the
//! access key id, SigV4-signed): create, list, get, update code and configuration, publish,
//! invoke the version, delete; each step checked against Hearth's own API.

use base64::Engine;

use super::*;

/// Runs the AWS CLI v1 and boto3 through the life cycle; after each step it records what
/// the Lambda API answered and what Hearth's own API (`/v1/functions/mgmt`) says.
const SCRIPT: &str = r#"
import base64, json, os, subprocess, sys, urllib.request
import boto3
from botocore.config import Config

url, token, aws, v1_zip, v2_zip = sys.argv[1:6]
env = dict(os.environ, AWS_ACCESS_KEY_ID=token, AWS_SECRET_ACCESS_KEY="any", AWS_DEFAULT_REGION="eu-west-1",
           AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")

def cli(*args):
    r = subprocess.run([aws, "lambda", *args, "--endpoint-url", url, "--output", "json"], env=env,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return {"exit": r.returncode, "stderr": r.stderr}
    return json.loads(r.stdout) if r.stdout.strip() else {}

def hearth(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": json.loads(e.read())}

client = boto3.client("lambda", endpoint_url=url, region_name="eu-west-1", aws_access_key_id=token,
                      aws_secret_access_key="any", config=Config(retries={"max_attempts": 1}, read_timeout=60))
def error_of(call, **kw):
    try:
        call(**kw)
        return "no error"
    except client.exceptions.ClientError as e:
        return {"code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "message": e.response["Error"]["Message"]}

out = {}
out["create"] = cli("create-function", "--function-name", "mgmt", "--runtime", "python3.12",
                    "--role", "arn:aws:iam::123456789012:role/ignored", "--handler", "main.handler",
                    "--zip-file", "fileb://" + v1_zip, "--memory-size", "256", "--timeout", "10",
                    "--environment", "Variables={A=1}", "--description", "made by the aws cli")
out["after_create"] = hearth("/v1/functions/mgmt")
out["list"] = cli("list-functions")
out["get"] = cli("get-function", "--function-name", "mgmt")
out["config_cli"] = cli("get-function-configuration", "--function-name", "mgmt")

out["update_code"] = client.update_function_code(FunctionName="mgmt", ZipFile=open(v2_zip, "rb").read())
out["after_code"] = hearth("/v1/functions/mgmt")
out["update_config"] = client.update_function_configuration(
    FunctionName="arn:aws:lambda:eu-west-1:000000000000:function:mgmt", MemorySize=512,
    Environment={"Variables": {"B": "2"}}, Runtime="python3.11")
out["after_config"] = hearth("/v1/functions/mgmt")
out["publish"] = client.publish_version(FunctionName="mgmt")
out["versions"] = client.list_versions_by_function(FunctionName="mgmt")
out["hearth_versions"] = hearth("/v1/functions/mgmt/versions")
version = out["publish"]["Version"]
r = client.invoke(FunctionName="mgmt", Qualifier=version, Payload=b'{"x": 1}')
out["invoke"] = {"version": r["ExecutedVersion"], "payload": json.loads(r["Payload"].read())}
out["old_config"] = client.get_function_configuration(FunctionName="mgmt", Qualifier="1")
out["page"] = client.list_versions_by_function(FunctionName="mgmt", MaxItems=2)

out["errors"] = {
    "missing": error_of(client.get_function, FunctionName="absent"),
    "exists": error_of(client.create_function, FunctionName="mgmt", Runtime="python3.12", Role="r",
                       Handler="main.handler", Code={"ZipFile": open(v1_zip, "rb").read()}),
    "java": error_of(client.create_function, FunctionName="java", Runtime="java21", Role="r",
                     Handler="x", Code={"ZipFile": open(v1_zip, "rb").read()}),
    "vpc": error_of(client.update_function_configuration, FunctionName="mgmt",
                    VpcConfig={"SubnetIds": ["subnet-1"], "SecurityGroupIds": []}),
    "memory": error_of(client.update_function_configuration, FunctionName="mgmt", MemorySize=20000),
    "not_a_zip": error_of(client.update_function_code, FunctionName="mgmt", ZipFile=b"not a zip"),
    "revision": error_of(client.update_function_code, FunctionName="mgmt", ZipFile=open(v1_zip, "rb").read(),
                         RevisionId="999"),
    "sha": error_of(client.publish_version, FunctionName="mgmt", CodeSha256="AAAA"),
}
out["after_errors"] = hearth("/v1/functions/mgmt")
out["delete"] = cli("delete-function", "--function-name", "mgmt")
out["after_delete"] = hearth("/v1/functions/mgmt")
out["deleted_get"] = error_of(client.get_function, FunctionName="mgmt")
print(json.dumps(out, default=str))
"#;

fn hex_of_base64(b64: &str) -> String {
    hex::encode(base64::engine::general_purpose::STANDARD.decode(b64).unwrap())
}

#[tokio::test]
async fn aws_cli_and_boto3_manage_functions() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    assert!(venv.join("aws").exists(), "{} is missing: run scripts/test-deps.sh", venv.display());
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.zip");
    let v2 = dir.path().join("v2.zip");
    let code = |tag: &str| format!("def handler(event, context):\n    return {{'code': '{tag}', 'event': event}}\n");
    std::fs::write(&v1, deflated_zip(&[("main.py", code("v1").as_bytes())])).unwrap();
    std::fs::write(&v2, deflated_zip(&[("main.py", code("v2").as_bytes())])).unwrap();
    let args: Vec<String> = [s.url.clone(), s.token.clone(), venv.join("aws").display().to_string()]
        .into_iter()
        .chain([v1.display().to_string(), v2.display().to_string()])
        .collect();
    let python = venv.join("python");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg("-c").arg(SCRIPT).args(&args).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the script failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    // CreateFunction through the AWS CLI: Lambda's names in, Hearth's configuration out.
    let created = &v["create"];
    assert_eq!(created["FunctionName"], "mgmt", "{created}");
    assert_eq!(created["FunctionArn"], "arn:aws:lambda:eu-west-1:000000000000:function:mgmt");
    assert_eq!((created["Runtime"].as_str(), created["MemorySize"].as_u64()), (Some("python3"), Some(256)));
    let hearth = &v["after_create"];
    assert_eq!(hearth["config"]["runtime"], "python3");
    assert_eq!(hearth["config"]["memory_mb"], 256);
    assert_eq!(hearth["config"]["timeout_s"], 10);
    assert_eq!(hearth["config"]["environment"], json!({"A": "1"}));
    assert_eq!(hearth["config"]["description"], "made by the aws cli");
    assert_eq!(hearth["latest_version"], 1);
    assert_eq!(hex_of_base64(created["CodeSha256"].as_str().unwrap()), hearth["code"]["sha256"].as_str().unwrap());
    assert_eq!(created["CodeSize"], hearth["code"]["size_bytes"]);
    assert_eq!(created["RevisionId"], hearth["revision"].to_string());

    let listed: Vec<&str> =
        v["list"]["Functions"].as_array().unwrap().iter().map(|f| f["FunctionName"].as_str().unwrap()).collect();
    assert_eq!(listed, ["mgmt"]);
    assert_eq!(v["get"]["Configuration"]["Handler"], "main.handler");
    assert_eq!(v["get"]["Code"]["Location"], format!("{}/v1/functions/mgmt/code", s.url));
    assert_eq!(v["config_cli"]["Environment"]["Variables"], json!({"A": "1"}));

    // UpdateFunctionCode keeps the settings; UpdateFunctionConfiguration keeps the code and
    // replaces the environment, as Lambda does.
    let after_code = &v["after_code"];
    assert_eq!(after_code["latest_version"], 2);
    assert_ne!(after_code["code"]["sha256"], hearth["code"]["sha256"]);
    assert_eq!(
        (after_code["config"]["memory_mb"].as_u64(), &after_code["config"]["environment"]),
        (Some(256), &json!({"A": "1"}))
    );
    assert_eq!(
        hex_of_base64(v["update_code"]["CodeSha256"].as_str().unwrap()),
        after_code["code"]["sha256"].as_str().unwrap()
    );
    let after_config = &v["after_config"];
    assert_eq!(after_config["config"]["memory_mb"], 512);
    assert_eq!(after_config["config"]["environment"], json!({"B": "2"}));
    assert_eq!(after_config["code"], after_code["code"]);
    assert_eq!(after_config["latest_version"], 3);

    // PublishVersion names the newest version; versions list $LATEST then each one.
    assert_eq!(v["publish"]["Version"], "3");
    assert_eq!(v["publish"]["FunctionArn"], "arn:aws:lambda:eu-west-1:000000000000:function:mgmt:3");
    let versions: Vec<&str> =
        v["versions"]["Versions"].as_array().unwrap().iter().map(|c| c["Version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["$LATEST", "1", "2", "3"]);
    assert_eq!(v["hearth_versions"]["versions"].as_array().unwrap().len(), 3);
    assert_eq!(v["invoke"], json!({"version": "3", "payload": {"code": "v2", "event": {"x": 1}}}));
    assert_eq!((v["old_config"]["MemorySize"].as_u64(), v["old_config"]["Version"].as_str()), (Some(256), Some("1")));
    assert_eq!(v["page"]["Versions"].as_array().unwrap().len(), 2);
    assert_eq!(v["page"]["NextMarker"], "2");

    // Refusals in Lambda's shapes, and nothing changed by them.
    let e = &v["errors"];
    let code = |k: &str| (e[k]["code"].as_str().unwrap_or("none").to_owned(), e[k]["status"].as_u64().unwrap_or(0));
    assert_eq!(code("missing"), ("ResourceNotFoundException".into(), 404));
    assert_eq!(code("exists"), ("ResourceConflictException".into(), 409));
    assert_eq!(code("java"), ("InvalidParameterValueException".into(), 400));
    assert!(e["java"]["message"].as_str().unwrap().contains("java21"), "{}", e["java"]);
    assert_eq!(code("vpc"), ("InvalidParameterValueException".into(), 400));
    assert_eq!(code("memory"), ("InvalidParameterValueException".into(), 400));
    assert_eq!(code("not_a_zip"), ("InvalidParameterValueException".into(), 400));
    assert_eq!(code("revision"), ("PreconditionFailedException".into(), 412));
    assert_eq!(code("sha"), ("InvalidParameterValueException".into(), 400));
    assert_eq!(v["after_errors"]["latest_version"], 3, "no refused call made a version");
    assert_eq!(v["after_errors"]["config"], after_config["config"]);

    // DeleteFunction through the AWS CLI.
    assert_eq!(v["delete"], json!({"StatusCode": 204}), "{}", v["delete"]);
    assert_eq!(v["after_delete"]["status"], 404);
    assert_eq!(v["deleted_get"]["code"], "ResourceNotFoundException");
}

/// Hostile and malformed calls: each refused in Lambda's shape with its error type, nothing
/// stored, the server still serving.
#[tokio::test]
async fn malformed_management_calls_are_refused_in_lambdas_shape() {
    let s = start().await;
    let url = format!("{}/2015-03-31/functions", s.url);
    let send = |r: reqwest::RequestBuilder| async move {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let kind = r.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, kind, body)
    };
    let create = |body: Vec<u8>| s.http.post(&url).bearer_auth(&s.token).body(body);
    let zip = base64::engine::general_purpose::STANDARD
        .encode(deflated_zip(&[("main.py", b"def handler(e, c):\n    return 1\n".as_slice())]));
    let valid = |name: &str| json!({"FunctionName": name, "Runtime": "python3.12", "Role": "r", "Handler": "main.handler", "Code": {"ZipFile": zip}});

    let (status, kind, body) = send(create(b"{not json".to_vec())).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidRequestContentException"), "{body}");
    assert_eq!(body["Type"], "User");
    let (status, kind, _) = send(create(br#"{"FunctionName": "x"}"#.to_vec())).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidRequestContentException"), "Code is required");
    let mut bad = valid("badzip");
    bad["Code"]["ZipFile"] = json!("%%% not base64 %%%");
    let (status, kind, body) = send(create(serde_json::to_vec(&bad).unwrap())).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterValueException"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("base64"), "{body}");
    let mut traversal = valid("traversal");
    traversal["Code"]["ZipFile"] =
        json!(base64::engine::general_purpose::STANDARD.encode(deflated_zip(&[("../escape.py", b"x".as_slice())])));
    let (status, kind, body) = send(create(serde_json::to_vec(&traversal).unwrap())).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterValueException"), "{body}");
    for (name, what) in
        [("Bad Name!", "an invalid name"), (&"x".repeat(200)[..], "a name too long"), ("a:b:c:d", "a malformed ARN")]
    {
        let (status, kind, body) = send(create(serde_json::to_vec(&valid(name)).unwrap())).await;
        assert!(status == 404 || status == 400, "{what}: {status} {body}");
        assert!(kind.ends_with("Exception"), "{what}: {kind}");
    }
    let mut env = valid("env");
    env["Environment"] = json!({"Variables": {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1"}});
    let (status, kind, body) = send(create(serde_json::to_vec(&env).unwrap())).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterValueException"), "reserved variables: {body}");
    let mut s3 = valid("s3");
    s3["Code"] = json!({"S3Bucket": "code-bucket", "S3Key": "k.zip"});
    let (status, kind, body) = send(create(serde_json::to_vec(&s3).unwrap())).await;
    assert_eq!((status, kind.as_str()), (403, "AccessDeniedException"), "no S3 settings: {body}");
    // A body past the limit is cut off while it arrives.
    let huge = vec![b' '; 80 * 1024 * 1024];
    let (status, kind, _) = send(create(huge)).await;
    assert_eq!((status, kind.as_str()), (413, "RequestTooLargeException"));
    let (status, kind, _) = send(s.http.post(&url).body(serde_json::to_vec(&valid("anon")).unwrap())).await;
    assert_eq!((status, kind.as_str()), (401, "MissingAuthenticationTokenException"));
    let (status, kind, _) = send(
        s.http.get(&url).header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0"),
    )
    .await;
    assert_eq!((status, kind.as_str()), (403, "UnrecognizedClientException"), "an AWS key that is not a token");
    let (status, kind, _) = send(s.http.get(format!("{url}?MaxItems=0")).bearer_auth(&s.token)).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterValueException"));
    let (status, kind, _) = send(s.http.get(format!("{url}?Marker=18446744073709551615")).bearer_auth(&s.token)).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterValueException"), "a huge Marker");

    // Nothing was stored, and a valid call still works.
    let listed: Value =
        s.http.get(format!("{}/v1/functions", s.url)).bearer_auth(&s.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["functions"], json!([]), "{listed}");
    let (status, _, body) = send(create(serde_json::to_vec(&valid("fine")).unwrap())).await;
    assert_eq!(status, 201, "{body}");
    // A version qualifier on a call that changes the function would be ignored: refused.
    let (status, kind, body) = send(
        s.http
            .put(format!("{url}/fine%3A1/configuration"))
            .bearer_auth(&s.token)
            .json(&json!({"Description": "via :1"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterValueException"), "{body}");
    let fine: Value = s
        .http
        .get(format!("{}/v1/functions/fine", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fine["config"]["description"], "", "nothing changed");
}
