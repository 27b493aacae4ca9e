pub mod aliases;
pub mod code;
pub mod functions;
pub mod system;
pub mod tokens;
pub mod triggers;

use hearth_types::FunctionName;

use crate::ApiError;

/// Parses a `{name}` path segment.
pub(crate) fn function_name(raw: &str) -> Result<FunctionName, ApiError> {
    Ok(raw.parse::<FunctionName>()?)
}
