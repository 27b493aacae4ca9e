//! Lambda's own REST API (version 2015-03-31), for AWS SDKs and the AWS CLI pointed at
//! Hearth with `--endpoint-url`: the management calls here, the Invoke call in
//! `hearth-server` (it needs the gateway). Both authenticate with [`LambdaCaller`] and answer
//! refusals as [`LambdaError`]s.

mod caller;
mod error;
mod function_ref;
pub(crate) mod manage;
mod runtime_names;
pub mod shapes;

use axum::Router;
use axum::routing::{get, put};

pub use caller::LambdaCaller;
pub use error::{LambdaError, LambdaErrorBody};
pub use function_ref::{function_ref_schema, parse_function, qualifier_of};

use crate::AppState;

/// The management routes (`/2015-03-31/functions...`, not `.../invocations`).
pub fn management(state: AppState) -> Router {
    Router::new()
        // boto3 lists with a trailing slash, other SDKs without.
        .route("/2015-03-31/functions", get(manage::list_functions).post(manage::create_function))
        .route("/2015-03-31/functions/", get(manage::list_functions).post(manage::create_function))
        .route("/2015-03-31/functions/{name}", get(manage::get_function).delete(manage::delete_function))
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(manage::get_configuration).put(manage::update_configuration),
        )
        .route("/2015-03-31/functions/{name}/code", put(manage::update_code))
        .route("/2015-03-31/functions/{name}/versions", get(manage::list_versions).post(manage::publish_version))
        .with_state(state)
}
