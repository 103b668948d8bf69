//! The OpenAPI document served at `/openapi.json`, generated from the
//! handlers' annotations and the model's schemas.

use utoipa::OpenApi;

use crate::{lists, model, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dynagate users API",
        description = "The sample service of dynagate: users in DynamoDB, callers gated by Redis token buckets."
    ),
    paths(
        routes::create_user,
        lists::list_users,
        routes::get_user,
        routes::update_user,
        routes::delete_user
    ),
    components(schemas(
        model::NewUser,
        model::UserChange,
        model::User,
        model::ErrorBody,
        lists::UserPage
    ))
)]
pub struct ApiDoc;
