// Hearth's Node.js runtime: a client of the Lambda Runtime API with no dependencies.
// Loads `file.export` from _HANDLER (CommonJS or ESM, relative to LAMBDA_TASK_ROOT) during
// init, reporting failures to /runtime/init/error, then serves events one at a time.
// Handlers may be async (return a promise) or callback style (event, context, callback).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

let HOST, PORT, WORKERS, agent;

// Pre-warmed (HEARTH_PREWARMED=1): started before any function is chosen, it says
// HEARTH_PREWARMED_READY on stdout and waits for one line on stdin, {"env": {...}}, the
// function's whole environment; its code is at LAMBDA_TASK_ROOT by then.
function specialize() {
  process.stdout.write("HEARTH_PREWARMED_READY\n");
  const chunks = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      if (err.code === "EAGAIN") continue;
      throw err;
    }
    if (n === 0) process.exit(0);
    chunks.push(Buffer.from(buf.subarray(0, n)));
    if (buf.subarray(0, n).includes(10)) break;
  }
  const { env } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, env);
  process.chdir(process.env.LAMBDA_TASK_ROOT || "/var/task");
}

function configure() {
  const api = process.env.AWS_LAMBDA_RUNTIME_API;
  const i = api.lastIndexOf(":");
  [HOST, PORT] = [api.slice(0, i), Number(api.slice(i + 1))];
  // HEARTH_CONCURRENCY loops poll for events at once, each on its own connection.
  WORKERS = Math.max(1, Number(process.env.HEARTH_CONCURRENCY || 1) || 1);
  agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS });
}

const PREFIX = "/2018-06-01/runtime";

function call(method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port: PORT, method, path: PREFIX + p, agent, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function postJson(p, doc, errorType) {
  const headers = { "Content-Type": "application/json" };
  if (errorType) headers["Lambda-Runtime-Function-Error-Type"] = errorType;
  return call("POST", p, JSON.stringify(doc), headers).catch(() => {});
}

function errorDoc(err, errorType, message) {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    errorType: errorType || e.name || "Error",
    errorMessage: message ?? e.message,
    trace: String(e.stack || "").split("\n"),
  };
}

async function load() {
  const handler = process.env._HANDLER || "";
  const dot = handler.lastIndexOf(".");
  if (dot <= 0 || dot === handler.length - 1) {
    return { failure: ["Runtime.MalformedHandlerName", `Bad handler '${handler}': use file.export`] };
  }
  const file = handler.slice(0, dot);
  const name = handler.slice(dot + 1);
  const root = process.env.LAMBDA_TASK_ROOT || "/var/task";
  const found = ["", ".js", ".mjs", ".cjs"].map((ext) => path.resolve(root, file + ext)).find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
  if (!found) {
    return { failure: ["Runtime.ImportModuleError", `Error: Cannot find module '${file}'`] };
  }
  let mod;
  try {
    mod = await import(pathToFileURL(found).href);
  } catch (err) {
    const type = err instanceof SyntaxError ? "Runtime.UserCodeSyntaxError" : "Runtime.ImportModuleError";
    return { failure: [type, `${err.name}: ${err.message}`, err] };
  }
  const fn = mod[name] ?? mod.default?.[name];
  if (typeof fn !== "function") {
    return { failure: ["Runtime.HandlerNotFound", `${file}.${name} is undefined or not exported`] };
  }
  return { fn };
}

function context(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] || 0);
  const cc = headers["lambda-runtime-client-context"];
  const env = process.env;
  return {
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"] || "",
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || "",
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || "$LATEST",
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || "128",
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || "",
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || "",
    clientContext: cc ? JSON.parse(cc) : undefined,
    identity: undefined,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

function run(fn, event, ctx) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, result) => {
      if (settled) return;
      settled = true;
      err ? reject(err) : resolve(result);
    };
    try {
      const out = fn(event, ctx, done);
      if (out && typeof out.then === "function") out.then((r) => done(null, r), (e) => done(e));
      else if (fn.length < 3) done(null, out);
    } catch (err) {
      done(err);
    }
  });
}

async function main() {
  if (process.env.HEARTH_PREWARMED === "1") specialize();
  configure();
  const { fn, failure } = await load();
  if (failure) {
    const [type, message, err] = failure;
    console.error(`[ERROR] ${type}: ${message}`);
    await postJson("/init/error", err ? errorDoc(err, type, message) : { errorType: type, errorMessage: message, trace: [] }, type);
    process.exit(1);
  }
  await Promise.all(Array.from({ length: WORKERS }, () => serve(fn)));
}

async function serve(fn) {
  for (;;) {
    const next = await call("GET", "/invocation/next");
    const h = next.headers;
    const id = h["lambda-runtime-aws-request-id"];
    if (h["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = h["lambda-runtime-trace-id"];
    else delete process.env._X_AMZN_TRACE_ID;
    let event;
    let ctx;
    try {
      const isJson = (h["content-type"] || "application/json").startsWith("application/json");
      event = isJson && next.body.length ? JSON.parse(next.body.toString("utf8")) : next.body;
      ctx = context(h);
    } catch (err) {
      await postJson(`/invocation/${id}/error`, errorDoc(err, "Runtime.UnmarshalError"));
      continue;
    }
    try {
      const result = await run(fn, event, ctx);
      const body = JSON.stringify(result === undefined ? null : result);
      await call("POST", `/invocation/${id}/response`, body, { "Content-Type": "application/json" });
    } catch (err) {
      const doc = errorDoc(err);
      console.error(`[ERROR] ${doc.errorType}: ${doc.errorMessage}`);
      await postJson(`/invocation/${id}/error`, doc);
    }
  }
}

main().catch((err) => {
  console.error("runtime failure:", err);
  process.exit(1);
});
