//! Writes the curated seed corpus under `fuzz/corpus/<target>/` (run once, from `fuzz/`:
//! `cargo run --example seed_corpus`; the files are checked in). Seeds are small, meaningful
//! inputs the fuzzer mutates from: hostile and legitimate packages, link shapes, trigger
//! paths, requests and results, Runtime API conversations.

use std::fs;
use std::path::Path;

use hearth_blob::fixtures::{RawEntry, deflated_zip, hello_python, hostile_archives, raw_zip};

/// Seeds larger than this are left out (the 10,001-entry archive): the corpus stays small.
const MAX_SEED: usize = 64 * 1024;

fn write(target: &str, name: &str, data: &[u8]) {
    if data.len() > MAX_SEED {
        eprintln!("skipped {target}/{name}: {} bytes", data.len());
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus folder");
    let name: String = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-");
    fs::write(dir.join(name), data).expect("seed");
}

fn packages() {
    for (name, bytes, _) in hostile_archives() {
        write("package_unpack", &format!("hostile {name}"), &bytes);
    }
    write("package_unpack", "hello python", &hello_python());
    write(
        "package_unpack",
        "node modules links",
        &raw_zip(&[
            RawEntry::file("index.js", b"exports.handler = async () => 'ok';\n"),
            RawEntry::file("node_modules/x/bin/x.js", b"#!/usr/bin/env node\n"),
            RawEntry::symlink("node_modules/.bin/x", "../x/bin/x.js"),
            RawEntry::file("lib/", b""),
            RawEntry::file("lib/lib.so.1.2", b"\x7fELF"),
            RawEntry::symlink("lib/lib.so.1", "lib.so.1.2"),
            RawEntry::symlink("lib/lib.so", "lib.so.1"),
        ]),
    );
    let mut bootstrap = RawEntry::file("bootstrap", b"#!/bin/sh\nexec ./handler\n");
    bootstrap.unix_mode = 0o104755; // setuid: dropped on unpack
    write("package_unpack", "provided setuid bootstrap", &raw_zip(&[bootstrap]));
    write(
        "package_unpack",
        "deflated several",
        &deflated_zip(&[("main.py", b"import lib.util\n"), ("lib/util.py", b"X = 1\n"), ("lib/__init__.py", b"")]),
    );
}

fn package_paths() {
    for (name, text) in [
        (
            "legitimate",
            "node_modules/x/bin/x.js\nnode_modules/.bin/x -> ../x/bin/x.js\nlib/lib.so.1.2\nlib/lib.so.1 -> lib.so.1.2\nlib/lib.so -> lib.so.1\nreleases/v2/app.py\nreleases/shared/data\ncurrent -> releases/v2\ndata -> current/../shared/data\nself -> .\napp -> self/self/current/app.py\n",
        ),
        ("chained escape", "s2 -> .\nesc -> s2/s2/s2/s2/../../../..\n"),
        ("hops", "a/b/c/main.py\nhop1 -> a/b/c\na/b/c/hop2 -> ../../..\nout -> hop1/hop2/hop1/hop2/..\n"),
        ("parent of link target", "a/b/c\nl -> a/b\nx -> l/../..\n"),
        ("loop", "a -> b/x\nb -> a/y\n"),
        ("self loop", "a -> a\n"),
        ("beneath link", "sub/main.py\nlink -> sub\nlink/evil.py\n"),
        ("last component escape", "d/up -> ../..\nx -> d/up\n"),
        ("separators", "a\\b\\c.py\n.\\x -> a\\b\nC:/x\n/etc/passwd\n./\na//b/./c\n"),
        ("missing names", "gone -> nothere/../x\nout -> nothere/../../x\n"),
        ("dirs and files", "a/\na/b/\na/b/c.py\na/b -> .\n"),
        ("chain of 41", &(0..41).map(|i| format!("l{i} -> l{}\n", i + 1)).collect::<String>()),
    ] {
        write("package_path", name, text.as_bytes());
    }
}

fn trigger_paths() {
    for (name, text) in [
        ("nested", "/api/v2/users/42\n/api\n/api/v2\n/api/v2/users\n/other\n"),
        ("trailing slash", "/hello/\n/hello/\n/hello\n"),
        ("reserved", "/v1/functions\n/v1\n/V1/x\n/fn/x\n/healthz\n/2015-03-31/functions\n/openapi.json\n/v1x\n"),
        ("odd segments", "/a/./b/../c\n/a//b\n/a/../b\n/a b\n/a?b\n/~user/.well-known\n/a%2Fb\n"),
        ("root", "/\n/\n//\n/x\n"),
        ("unicode", "/caf\u{e9}/x\n/caf\u{e9}\n/\u{ff0f}x\n"),
    ] {
        write("trigger_path", name, text.as_bytes());
    }
}

fn http_events() {
    let token = format!("hth_{}", "ab12".repeat(16));
    let seed = |fields: &[&[u8]]| fields.join(&0u8);
    write(
        "http_event",
        "json post",
        &seed(&[
            b"POST",
            b"/hello/world?a=1&a=2&b=%20x",
            b"content-type: application/json\nuser-agent: curl/8\ncookie: a=1; b=2\nhost: fn.example.com",
            br#"{"name":"hearth"}"#,
            b"world",
            b"6f1c1d2e-0000-4000-8000-000000000000",
            br#"{"statusCode":201,"headers":{"x-custom":"y","x-hearth-cold-start":"true"},"cookies":["s=1"],"body":"created"}"#,
            b"",
            b"",
            b"",
        ]),
    );
    write(
        "http_event",
        "binary body and token",
        &seed(&[
            b"PUT",
            b"/upload",
            format!("content-type: image/png\nauthorization: Bearer {token}\nx-forwarded: t={token}").as_bytes(),
            b"\x89PNG\r\n\x1a\n\xff\xfe",
            b"",
            b"req",
            br#"{"statusCode":200,"isBase64Encoded":true,"body":"aGVsbG8=","multiValueHeaders":{"x-amz-function-error":["x"],"set-cookie":["a=1","b=2"]}}"#,
            b"application/octet-stream",
            b"",
            b"act",
        ]),
    );
    write(
        "http_event",
        "function error",
        &seed(&[
            b"GET",
            b"/",
            b"",
            b"",
            b"",
            b"bad\nid",
            br#"{"errorMessage":"secret detail","errorType":"ValueError"}"#,
            b"",
            b"Unhandled",
            b"e2",
        ]),
    );
    write(
        "http_event",
        "plain result",
        &seed(&[
            b"OPTIONS",
            b"http://host:8080/p?q",
            b"cookie: hth_x\nx-a: 1\nx-a: 2",
            b"a=1&b=2",
            b"p",
            b"r",
            b"not json at all",
            b"text/html",
            b"",
            b"t6",
        ]),
    );
    write(
        "http_event",
        "hop by hop headers",
        &seed(&[
            b"DELETE",
            b"/x",
            b"",
            b"",
            b"",
            b"r",
            br#"{"statusCode":"200","headers":{"connection":"close","transfer-encoding":"chunked","content-length":"5","x-hearth-request-id":"forged","X-Hearth-Function-Error":"no","upgrade":"h2c"}}"#,
            b"",
            b"",
            b"",
        ]),
    );
}

fn runtime_api() {
    const N: &str = "/2018-06-01/runtime/invocation/next";
    for (name, script) in [
        (
            "one invocation",
            format!(
                "GET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response\ncontent-type: application/json\n\n{{\"ok\":true}}\x1eGET {N}\n\n"
            ),
        ),
        (
            "error with cause",
            format!(
                "GET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/error\nlambda-runtime-function-error-type: Runtime.X\ncontent-type: application/vnd.aws.lambda.error.cause+json\n\n{{\"errorMessage\":\"m\",\"errorCause\":{{\"paths\":[]}}}}"
            ),
        ),
        (
            "init error then next",
            format!(
                "POST /2018-06-01/runtime/init/error\nlambda-runtime-function-error-type: Runtime.Init\n\n{{}}\x1ePOST /2018-06-01/runtime/init/error\n\n\x1eGET {N}\n\n"
            ),
        ),
        (
            "streamed with trailers",
            format!(
                "GET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response chunked\nlambda-runtime-function-response-mode: streaming\ncontent-type: application/vnd.awslambda.http-integration-response\n~lambda-runtime-function-error-type: Runtime.Stream\n~lambda-runtime-function-error-body: eyJlcnJvck1lc3NhZ2UiOiJ4In0=\n\n{{\"statusCode\":201,\"headers\":{{\"a\":\"b\"}}}}\0\0\0\0\0\0\0\0body"
            ),
        ),
        (
            "http integration",
            format!(
                "GET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response\ncontent-type: application/vnd.awslambda.http-integration-response\n\n{{\"statusCode\":200}}"
            ),
        ),
        (
            "wrong ids and twice",
            format!(
                "POST /2018-06-01/runtime/invocation/nope/response\n\nx\x1eGET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/nope/error\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response\n\n1\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response\n\n2"
            ),
        ),
        (
            "slots",
            format!(
                "slots=2\nGET {N}\n\n\x1eGET {N}\n\n\x1eGET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response\n\nok\x1eGET {N}\n\n"
            ),
        ),
        (
            "truncated and too large",
            format!(
                "GET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response truncate\n\npartial\x1eGET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/error big\n\n\x1eGET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response chunked truncate\n\nxx"
            ),
        ),
        (
            "bad mode and odd requests",
            format!(
                "GET {N}\n\n\x1ePOST /2018-06-01/runtime/invocation/{{id}}/response\nlambda-runtime-function-response-mode: bogus\n\n\x1eHEAD {N}?x=1\n\n\x1eDELETE /2018-06-01/ping\n\n\x1eGET /2018-06-01/ping\n\n\x1ePATCH /2018-06-01/runtime/invocation/%2e%2e/response\n\n"
            ),
        ),
    ] {
        write("runtime_api", name, script.as_bytes());
    }
}

fn main() {
    packages();
    package_paths();
    trigger_paths();
    http_events();
    runtime_api();
}
