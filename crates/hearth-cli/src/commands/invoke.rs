//! `hearth invoke NAME [--data JSON|@FILE|@-] [--version N] [--log | --async]`.

use std::io::Read;

use anyhow::{Context, Result};
use hearth_agent::MAX_PAYLOAD_BYTES;

use super::client;
use crate::cli::InvokeArgs;
use crate::error::{CliError, usage};
use crate::output::print_json;

pub async fn run(args: InvokeArgs, json: bool) -> Result<()> {
    let payload = event(args.data.as_deref(), &mut std::io::stdin().lock())?;
    let c = client()?;
    if args.async_ {
        let accepted = c.invoke_async(&args.name, payload, args.version.as_deref()).await?;
        if json {
            return print_json(&accepted);
        }
        println!("{}", accepted.request_id);
        eprintln!("Queued; `hearth invocation get {}` follows it.", accepted.request_id);
        return Ok(());
    }
    let inv = c.invoke(&args.name, payload, args.version.as_deref()).await?;
    let log = match args.log {
        true => Some(c.logs(&args.name, 0, Some(&inv.request_id)).await?.lines),
        false => None,
    };
    let body = String::from_utf8_lossy(&inv.body).into_owned();
    if json {
        let result = serde_json::from_str::<serde_json::Value>(&body).unwrap_or(serde_json::Value::String(body));
        let mut out = serde_json::to_value(&inv)?;
        out["result"] = result;
        if let Some(lines) = &log {
            out["log"] = serde_json::to_value(lines)?;
        }
        print_json(&out)?;
    } else {
        for line in log.iter().flatten() {
            eprintln!("{}", line.message);
        }
        println!("{body}");
    }
    if let Some(kind) = inv.function_error {
        let message = format!("function {} failed with {kind} (request {})", args.name, inv.request_id);
        return Err(CliError::failed("FunctionError", message).into());
    }
    Ok(())
}

/// The event `--data` gives (inline JSON, `@FILE`, or `@-` for stdin; `{}` without it),
/// read up to the payload limit and checked to be JSON: anything else is a usage error.
fn event(data: Option<&str>, stdin: &mut dyn Read) -> Result<Vec<u8>> {
    let (bytes, from) = match data {
        None => return Ok(b"{}".to_vec()),
        Some("@-") => (read_bounded(stdin).context("cannot read the event from stdin")?, "stdin".to_owned()),
        Some(d) if d.starts_with('@') => {
            let path = &d[1..];
            let file = std::fs::File::open(path).with_context(|| format!("--data: cannot read {path}"))?;
            (read_bounded(&mut &file).with_context(|| format!("--data: cannot read {path}"))?, path.to_owned())
        }
        Some(d) => (d.as_bytes().to_vec(), "the text given".to_owned()),
    };
    if bytes.len() > MAX_PAYLOAD_BYTES {
        usage!("RequestTooLarge", "--data: the event from {from} is over the {MAX_PAYLOAD_BYTES}-byte limit");
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        usage!("InvalidJson", "--data: the event from {from} is not valid JSON: {e}");
    }
    Ok(bytes)
}

/// Reads at most one byte past the payload limit: enough to tell it is too large.
fn read_bounded(source: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    source.take(MAX_PAYLOAD_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(data: Option<&str>, stdin: &[u8]) -> CliError {
        let err = event(data, &mut &stdin[..]).unwrap_err();
        err.downcast_ref::<CliError>().cloned().unwrap_or_else(|| panic!("not a CliError: {err:#}"))
    }

    #[test]
    fn the_event_is_json_from_text_a_file_or_stdin() {
        assert_eq!(event(None, &mut &b""[..]).unwrap(), b"{}");
        assert_eq!(event(Some("@-"), &mut &br#"{"a": 1}"#[..]).unwrap(), br#"{"a": 1}"#);
        assert_eq!(event(Some("[1, 2]"), &mut &b""[..]).unwrap(), b"[1, 2]");
        let e = refusal(Some("{\"a\": }"), b"");
        assert_eq!((e.code, e.usage), ("InvalidJson", true));
        assert!(e.message.starts_with("--data") && e.message.contains("line 1 column 7"), "{}", e.message);
        let e = refusal(Some("@-"), b"not json");
        assert!(e.message.contains("stdin") && e.message.contains("line 1 column 2"), "{}", e.message);
    }

    #[test]
    fn stdin_is_read_no_further_than_past_the_limit() {
        /// An endless stream of spaces, counting what is read.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf.fill(b' ');
                self.0 += buf.len();
                Ok(buf.len())
            }
        }
        let mut endless = Endless(0);
        let err = event(Some("@-"), &mut endless).unwrap_err();
        assert_eq!(err.downcast_ref::<CliError>().unwrap().code, "RequestTooLarge");
        assert_eq!(endless.0, MAX_PAYLOAD_BYTES + 1, "read only one byte past the limit");
    }
}
