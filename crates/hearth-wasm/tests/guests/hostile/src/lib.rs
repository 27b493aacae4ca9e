//! Each path is one attempt: `/fields` hoards header sets in the host, `/outgoing` sends an
//! HTTP request, `/tcp` opens a socket, `/file` reads the host's files, `/env` lists its
//! environment, `/random` asks the host for 64 MiB at once. The answer says what happened.

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

struct Handler;

wasip2::http::proxy::export!(Handler);

fn attempt(path: &str) -> String {
    match path {
        "/fields" => {
            let mut kept = Vec::new();
            loop {
                // Each set of headers lives in the host, not in this module's memory.
                match Fields::from_list(&[("x-hoard".to_owned(), vec![b'x'; 15_000])]) {
                    Ok(f) => kept.push(f),
                    Err(e) => return format!("refused after {}: {e:?}", kept.len()),
                }
            }
        }
        "/outgoing" => {
            let request = OutgoingRequest::new(Fields::new());
            let _ = request.set_scheme(Some(&Scheme::Http));
            let _ = request.set_authority(Some("127.0.0.1:9"));
            let _ = request.set_path_with_query(Some("/"));
            match wasip2::http::outgoing_handler::handle(request, None) {
                Err(e) => format!("denied: {e:?}"),
                Ok(future) => {
                    future.subscribe().block();
                    match future.get() {
                        Some(Ok(Err(e))) => format!("denied: {e:?}"),
                        Some(Ok(Ok(_))) => "SENT".to_owned(),
                        other => format!("odd: {other:?}"),
                    }
                }
            }
        }
        "/tcp" => match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => "CONNECTED".to_owned(),
            Err(e) => format!("denied: {e}"),
        },
        "/file" => match std::fs::read_to_string("/etc/passwd") {
            Ok(_) => "READ".to_owned(),
            Err(e) => format!("denied: {e}"),
        },
        "/env" => std::env::vars().map(|(k, _)| k).collect::<Vec<_>>().join(","),
        "/random" => {
            let bytes = wasip2::random::random::get_random_bytes(64 * 1024 * 1024);
            format!("GOT {}", bytes.len())
        }
        other => format!("unknown {other}"),
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let _ = matches!(request.method(), Method::Get);
        let path = request.path_with_query().unwrap_or_default();
        let answer = attempt(&path);
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the body, once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the body's stream");
        stream.blocking_write_and_flush(answer.as_bytes()).expect("written");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finished");
    }
}
