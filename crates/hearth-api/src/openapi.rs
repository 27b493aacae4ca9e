use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{code, functions, system, tokens, triggers};

/// The control plane's part of the API description, generated from the handlers. The
/// gateway adds its routes and serves the whole document (`hearth_gateway::openapi`).
#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth API", description = "Control plane of Hearth, a self-hostable Function-as-a-Service platform."),
    paths(
        functions::put_function, functions::list_functions, functions::get_function,
        functions::delete_function, functions::list_versions,
        code::put_code, code::get_code, code::upload_package,
        tokens::create_token, tokens::list_tokens, tokens::delete_token,
        triggers::create_trigger, triggers::list_triggers, triggers::delete_trigger,
        system::healthz,
    ),
    components(schemas(crate::ApiErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "functions", description = "Functions and their versions"),
        (name = "code", description = "Code packages"),
        (name = "tokens", description = "API tokens"),
        (name = "triggers", description = "HTTP triggers"),
        (name = "invoke", description = "Invoking functions and their instances"),
        (name = "system", description = "Health and API description"),
    )
)]
pub struct ApiDoc;

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
