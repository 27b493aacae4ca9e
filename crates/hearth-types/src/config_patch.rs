//! Partial updates of a function's configuration: a JSON merge patch (RFC 7396) over the
//! configuration it has now, so that an update changes only what it names.

use serde_json::{Map, Value};

use crate::{FunctionConfig, FunctionSpec};

/// Why a patch cannot apply.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("a patch is a JSON object of the fields to change (null resets a field to its default)")]
    NotAnObject,
    #[error("the patched configuration is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// RFC 7396: each member of `patch` replaces the member of `target` of the same name, `null`
/// removes it, and an object patches an object member by the same rules.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else { unreachable!("made an object above") };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

impl FunctionSpec {
    /// The spec that validates to `config` (no code).
    pub fn from_config(config: &FunctionConfig) -> FunctionSpec {
        let value = serde_json::to_value(config).expect("a configuration is plain data");
        serde_json::from_value(value).expect("every configuration field is a spec field")
    }

    /// The spec `patch` makes of `current`: a field in the patch replaces the current one,
    /// `null` resets it to its default, `environment` is merged variable by variable (a
    /// `null` value removes the variable), and `code_sha256` passes through. Not yet
    /// validated.
    pub fn patched(current: &FunctionConfig, patch: &Value) -> Result<FunctionSpec, PatchError> {
        if !patch.is_object() {
            return Err(PatchError::NotAnObject);
        }
        let mut spec = serde_json::to_value(FunctionSpec::from_config(current))?;
        merge_patch(&mut spec, patch);
        Ok(serde_json::from_value(spec)?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(spec: Value) -> FunctionConfig {
        serde_json::from_value::<FunctionSpec>(spec).unwrap().validate().unwrap()
    }

    #[test]
    fn every_configuration_round_trips_through_its_spec() {
        let c = config(json!({"runtime": "nodejs", "handler": "index.handler", "memory_mb": 256, "timeout_s": 9,
            "environment": {"A": "1"}, "concurrency": 4, "min_instances": 1, "max_instances": 7, "keep_alive_s": 30,
            "ephemeral_storage_mb": 1024, "keep_alive_policy": "adaptive", "network": "egress", "description": "d"}));
        assert_eq!(FunctionSpec::from_config(&c).validate().unwrap(), c);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let c = config(json!({"runtime": "python3", "handler": "main.handler", "memory_mb": 256,
            "environment": {"KEEP": "1", "DROP": "2"}, "max_instances": 5}));
        let patch = json!({"timeout_s": 10, "environment": {"NEW": "3", "DROP": null}, "max_instances": null});
        let p = FunctionSpec::patched(&c, &patch).unwrap().validate().unwrap();
        assert_eq!((p.timeout_s, p.memory_mb, p.handler.as_str()), (10, 256, "main.handler"));
        let env: Vec<_> = p.environment.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(env, ["KEEP=1", "NEW=3"]);
        assert_eq!(i64::from(p.max_instances), crate::limits::MAX_INSTANCES.default);
        assert_eq!(p.runtime, c.runtime);
    }

    #[test]
    fn a_patch_is_refused_when_it_is_not_an_object_or_names_no_field() {
        let c = config(json!({"runtime": "python3", "handler": "main.handler"}));
        assert!(matches!(FunctionSpec::patched(&c, &json!([1])), Err(PatchError::NotAnObject)));
        assert!(matches!(FunctionSpec::patched(&c, &json!({"memroy_mb": 1})), Err(PatchError::Invalid(_))));
        assert!(matches!(FunctionSpec::patched(&c, &json!({"runtime": null})), Err(PatchError::Invalid(_))));
        assert!(matches!(FunctionSpec::patched(&c, &json!({"memory_mb": "big"})), Err(PatchError::Invalid(_))));
    }
}
