//! Reading request bodies under a limit, and the JSON/query extractors' error mapping.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::ApiError;

/// Reads the whole body, failing with `too_large()` as soon as it passes `limit` bytes
/// (before buffering more than that).
pub async fn read_limited(body: Body, limit: u64, too_large: impl Fn(u64) -> ApiError) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request("IncompleteBody", format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let total = (buf.len() + data.len()) as u64;
            if total > limit {
                return Err(too_large(total));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
