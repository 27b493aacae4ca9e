//! The validation rules of this crate as the OpenAPI document states them: patterns, lengths
//! and ranges built from the same constants the validators use, so the document cannot
//! promise what the server refuses (or refuse what it accepts). Used through
//! `#[schema(schema_with = ...)]` and `#[param(schema_with = ...)]`.
//!
//! Patterns are ECMA-262 regular expressions, as JSON Schema reads them. Where Rust's
//! `char::is_whitespace`/`is_control` decide, the classes below list the same code points.

use utoipa::openapi::schema::{
    AllOf, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};

use crate::{Limit, RESERVED_ENV_NAMES, RESERVED_PATH_PREFIXES, Runtime, environment, limits};

/// Code points Rust's `char::is_control` matches (Unicode `Cc`).
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// Code points Rust's `char::is_whitespace` matches (Unicode `White_Space`).
const WHITESPACE: &str = r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A string that may be `null`.
fn nullable(t: Type) -> SchemaType {
    SchemaType::from_iter([t, Type::Null])
}

/// `"get"` → `"[Gg][Ee][Tt]"`: ECMA-262 has no inline case-insensitive flag.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            c if c.is_ascii_alphabetic() => format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
            c if c.is_ascii_digit() || c == '-' => c.to_string(),
            c => format!("\\{c}"),
        })
        .collect()
}

impl Limit {
    /// An optional integer within this limit, with its default.
    pub fn schema(&self, about: &str) -> Schema {
        ObjectBuilder::new()
            .schema_type(nullable(Type::Integer))
            .minimum(Some(self.min))
            .maximum(Some(self.max))
            .default(Some(self.default.into()))
            .description(Some(format!("{about}, {}..={}, default {}.", self.min, self.max, self.default)))
            .build()
            .into()
    }
}

pub fn memory_mb() -> Schema {
    limits::MEMORY_MB.schema("Memory size in MB")
}

pub fn timeout_s() -> Schema {
    limits::TIMEOUT_S.schema("Timeout in seconds")
}

pub fn async_retries() -> Schema {
    limits::ASYNC_RETRIES.schema("Deliveries of an asynchronous invocation after one that failed with a function error")
}

pub fn max_event_age_s() -> Schema {
    limits::MAX_EVENT_AGE_S.schema("Seconds an asynchronous invocation may wait for a successful delivery")
}

pub fn max_queued_events() -> Schema {
    limits::MAX_QUEUED_EVENTS
        .schema("Asynchronous invocations queued or running at once (past it, 429 `EventQueueFull`)")
}

/// What a trigger invokes: `NAME`, `NAME:VERSION` or `NAME:ALIAS`.
pub fn target() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{}(?::(?:{}))?$", crate::FunctionName::PATTERN, version_alternatives())))
        .examples([serde_json::json!("hello"), serde_json::json!("hello:live")])
        .description(Some(
            "The function, optionally with a version number or alias: `NAME`, `NAME:VERSION` or `NAME:ALIAS`.",
        ))
        .build()
        .into()
}

/// A destination function: a function name (never the function's own: the server refuses
/// that), or `null` for none. Its example names another function than the examples' `hello`.
pub fn destination() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .pattern(Some(format!("^{}(?::(?:{}))?$", crate::FunctionName::PATTERN, version_alternatives())))
        .examples([serde_json::json!("audit")])
        .description(Some(
            "A function (`NAME`, `NAME:VERSION` or `NAME:ALIAS`) that gets the record of each asynchronous \
             invocation's outcome (not the function itself).",
        ))
        .build()
        .into()
}

/// Request ids one call names (a redrive's): at most 1,000, each 1 to 128 characters.
pub fn request_ids() -> Schema {
    let id = ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(128));
    ArrayBuilder::new().schema_type(nullable(Type::Array)).items(id).max_items(Some(1000)).build().into()
}

pub fn concurrency() -> Schema {
    limits::CONCURRENCY.schema("Concurrent requests one instance serves")
}

pub fn min_instances() -> Schema {
    limits::MIN_INSTANCES.schema("Instances kept ready at all times (0: scale to zero); at most `max_instances`")
}

pub fn max_instances() -> Schema {
    limits::MAX_INSTANCES.schema("Upper bound on instances; at least `min_instances`")
}

pub fn keep_alive_s() -> Schema {
    limits::KEEP_ALIVE_S.schema("Seconds an idle instance is kept warm")
}

pub fn ephemeral_storage_mb() -> Schema {
    limits::EPHEMERAL_STORAGE_MB.schema("Size of the writable `/tmp` in MB")
}

/// One character of a handler: neither whitespace nor a control character.
fn handler_char(also_not: &str) -> String {
    format!("[^{also_not}{CONTROL}{WHITESPACE}]")
}

/// `handler`: 1-128 characters, no whitespace or control characters.
pub fn handler() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .min_length(Some(1))
        .max_length(Some(limits::HANDLER_MAX_LEN))
        .pattern(Some(format!("^{}+$", handler_char(""))))
        .description(Some(
            "Entry point, e.g. `main.handler`: 1-128 characters without whitespace. Required for python3 and \
             nodejs, in the form `module.function`; `provided` defaults to `bootstrap`; for `wasm`, the module's path in the package \
             (default `main.wasm`).",
        ))
        .examples(["main.handler"])
        .build()
        .into()
}

/// The rule [`crate::FunctionSpec::validate`] applies across fields: python3 and nodejs need a
/// handler of the form `module.function` (the last `.` with something on both sides); a
/// wasm handler, if given, is a module's path in the package.
pub fn handler_by_runtime() -> Schema {
    let runtimes = |rs: &[Runtime]| {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(rs.iter().map(|r| r.as_str()))).build()
    };
    let module_function = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{}+\\.{}+$", handler_char(""), handler_char("."))))
        .build();
    let needs_handler = ObjectBuilder::new()
        .property("runtime", runtimes(&[Runtime::Python3, Runtime::Nodejs]))
        .property("handler", module_function)
        .required("runtime")
        .required("handler")
        .build();
    let has_default =
        ObjectBuilder::new().property("runtime", runtimes(&[Runtime::Provided])).required("runtime").build();
    // A module's path in the package: segments that do not start with `.` (so it cannot
    // leave the package).
    let segment = format!("[^/.{CONTROL}{WHITESPACE}][^/{CONTROL}{WHITESPACE}]*");
    let module_path = ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .pattern(Some(format!("^(?:{segment}/)*{segment}$")))
        .build();
    let wasm = ObjectBuilder::new()
        .property("runtime", runtimes(&[Runtime::Wasm]))
        .property("handler", module_path)
        .required("runtime")
        .build();
    OneOfBuilder::new().item(needs_handler).item(has_default).item(wasm).build().into()
}

/// `FunctionSpec` as sent: its fields, and the handler rule that depends on the runtime.
pub fn with_handler_rule(fields: RefOr<Schema>) -> Schema {
    let mut all = AllOf::new();
    all.items = vec![fields, handler_by_runtime().into()];
    Schema::AllOf(all)
}

/// `environment`: names `[A-Za-z][A-Za-z0-9_]*` that the platform does not reserve, values
/// without NUL, 4 KiB of names and values in all.
pub fn environment() -> Schema {
    let reserved = RESERVED_ENV_NAMES.join("|");
    let prefix = environment::RESERVED_PREFIX;
    let names = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^(?!{prefix})(?!(?:{reserved})$)[A-Za-z][A-Za-z0-9_]*$")))
        .build();
    let values = ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^[^\u0000]*$")).build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(names))
        .additional_properties(Some(AdditionalProperties::RefOr(values.into())))
        .description(Some(format!(
            "Environment variables for the function's instances. Names are letters, digits and `_`, \
             starting with a letter; names the platform sets (`{prefix}*`, `AWS_REGION`, `LAMBDA_TASK_ROOT`, ...) \
             are refused. Names and values take at most {} bytes in all.",
            limits::ENVIRONMENT_MAX_BYTES
        )))
        .build()
        .into()
}

pub fn description() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(limits::DESCRIPTION_MAX_LEN))
        .build()
        .into()
}

/// A token's name: 1-64 characters, no control characters.
pub fn token_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .min_length(Some(1))
        .max_length(Some(crate::api::TOKEN_NAME_MAX_LEN))
        .pattern(Some(format!("^[^{CONTROL}]+$")))
        .description(Some("A label for people, e.g. `ci-deploy` (default `token`)."))
        .build()
        .into()
}

/// The scopes of a new token: at least one.
pub fn token_scopes() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Scope")))
        .min_items(Some(1))
        .description(Some("At least one of `admin`, `deploy`, `invoke`, `read`."))
        .build()
        .into()
}

/// A trigger path: `/seg/seg`, segments of `[A-Za-z0-9._~-]` other than `.` and `..`, at most
/// 256 characters, trailing `/` ignored, and outside the platform's reserved prefixes (any
/// case).
pub fn trigger_path() -> Schema {
    let reserved: Vec<String> = RESERVED_PATH_PREFIXES.iter().map(|p| any_case(&p[1..])).collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(crate::trigger::TRIGGER_PATH_MAX_LEN))
        .pattern(Some(format!(r"^(?!/(?:{})(?:/|$))(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+)+/*$", reserved.join("|"))))
        .description(Some(format!(
            "Path prefix, e.g. `/hello`: requests to it or below it invoke the function. Not under {}.",
            RESERVED_PATH_PREFIXES.join(", ")
        )))
        .examples(["/hello"])
        .build()
        .into()
}

/// Trigger methods: known HTTP methods in any case (surrounding whitespace ignored).
pub fn trigger_methods() -> Schema {
    let names: Vec<String> = crate::trigger::KNOWN_METHODS.iter().map(|m| any_case(m)).collect();
    let method = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[{WHITESPACE}]*(?:{})[{WHITESPACE}]*$", names.join("|"))))
        .build();
    ArrayBuilder::new()
        .items(method)
        .description(Some(format!(
            "Allowed methods ({}, any case); absent or empty: any.",
            crate::trigger::KNOWN_METHODS.join(", ")
        )))
        .examples([serde_json::json!(["GET", "POST"])])
        .build()
        .into()
}

/// `s3://bucket/key`: a bucket of 3-63 lower-case letters, digits, `-` and `.`, and a key
/// that does not end with `/`.
pub fn object_url() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^s3://[a-z0-9.-]{3,63}/[\s\S]*[^/]$"))
        .description(Some(
            "`s3://bucket/key` of a zip in the S3-compatible store the server is configured with \
             (a server without S3 settings refuses it with 403 S3NotConfigured).",
        ))
        .examples(["s3://my-bucket/functions/hello.zip"])
        .build()
        .into()
}

/// What [`crate::VersionSelector`] parses, as alternatives of a regular expression (an
/// alias name spelled `latest` in any case is `$LATEST`).
pub fn version_alternatives() -> String {
    format!(
        r"\$LATEST|{}|{}|{}",
        any_case("latest"),
        crate::function::VERSION_NUMBER_PATTERN,
        crate::AliasName::PATTERN
    )
}

/// A version selector: `$LATEST` (or `latest`, any case), a version number, or an alias.
pub fn version() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^(?:{})$", version_alternatives())))
        .description(Some("A version number, an alias, or `$LATEST` (the default)."))
        .examples(["$LATEST", "1", "live"])
        .build()
        .into()
}

/// The body of `PATCH /v1/functions/{name}`, from `FunctionSpec`'s fields: every field
/// optional, each may be `null` (back to its default; `runtime` has none, and `handler` has
/// one only for some runtimes), and `environment` variables may be `null` (removed).
pub fn function_patch(spec_fields: &Schema) -> Schema {
    let Schema::Object(spec) = spec_fields else { return spec_fields.clone() };
    let mut patch = spec.clone();
    patch.required.clear();
    patch.description = Some(
        "A JSON merge patch of the function's configuration: the fields given replace the current ones, `null` \
         resets a field to its default, `environment` is merged variable by variable (`null` removes one)."
            .into(),
    );
    for (name, field) in patch.properties.iter_mut() {
        *field = match name.as_str() {
            "runtime" => continue,
            "environment" => {
                let Schema::Object(mut env) = environment() else { continue };
                let set_or_remove = OneOfBuilder::new()
                    .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^[^\u0000]*$")))
                    .item(ObjectBuilder::new().schema_type(Type::Null));
                env.additional_properties =
                    Some(Box::new(AdditionalProperties::RefOr(Schema::OneOf(set_or_remove.build()).into())));
                env.schema_type = nullable(Type::Object);
                Schema::Object(env).into()
            }
            _ => Schema::AnyOf(
                AnyOfBuilder::new().item(field.clone()).item(ObjectBuilder::new().schema_type(Type::Null)).build(),
            )
            .into(),
        };
    }
    Schema::Object(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_case_spells_each_letter_both_ways() {
        assert_eq!(any_case("v1"), "[Vv]1");
        assert_eq!(any_case("openapi.json"), r"[Oo][Pp][Ee][Nn][Aa][Pp][Ii]\.[Jj][Ss][Oo][Nn]");
    }
}
