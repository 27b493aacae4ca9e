use std::collections::BTreeMap;

use crate::{ValidationError, limits};

/// Variables the platform sets for every instance (Lambda's reserved set plus Hearth's own
/// prefix); a function may not override them. Unlike on Lambda, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` are the function's to set: Hearth has no
/// execution roles, so this is how a function gets AWS credentials.
pub const RESERVED_ENV_NAMES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Names starting with this are the platform's.
pub(crate) const RESERVED_PREFIX: &str = "HEARTH_";

/// Checks names (`[A-Za-z][A-Za-z0-9_]*`), reserved names and the total size.
pub fn validate_environment(env: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let mut total = 0;
    for (key, value) in env {
        let mut chars = key.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ValidationError::InvalidEnvName(key.clone()));
        }
        if RESERVED_ENV_NAMES.contains(&key.as_str()) || key.starts_with(RESERVED_PREFIX) {
            return Err(ValidationError::ReservedEnvName(key.clone()));
        }
        if value.contains('\0') {
            return Err(ValidationError::InvalidEnvName(key.clone()));
        }
        total += key.len() + value.len();
    }
    if total > limits::ENVIRONMENT_MAX_BYTES {
        return Err(ValidationError::EnvironmentTooLarge { got: total, max: limits::ENVIRONMENT_MAX_BYTES });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str, v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(k.to_owned(), v.to_owned())])
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        assert_eq!(validate_environment(&env("AWS_REGION", "x")).unwrap_err().code(), "ReservedEnvironmentVariable");
        assert_eq!(validate_environment(&env("HEARTH_X", "x")).unwrap_err().code(), "ReservedEnvironmentVariable");
        assert_eq!(validate_environment(&env("1X", "x")).unwrap_err().code(), "InvalidEnvironmentVariable");
        assert_eq!(validate_environment(&env("A-B", "x")).unwrap_err().code(), "InvalidEnvironmentVariable");
        assert_eq!(validate_environment(&env("BIG", &"x".repeat(5000))).unwrap_err().code(), "EnvironmentTooLarge");
        assert!(validate_environment(&env("GREETING", "hi")).is_ok());
        assert!(validate_environment(&env("AWS_ACCESS_KEY_ID", "AKIA")).is_ok(), "credentials are the function's");
    }
}
