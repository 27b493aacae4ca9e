//! The record an outcome's destination function gets: the shape of Lambda's destination
//! invocation records, so handlers written for Lambda destinations read it unchanged.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hearth_types::FunctionName;
use serde_json::{Value, json};

/// Destination hops after which an outcome is kept in the dead-letter list (failures) or
/// not forwarded (successes) instead: functions that are each other's destinations stop.
pub const MAX_CHAIN: u32 = 16;

/// The event the record is about.
pub struct Origin<'a> {
    pub request_id: &'a str,
    pub function: &'a FunctionName,
    /// The version number or alias it was sent to; `None`: `$LATEST`.
    pub qualifier: Option<&'a str>,
    pub attempts: u32,
}

/// How the event ended, as the record says it.
pub struct Outcome<'a> {
    /// `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: &'a str,
    pub executed_version: Option<u32>,
    /// The error type when it failed.
    pub function_error: Option<&'a str>,
    /// The function's answer: its result, or its error document.
    pub response: &'a [u8],
}

/// JSON when it parses as JSON, else the text.
fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn response_payload(bytes: &[u8]) -> Value {
    if bytes.len() <= hearth_types::EVENT_TEXT_MAX_BYTES {
        return json_or_text(bytes);
    }
    let (text, _) = hearth_types::event_text(bytes);
    Value::String(format!("{text}[truncated]"))
}

/// The destination event for `event`, whose payload was `payload`.
pub fn record(region: &str, event: &Origin<'_>, payload: &[u8], outcome: Outcome<'_>, at: DateTime<Utc>) -> Bytes {
    let qualifier = event.qualifier.unwrap_or("$LATEST");
    let arn = function_arn(region, event.function, qualifier);
    let mut response_context = json!({
        "statusCode": 200,
        "executedVersion": outcome.executed_version.map_or_else(|| "$LATEST".to_owned(), |v| v.to_string()),
    });
    if let Some(kind) = outcome.function_error {
        response_context["functionError"] = Value::String(kind.to_owned());
    }
    let doc = json!({
        "version": "1.0",
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": arn,
            "condition": outcome.condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": json_or_text(payload),
        "responseContext": response_context,
        // The response is kept as results are (256 KiB); the request payload is at most 1 MiB.
        "responsePayload": response_payload(outcome.response),
    });
    Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serialises"))
}

fn function_arn(region: &str, function: &FunctionName, qualifier: &str) -> String {
    format!("arn:aws:lambda:{region}:000000000000:function:{function}:{qualifier}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_has_lambdas_shape() {
        let at = Utc::now();
        let function: FunctionName = "orders".parse().unwrap();
        let event = Origin { request_id: "r-1", function: &function, qualifier: None, attempts: 3 };
        let outcome = Outcome {
            condition: "RetriesExhausted",
            executed_version: Some(4),
            function_error: Some("Unhandled"),
            response: br#"{"errorMessage": "boom"}"#,
        };
        let doc: Value = serde_json::from_slice(&record("eu-west-1", &event, br#"{"id": 7}"#, outcome, at)).unwrap();
        assert_eq!(
            doc["requestContext"]["functionArn"],
            "arn:aws:lambda:eu-west-1:000000000000:function:orders:$LATEST"
        );
        assert_eq!(doc["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(doc["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(doc["requestPayload"]["id"], 7);
        assert_eq!(doc["responseContext"]["executedVersion"], "4");
        assert_eq!(doc["responseContext"]["functionError"], "Unhandled");
        assert_eq!(doc["responsePayload"]["errorMessage"], "boom");
        let text = record(
            "r",
            &event,
            b"not json",
            Outcome { condition: "Success", executed_version: None, function_error: None, response: b"ok" },
            at,
        );
        let doc: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!((doc["requestPayload"].as_str(), doc["responsePayload"].as_str()), (Some("not json"), Some("ok")));
        assert!(doc["responseContext"].get("functionError").is_none());
    }
}
