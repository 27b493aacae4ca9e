//! An HTTP function: answers `GET /...` with what it saw, echoes the body of a `POST`, and
//! sets a status, headers and a cookie of its own.

use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Handler;

wasip2::http::proxy::export!(Handler);

impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            other => format!("{other:?}"),
        };
        let path = request.path_with_query().unwrap_or_default();
        let headers = request.headers().entries();
        let mut body = Vec::new();
        if let Ok(incoming) = request.consume()
            && let Ok(stream) = incoming.stream()
        {
            while let Ok(chunk) = stream.blocking_read(64 * 1024) {
                body.extend_from_slice(&chunk);
            }
        }
        eprintln!("{method} {path}: {} header(s), {} byte(s)", headers.len(), body.len());
        let (status, content_type, answer) = if method == "POST" {
            (201, "application/octet-stream", body)
        } else {
            let agent = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let text = format!("{{\"method\":\"{method}\",\"path\":{path:?},\"user_agent\":{agent:?}}}");
            (200, "application/json", text.into_bytes())
        };
        let fields = Fields::from_list(&[
            ("content-type".to_owned(), content_type.as_bytes().to_vec()),
            ("x-served-by".to_owned(), b"wasm-http".to_vec()),
            ("set-cookie".to_owned(), b"seen=1; Path=/".to_vec()),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(fields);
        response.set_status_code(status).expect("a valid status");
        let outgoing = response.body().expect("the body, once");
        ResponseOutparam::set(out, Ok(response));
        let stream = outgoing.write().expect("the body's stream, once");
        for chunk in answer.chunks(4096) {
            stream.blocking_write_and_flush(chunk).expect("the body is written");
        }
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("the body is finished");
    }
}
