//! How the Lambda API names a function: `name`, `name:qualifier`,
//! `123456789012:function:name[:qualifier]` or a full ARN, with a `Qualifier` query
//! parameter that wins over a qualifier in the name.

use hearth_types::{FunctionName, VersionSelector};

/// The function and version `decoded` (a path segment, already percent-decoded) and the
/// `Qualifier` parameter name. On failure, the message of the `ResourceNotFoundException`.
pub fn parse_function(decoded: &str, qualifier: Option<&str>) -> Result<(FunctionName, VersionSelector), String> {
    let not_found = |what: &str| format!("Function not found: {what}");
    let parts: Vec<&str> = decoded.split(':').collect();
    let (name, q) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        ["arn", "aws", "lambda", _, _, "function", name] | [_, "function", name] => (*name, None),
        ["arn", "aws", "lambda", _, _, "function", name, q] | [_, "function", name, q] => (*name, Some(*q)),
        _ => return Err(not_found(decoded)),
    };
    let name: FunctionName = name.parse().map_err(|_| not_found(decoded))?;
    let selector = |q: &str| {
        q.parse::<VersionSelector>()
            .map_err(|_| not_found(&format!("{decoded} (qualifier {q} is neither a version nor an alias name)")))
    };
    let in_name = q.map(selector).transpose()?;
    let selector = match qualifier {
        Some(q) => selector(q)?,
        None => in_name.unwrap_or(VersionSelector::Latest),
    };
    Ok((name, selector))
}

/// The `Qualifier` parameter of a raw query string.
pub fn qualifier_of(query: Option<&str>) -> Option<String> {
    query_param(query, "Qualifier")
}

/// One parameter of a raw query string, percent-decoded.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// The function reference in the path, as [`parse_function`] reads it.
pub fn function_ref_schema() -> utoipa::openapi::schema::Schema {
    let version = hearth_types::schema::version_alternatives();
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(format!(
            "^(?:arn:aws:lambda:[^:]*:[^:]*:function:|[^:]*:function:)?{}(?::(?:{version}))?$",
            FunctionName::PATTERN
        )))
        .description(Some("Name, `name:qualifier`, `account:function:name[:qualifier]` or a function ARN"))
        .examples(["hello"])
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arns_and_qualifiers() {
        let latest = VersionSelector::Latest;
        assert_eq!(parse_function("hello", None).unwrap().1, latest);
        assert_eq!(parse_function("hello:3", None).unwrap().1, VersionSelector::Number(3));
        assert_eq!(
            parse_function("arn:aws:lambda:us-east-1:000000000000:function:hello", None).unwrap().0.as_str(),
            "hello"
        );
        assert_eq!(parse_function("000000000000:function:hello:2", Some("$LATEST")).unwrap().1, latest);
        assert_eq!(parse_function("hello:prod", None).unwrap().1, VersionSelector::Alias("prod".parse().unwrap()));
        assert!(parse_function("hello:1x", None).unwrap_err().contains("neither a version nor an alias"));
        assert!(parse_function("a:b:c", None).is_err());
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(qualifier_of(Some("Qualifier=%24LATEST")), Some("$LATEST".into()));
        assert_eq!(query_param(Some("MaxItems=5&Marker=a%3Ab"), "Marker"), Some("a:b".into()));
        assert_eq!(query_param(Some("FunctionVersion"), "FunctionVersion"), Some(String::new()));
        assert_eq!(query_param(None, "x"), None);
    }
}
