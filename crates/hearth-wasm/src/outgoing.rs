//! `wasi:http/outgoing-handler`: functions have no network, so every outgoing request is
//! refused as denied (the guest sees `HTTP-request-denied`), before any connection.

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Default)]
pub(crate) struct NoOutgoingRequests;

type Sent = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

impl WasiHttpHooks for NoOutgoingRequests {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
