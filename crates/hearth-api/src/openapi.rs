use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::lambda::manage;
use crate::routes::{aliases, code, functions, system, tokens, triggers};

/// The control plane's part of the API description, generated from the handlers. The
/// gateway adds its routes and serves the whole document (`hearth_server::openapi`), made
/// with [`document_with`].
#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth API", description = "Control plane of Hearth, a self-hostable Function-as-a-Service platform."),
    paths(
        functions::put_function, functions::patch_function, functions::list_functions, functions::get_function,
        functions::delete_function, functions::list_versions,
        aliases::put_alias, aliases::list_aliases, aliases::get_alias, aliases::delete_alias,
        code::put_code, code::get_code, code::upload_package,
        tokens::create_token, tokens::list_tokens, tokens::delete_token, tokens::whoami,
        triggers::create_trigger, triggers::list_triggers, triggers::delete_trigger,
        system::healthz,
        manage::list_functions, manage::get_function, manage::get_configuration, manage::create_function,
        manage::update_configuration, manage::update_code, manage::delete_function, manage::publish_version,
        manage::list_versions,
    ),
    components(schemas(crate::ApiErrorBody)),
    modifiers(&BearerAuth, &HandlerRule),
    tags(
        (name = "functions", description = "Functions and their versions"),
        (name = "code", description = "Code packages"),
        (name = "tokens", description = "API tokens"),
        (name = "triggers", description = "HTTP and cron triggers"),
        (name = "invoke", description = "Invoking functions and their instances"),
        (name = "system", description = "Health and API description"),
        (name = "lambda", description = "AWS Lambda's management API (2015-03-31), for AWS SDKs and the AWS CLI with `--endpoint-url`; a Hearth token is the access key id"),
    )
)]
pub struct ApiDoc;

/// The whole document: the control plane's operations, `more` (the gateway's), and the
/// responses every operation of a kind shares ([`CommonResponses`]).
pub fn document_with(more: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(more);
    CommonResponses.modify(&mut doc);
    doc
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `FunctionSpec` with the rule across its fields that the derive cannot state: python3 and
/// nodejs need a `module.function` handler (`hearth_types::schema::handler_by_runtime`).
struct HandlerRule;

impl Modify for HandlerRule {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        if let Some(fields) = components.schemas.remove("FunctionSpec") {
            components.schemas.insert("FunctionSpec".into(), hearth_types::schema::with_handler_rule(fields).into());
        }
    }
}

/// Responses that come from the layers around the handlers rather than the handlers, added to
/// every operation whose annotation does not name them: 401 and 403 where a token is needed
/// (the `Caller` extractor and its scope check), and 503 `ServerBusy` where a body is read
/// (the listener's budget of buffered bodies, `hearth_server::serve`).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |schema: &str| {
            ContentBuilder::new()
                .schema(Some(RefOr::<utoipa::openapi::schema::Schema>::Ref(Ref::from_schema_name(schema))))
                .build()
        };
        let unauthorized = ResponseBuilder::new()
            .description("No bearer token (`MissingToken`), or one that is not valid (`InvalidToken`)")
            .header("WWW-Authenticate", HeaderBuilder::new().description(Some("`Bearer`")).build())
            .content("application/json", error("ApiErrorBody"))
            .build();
        let forbidden = ResponseBuilder::new()
            .description("The token lacks the scope this operation needs (`InsufficientScope`)")
            .content("application/json", error("ApiErrorBody"))
            .build();
        let busy = ResponseBuilder::new()
            .description("Too many request bodies are being received at once (`ServerBusy`); retry later")
            .content("application/json", error("ApiErrorBody"))
            .build();
        // The Lambda API answers the same refusals in Lambda's shape.
        let lambda_unauthorized = ResponseBuilder::new()
            .description("No credentials (`MissingAuthenticationTokenException`)")
            .content("application/json", error("LambdaErrorBody"))
            .build();
        let lambda_forbidden = ResponseBuilder::new()
            .description("An access key or token that is not valid (`UnrecognizedClientException`), or a token without the scope (`AccessDeniedException`)")
            .content("application/json", error("LambdaErrorBody"))
            .build();
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let add = |op: &mut Operation, status: &str, response: &utoipa::openapi::Response| {
                    op.responses.responses.entry(status.to_owned()).or_insert_with(|| response.clone().into());
                };
                let lambda = op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "lambda"));
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(op, "401", if lambda { &lambda_unauthorized } else { &unauthorized });
                    add(op, "403", if lambda { &lambda_forbidden } else { &forbidden });
                }
                if op.request_body.is_some() {
                    add(op, "503", &busy);
                }
            }
        }
    }
}
