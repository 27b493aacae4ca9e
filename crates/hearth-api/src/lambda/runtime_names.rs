//! Lambda's runtime identifiers mapped to Hearth's runtimes. Hearth runs the host's
//! interpreter of each language, so `python3.11` and `python3.12` both mean CPython 3.

use hearth_types::Runtime;

use super::LambdaError;

/// The Hearth runtime of a Lambda runtime identifier (or of Hearth's own name).
pub fn hearth_runtime(name: &str) -> Result<Runtime, LambdaError> {
    if let Ok(r) = name.parse::<Runtime>() {
        return Ok(r);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mapped = if name.strip_prefix("python3.").is_some_and(digits) {
        Some(Runtime::Python3)
    } else if name.strip_prefix("nodejs").and_then(|v| v.strip_suffix(".x")).is_some_and(digits) {
        Some(Runtime::Nodejs)
    } else if matches!(name, "provided.al2" | "provided.al2023") {
        Some(Runtime::Provided)
    } else {
        None
    };
    mapped.ok_or_else(|| {
        LambdaError::invalid(format!(
            "Runtime {name:?} is not supported by this server: use python3.x (CPython 3), nodejs*.x (Node.js), \
             provided, provided.al2 or provided.al2023 (a bootstrap executable), or Hearth's names python3, nodejs, provided, wasm"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_names_map_to_hearths() {
        for (lambda, hearth) in [
            ("python3.11", Runtime::Python3),
            ("python3.12", Runtime::Python3),
            ("nodejs20.x", Runtime::Nodejs),
            ("nodejs22.x", Runtime::Nodejs),
            ("provided.al2023", Runtime::Provided),
            ("provided.al2", Runtime::Provided),
            ("provided", Runtime::Provided),
            ("python3", Runtime::Python3),
            ("wasm", Runtime::Wasm),
        ] {
            assert_eq!(hearth_runtime(lambda).unwrap(), hearth, "{lambda}");
        }
        for refused in ["java21", "python2.7", "python3.", "nodejs.x", "nodejs20", "go1.x", "ruby3.3", ""] {
            let e = hearth_runtime(refused).unwrap_err();
            assert_eq!(e.error_type, "InvalidParameterValueException", "{refused}");
        }
    }
}
