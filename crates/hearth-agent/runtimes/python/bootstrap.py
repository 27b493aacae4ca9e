"""Hearth's Python runtime: a client of the Lambda Runtime API, standard library only.

Imports `module.function` from `_HANDLER` (relative to LAMBDA_TASK_ROOT) during init,
reporting failures to /runtime/init/error, then serves events one at a time.

Pre-warmed (HEARTH_PREWARMED=1): started before any function is chosen, it says
HEARTH_PREWARMED_READY on stdout and waits for one line on stdin, `{"env": {...}}`, the
function's whole environment; its code is at LAMBDA_TASK_ROOT by then.
"""
import http.client
import importlib
import json
import os
import sys
import threading
import time
import traceback

_HOST, _PORT = None, None
_PREFIX = "/2018-06-01/runtime"
# One connection per worker thread (HEARTH_CONCURRENCY workers poll for events at once).
_LOCAL = threading.local()


def _conn():
    if not hasattr(_LOCAL, "conn"):
        _LOCAL.conn = http.client.HTTPConnection(_HOST, int(_PORT))
    return _LOCAL.conn


def _call(method, path, body=None, headers=None):
    conn = _conn()
    try:
        conn.request(method, _PREFIX + path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    except (OSError, http.client.HTTPException):
        # A broken connection (e.g. the platform refused an oversized response): start a
        # fresh one for the next call; the platform has already answered the caller.
        conn.close()
        if path.endswith("/next"):
            raise
        return 0, {}, b""


def _post_json(path, doc, error_type=None):
    headers = {"Content-Type": "application/json"}
    if error_type:
        headers["Lambda-Runtime-Function-Error-Type"] = error_type
    _call("POST", path, json.dumps(doc).encode(), headers)


def _error_doc(exc, error_type=None, message=None):
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": frames,
    }


class ClientContext:
    """The caller's client context, with AWS's attributes (`custom`, `env`, `client`)."""

    __slots__ = ("custom", "env", "client")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")


def _from_dict(cls, d):
    if not isinstance(d, dict):
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field))
    return obj


def _client_context(d):
    cc = _from_dict(ClientContext, d)
    if cc is not None:
        cc.client = _from_dict(Client, cc.client)
    return cc


class LambdaContext:
    def __init__(self, request_id, deadline_ms, arn, client_context):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = _client_context(client_context)
        self.identity = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _init():
    handler = os.environ.get("_HANDLER", "")
    module_name, _, func_name = handler.rpartition(".")
    if not module_name or not func_name:
        return None, ("Runtime.MalformedHandlerName", f"Bad handler '{handler}': use module.function")
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    sys.path.insert(0, task_root)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except SyntaxError as exc:
        return None, ("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}", exc)
    except ImportError as exc:
        return None, ("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", exc)
    except Exception as exc:  # the module's own top-level code failed
        return None, ("Runtime.InitError", f"{type(exc).__name__}: {exc}", exc)
    func = getattr(module, func_name, None)
    if not callable(func):
        return None, ("Runtime.HandlerNotFound", f"Handler '{func_name}' missing on module '{module_name}'")
    return func, None


def _specialize():
    # Common standard modules, loaded ahead while nobody waits.
    import base64, datetime, decimal, hashlib, logging, re, urllib.parse, uuid  # noqa: F401
    print("HEARTH_PREWARMED_READY", flush=True)
    line = sys.stdin.buffer.readline()
    if not line:
        sys.exit(0)
    env = json.loads(line)["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
    importlib.invalidate_caches()


def main():
    global _HOST, _PORT
    if os.environ.get("HEARTH_PREWARMED") == "1":
        _specialize()
    _HOST, _PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    func, failure = _init()
    if failure:
        error_type, message, *exc = failure
        doc = _error_doc(exc[0], error_type, message) if exc else {"errorMessage": message, "errorType": error_type, "stackTrace": []}
        print(f"[ERROR] {error_type}: {message}", file=sys.stderr, flush=True)
        _post_json("/init/error", doc, error_type)
        sys.exit(1)
    workers = max(1, int(os.environ.get("HEARTH_CONCURRENCY", "1") or 1))
    for _ in range(workers - 1):
        threading.Thread(target=_serve, args=(func,), daemon=True).start()
    _serve(func)


def _serve(func):
    while True:
        _status, headers, body = _call("GET", "/invocation/next")
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        trace_id = headers.get("Lambda-Runtime-Trace-Id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        raw_context = headers.get("Lambda-Runtime-Client-Context")
        try:
            client_context = json.loads(raw_context) if raw_context else None
            is_json = (headers.get("Content-Type") or "application/json").startswith("application/json")
            event = json.loads(body) if is_json and body else body
        except ValueError as exc:
            _post_json(f"/invocation/{request_id}/error", _error_doc(exc, "Runtime.UnmarshalError"))
            continue
        context = LambdaContext(request_id, deadline_ms, arn, client_context)
        try:
            result = func(event, context)
        except Exception as exc:
            doc = _error_doc(exc)
            print(f"[ERROR] {doc['errorType']}: {doc['errorMessage']}", file=sys.stderr, flush=True)
            _post_json(f"/invocation/{request_id}/error", doc)
            continue
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        try:
            payload = result if isinstance(result, bytes) else json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            _post_json(f"/invocation/{request_id}/error", _error_doc(exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}"))
            continue
        content_type = "application/unknown" if isinstance(result, bytes) else "application/json"
        _call("POST", f"/invocation/{request_id}/response", payload, {"Content-Type": content_type})


if __name__ == "__main__":
    main()
