"""Schemathesis hooks for scripts/api-fuzz: the rules of valid requests that the OpenAPI
document cannot state in JSON Schema, applied to the cases schemathesis generates as valid
(positive) ones, so that the server refusing them is not counted against it. Cases generated
as invalid (negative) are left alone: the server must refuse those.

- A code package must be a zip archive; JSON Schema only says "bytes". A valid case gets a
  zip of one file holding the bytes schemathesis drew. (Hostile archives are tested in
  crates/hearth-blob/tests/packages.rs.)
- FunctionSpec: `min_instances` may not exceed `max_instances` (default 10), the
  environment's names and values take at most 4096 bytes in all, and `on_success` and
  `on_failure` may not name the function itself (every case drops such a destination, since
  the coverage phase's cases reach the hook without generation metadata;
  crates/hearth-server/tests/gateway/events.rs tests the refusal).
- A cron trigger (POST /v1/schedules): its `schedule` must parse as a cron expression and its
  `time_zone` name a zone of the tz database, which JSON Schema cannot say; a valid case gets
  `0 */5 * * * *` and `UTC` (crates/hearth-types/src/schedule.rs and
  crates/hearth-server/tests/gateway/events.rs test the refusals).
- A NATS trigger (POST /v1/nats-triggers) connects only to loopback: every case whose
  `server` is a well-formed address gets `nats://127.0.0.1:1` (nothing listens there), so
  the fuzzer never makes the server reach another host; a valid case also gets a valid
  subject, names, and no consumer without a stream (the refusals are tested in
  crates/hearth-server/tests/gateway/nats.rs).
- An alias (PUT /v1/functions/{name}/aliases/{alias}) is not named `latest` in any case (that
  is `$LATEST`), and its additional version differs from its version (the server refuses
  both, tested in crates/hearth-server/tests/gateway/aliases.rs); valid cases get `live` and
  another version.
- A patch (PATCH /v1/functions/{name}) applies to the function as the earlier cases left it,
  which the document cannot know: a valid case keeps its fields but those whose rules
  involve that state (runtime and handler, the instance counts, the environment's size),
  which crates/hearth-api/tests/api.rs tests.
- A log stream (GET /v1/functions/{name}/logs/stream) lasts up to `timeout_s` seconds (an
  hour by default): every case without one, or with an allowed one, gets `timeout_s=0`, so
  the stream ends at once and the fuzzer reads the whole answer (whether a case is valid does
  not change; crates/hearth-server/tests/gateway/log_stream.rs follows streams).
- A statistics window (GET /v1/functions/{name}/stats): `from` must be before `to`, at most
  7 days before it, and the window at most 1,000 buckets of `step_s`, which JSON Schema
  cannot say across parameters; a valid case's `from` and `to` become an hour (ending at
  `to` when it is given, else now), which any valid `step_s` cuts into at most 360 buckets
  (crates/hearth-server/tests/gateway/stats.rs tests the refusals).
- The Lambda management API (/2015-03-31/functions...): `ZipFile` must be base64 of a zip
  (a valid case gets one, and no S3 or image source); `Runtime` is required to create;
  python needs a `module.function` handler; `RevisionId` and `CodeSha256` must match the
  function's current state and a `Qualifier` on delete must be `$LATEST` (valid cases drop
  them; crates/hearth-server/tests/gateway/lambda_manage.rs tests them); a VPC without
  subnets and an empty image configuration are allowed but pointless, and dropped.
"""

import base64
import io
import zipfile
from datetime import datetime, timedelta, timezone

import schemathesis

ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/octet-stream"}
# hearth_types::limits: MAX_INSTANCES.default and ENVIRONMENT_MAX_BYTES.
MAX_INSTANCES_DEFAULT = 10
ENVIRONMENT_MAX_BYTES = 4096


def _zip_of(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("main.py", date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


# The functions scripts/api-fuzz deploys (the document's example name is `hello`).
DEPLOYED = {"hello", "fuzz"}


def _not_its_own_destination(case) -> None:
    names = DEPLOYED | {(case.path_parameters or {}).get("name")}
    for field in ("on_success", "on_failure"):
        value = case.body.get(field)
        if isinstance(value, str) and value.split(":")[0] in names:
            case.body.pop(field)


def _within_cross_field_rules(spec: dict) -> None:
    max_instances = spec.get("max_instances")
    if max_instances is None:
        max_instances = MAX_INSTANCES_DEFAULT
    if isinstance(spec.get("min_instances"), (int, float)) and spec["min_instances"] > max_instances:
        spec["min_instances"] = max_instances
    environment = spec.get("environment")
    if isinstance(environment, dict):
        total = 0
        for name in list(environment):
            size = len(name.encode()) + len(str(environment[name]).encode())
            if total + size > ENVIRONMENT_MAX_BYTES:
                del environment[name]
            else:
                total += size


LAMBDA = "/2015-03-31/functions"


def _lambda_zip() -> str:
    return base64.b64encode(_zip_of(b"def handler(event, context):\n    return event\n")).decode()


def _lambda_valid(case) -> None:
    method, path, body = case.method.upper(), case.path, case.body
    if method == "DELETE" and isinstance(case.query, dict):
        case.query.pop("Qualifier", None)
    if not isinstance(body, dict):
        return
    for field in ("RevisionId", "CodeSha256", "VpcConfig", "ImageConfig"):
        body.pop(field, None)
    if "Handler" in body or (method == "POST" and path == LAMBDA):
        body["Handler"] = "main.handler"
    if "Runtime" in body or (method == "POST" and path == LAMBDA):
        body["Runtime"] = "python3.12"
    environment = body.get("Environment")
    if isinstance(environment, dict) and isinstance(environment.get("Variables"), dict):
        _within_cross_field_rules({"environment": environment["Variables"]})
    if method == "POST" and path == LAMBDA:
        body["Code"] = {"ZipFile": _lambda_zip()}
    elif method == "PUT" and path == LAMBDA + "/{name}/code":
        for field in ("S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"):
            body.pop(field, None)
        body["ZipFile"] = _lambda_zip()


@schemathesis.hook
def map_case(context, case):
    # Dropping a destination that names the function keeps a negative case negative (the
    # name is schema-valid), so it applies to every case, however generated.
    if case.path == "/v1/functions/{name}" and case.method.upper() in ("PUT", "PATCH") and isinstance(case.body, dict):
        _not_its_own_destination(case)
    if case.path == "/v1/nats-triggers" and isinstance(case.body, dict):
        _loopback_nats(case.body)
    if case.path == "/v1/functions/{name}/logs/stream":
        _ends_at_once(case)
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if case.media_type in ZIP_TYPES:
        body = case.body.encode() if isinstance(case.body, str) else case.body
        case.body = _zip_of(bytes(body) if isinstance(body, (bytes, bytearray)) else b"")
    elif case.method.upper() == "PUT" and case.path == "/v1/functions/{name}" and isinstance(case.body, dict):
        _within_cross_field_rules(case.body)
    elif case.path == "/v1/functions/{name}/aliases/{alias}":
        params = case.path_parameters or {}
        if str(params.get("alias", "")).lower() == "latest":
            params["alias"] = "live"
        body = case.body if isinstance(case.body, dict) else {}
        extra = body.get("additional_version")
        if isinstance(extra, dict) and extra.get("version") == body.get("version") and isinstance(extra.get("version"), int):
            extra["version"] = extra["version"] % 999_999_999 + 1
    elif case.method.upper() == "POST" and case.path == "/v1/nats-triggers" and isinstance(case.body, dict):
        case.body["server"] = "nats://127.0.0.1:1"
        case.body["subject"] = "fuzz.>"
        for field in ("stream", "consumer"):
            if field in case.body:
                case.body[field] = "FUZZ"
        if "consumer" in case.body and "stream" not in case.body:
            case.body["stream"] = "FUZZ"
    elif case.method.upper() == "POST" and case.path == "/v1/schedules" and isinstance(case.body, dict):
        case.body["schedule"] = "0 */5 * * * *"
        if "time_zone" in case.body:
            case.body["time_zone"] = "UTC"
    elif case.path == "/v1/functions/{name}/stats" and isinstance(case.query, dict):
        _one_hour(case.query)
    elif case.path.startswith(LAMBDA) and not case.path.endswith("/invocations"):
        _lambda_valid(case)
    elif case.method.upper() == "PATCH" and case.path == "/v1/functions/{name}" and isinstance(case.body, dict):
        for field in ("runtime", "handler", "min_instances", "max_instances", "environment"):
            case.body.pop(field, None)
    return case


def _loopback_nats(body):
    """A well-formed NATS address (as the server would accept it) becomes a loopback one."""
    server = body.get("server")
    if isinstance(server, str) and len(server) <= 512 and server.startswith(("nats://", "tls://")):
        body["server"] = "nats://127.0.0.1:1"


def _one_hour(query):
    """`from` and `to` (those given) an hour apart, `from` before `to` (or before now)."""
    if "to" in query:
        query["to"] = "2030-01-01T01:00:00Z"
        if "from" in query:
            query["from"] = "2030-01-01T00:00:00Z"
    elif "from" in query:
        query["from"] = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ends_at_once(case):
    """`timeout_s=0` unless the case gives a `timeout_s` the server refuses."""
    if case.query is None:
        case.query = {}
    if not isinstance(case.query, dict):
        return
    given = case.query.get("timeout_s")
    if given is None or (isinstance(given, int) and not isinstance(given, bool) and 0 <= given <= 3600):
        case.query["timeout_s"] = 0
