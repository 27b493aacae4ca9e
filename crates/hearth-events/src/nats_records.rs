//! The event a NATS trigger's function gets: `{"Records": [...]}`, one record per message,
//! shaped as Lambda's SQS records are (a `body` that is the message as text, base64 when it
//! is not UTF-8), so a handler reads `json.loads(record["body"])` as it would on Lambda. The
//! function may answer `{"batchItemFailures": [{"itemIdentifier": MESSAGE_ID}]}` to fail only
//! some messages of a batch (Lambda's partial batch response); those are delivered again.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// Bytes a record adds around its body and headers, at most (the names and numbers).
const RECORD_OVERHEAD: usize = 512;

/// A received message, as its record shows it.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Vec<(String, Vec<String>)>,
    /// `STREAM:SEQUENCE` for a JetStream message; the `Nats-Msg-Id` header or a fresh id for
    /// a core one. What `batchItemFailures` names.
    pub message_id: String,
    pub jetstream: Option<JetStreamInfo>,
    /// When the server got it from its publisher (JetStream), or when it arrived here.
    pub published: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct JetStreamInfo {
    pub stream: String,
    pub consumer: String,
    pub sequence: u64,
    pub delivered: u64,
}

impl Message {
    /// Its record.
    pub fn record(&self) -> Value {
        let (body, base64) = match std::str::from_utf8(&self.payload) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(&self.payload), true),
        };
        let headers: Map<String, Value> =
            self.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        let mut r = json!({
            "eventSource": "hearth:nats",
            "messageId": self.message_id,
            "subject": self.subject,
            "body": body,
            "isBase64Encoded": base64,
            "headers": headers,
            "timestamp": self.published.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Some(js) = &self.jetstream {
            r["stream"] = js.stream.clone().into();
            r["consumer"] = js.consumer.clone().into();
            r["sequence"] = js.sequence.into();
            r["deliveryCount"] = js.delivered.into();
        }
        r
    }

    /// An upper bound of its record's size, in bytes, without building it: the body as
    /// base64 or JSON-escaped text (six bytes per byte at worst), headers likewise.
    pub fn record_size_bound(&self) -> usize {
        let escaped = |n: usize| n.saturating_mul(6);
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| escaped(k.len()) + v.iter().map(|v| escaped(v.len()) + 3).sum::<usize>() + 6)
            .sum();
        RECORD_OVERHEAD + escaped(self.payload.len()) + headers + escaped(self.subject.len() + self.message_id.len())
    }
}

/// The event of `records`, and its size.
pub fn event(records: Vec<Value>) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({ "Records": records })).expect("a JSON value serialises"))
}

/// Splits messages into batches of at most `batch` messages whose event stays within
/// `max_bytes`; a message whose record alone may not fit is returned apart (it cannot be
/// delivered: it goes to the dead-letter list without its body).
pub fn batches(messages: Vec<Message>, batch: usize, max_bytes: usize) -> (Vec<Vec<Message>>, Vec<Message>) {
    let (mut out, mut too_large) = (Vec::new(), Vec::new());
    let mut current: Vec<Message> = Vec::new();
    let mut size = 16;
    for m in messages {
        let bound = m.record_size_bound();
        if bound + 16 > max_bytes {
            // The bound is loose: the exact record may fit.
            let exact = serde_json::to_vec(&m.record()).map_or(usize::MAX, |v| v.len());
            if exact + 16 > max_bytes {
                too_large.push(m);
                continue;
            }
        }
        let bound = bound.min(max_bytes - 16);
        if !current.is_empty() && (current.len() >= batch.max(1) || size + bound > max_bytes) {
            out.push(std::mem::take(&mut current));
            size = 16;
        }
        size += bound + 1;
        current.push(m);
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, too_large)
}

/// The record kept for a message too large to deliver: everything but its body.
pub fn without_body(m: &Message, max_bytes: usize) -> Bytes {
    let mut r = m.record();
    r["body"] = Value::String(String::new());
    r["bodyBytes"] = m.payload.len().into();
    r["bodyOmitted"] = format!("the message's record is over the {max_bytes}-byte limit of an event").into();
    let mut headers = Map::new();
    r["headers"] = Value::Object(std::mem::take(&mut headers));
    event(vec![r])
}

/// The message ids a function's answer names as failed (`batchItemFailures`), if it is a
/// partial batch response; as on Lambda, an entry without an identifier of the batch (`ids`)
/// fails the whole batch.
pub fn failed_items(answer: &[u8], ids: &[&str]) -> Option<Vec<String>> {
    let doc: Value = serde_json::from_slice(answer).ok()?;
    let failures = doc.get("batchItemFailures")?.as_array()?;
    let named: Option<Vec<String>> = failures
        .iter()
        .map(|f| f.get("itemIdentifier")?.as_str().filter(|id| ids.contains(id)).map(str::to_owned))
        .collect();
    Some(named.unwrap_or_else(|| ids.iter().map(|id| (*id).to_owned()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, payload: &[u8]) -> Message {
        Message {
            subject: "orders.eu".into(),
            payload: Bytes::copy_from_slice(payload),
            headers: vec![("Trace".into(), vec!["t-1".into()])],
            message_id: id.into(),
            jetstream: None,
            published: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn records_carry_text_or_base64_and_the_stream_position() {
        let r = message("a", br#"{"id": 7}"#).record();
        assert_eq!((r["body"].as_str(), r["isBase64Encoded"].as_bool()), (Some(r#"{"id": 7}"#), Some(false)));
        assert_eq!((r["subject"].as_str(), r["headers"]["Trace"][0].as_str()), (Some("orders.eu"), Some("t-1")));
        assert!(r.get("stream").is_none());
        let mut m = message("ORDERS:9", &[0xff, 0x00, 0x01]);
        m.jetstream = Some(JetStreamInfo { stream: "ORDERS".into(), consumer: "c".into(), sequence: 9, delivered: 2 });
        let r = m.record();
        assert_eq!((r["body"].as_str(), r["isBase64Encoded"].as_bool()), (Some("/wAB"), Some(true)));
        assert_eq!((r["sequence"].as_u64(), r["deliveryCount"].as_u64()), (Some(9), Some(2)));
        let e: Value = serde_json::from_slice(&event(vec![r])).unwrap();
        assert_eq!(e["Records"][0]["messageId"], "ORDERS:9");
    }

    #[test]
    fn batches_hold_to_the_count_and_the_byte_limit() {
        let ms: Vec<Message> = (0..5).map(|i| message(&i.to_string(), b"x")).collect();
        let (b, big) = batches(ms, 2, 1 << 20);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(big.is_empty());
        // Every record is bounded; an event of them stays under the limit, whatever they hold.
        let hostile: Vec<Message> = (0..10).map(|i| message(&i.to_string(), &[b'\x01'; 2000])).collect();
        let (b, big) = batches(hostile, 10, 30_000);
        assert!(big.is_empty() && b.len() > 1, "{}", b.len());
        for group in b {
            let n = event(group.iter().map(Message::record).collect()).len();
            assert!(n <= 30_000, "{n}");
        }
        let (b, big) = batches(vec![message("big", &[b'a'; 5000]), message("small", b"1")], 10, 4000);
        assert_eq!((b.len(), big.len(), big[0].message_id.as_str()), (1, 1, "big"));
        let kept = without_body(&big[0], 4000);
        assert!(kept.len() < 1000);
        let doc: Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(doc["Records"][0]["bodyBytes"], 5000);
    }

    #[test]
    fn partial_batch_responses_name_the_failed_messages() {
        let ids = ["S:3", "S:4", "S:5"];
        let answer = br#"{"batchItemFailures": [{"itemIdentifier": "S:3"}, {"itemIdentifier": "S:5"}]}"#;
        assert_eq!(failed_items(answer, &ids), Some(vec!["S:3".to_owned(), "S:5".to_owned()]));
        assert_eq!(failed_items(br#"{"batchItemFailures": []}"#, &ids), Some(vec![]));
        // An identifier that is missing, not a string or not of the batch fails all of it.
        for bad in [r#"[{"itemIdentifier": 4}]"#, r#"[{}]"#, r#"["x"]"#, r#"[{"itemIdentifier": "S:9"}]"#] {
            let answer = format!(r#"{{"batchItemFailures": {bad}}}"#);
            assert_eq!(failed_items(answer.as_bytes(), &ids).map(|v| v.len()), Some(3), "{bad}");
        }
        assert_eq!(failed_items(b"\"ok\"", &ids), None);
        assert_eq!(failed_items(b"not json", &ids), None);
    }
}
