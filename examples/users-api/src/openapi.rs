//! The OpenAPI document served at `/openapi.json`, generated from the
//! handlers' annotations and the model's schemas.

use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

use crate::{lists, model, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dynagate users API",
        description = "The sample service of dynagate: users in DynamoDB, callers gated by Redis token buckets. Errors are RFC 9457 problem details (application/problem+json)."
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
    )),
    modifiers(&ProblemJson)
)]
pub struct ApiDoc;

/// Every error answer is sent as `application/problem+json`
/// (`dynagate::http::error_response` builds them all), so every 4xx and 5xx
/// of the document says so; done here, in one place, rather than with a
/// `content_type` on each `(status = 4xx, body = ErrorBody)` of the handlers.
struct ProblemJson;

impl Modify for ProblemJson {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in &mut operation.responses.responses {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert(dynagate::http::Problem::CONTENT_TYPE.to_owned(), content);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_documented_as_problem_json_and_successes_as_json() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let responses = &document["paths"]["/api/v1/users/{user_id}"]["get"]["responses"];
        let content = |status: &str| {
            responses[status]["content"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(content("200"), ["application/json"]);
        for status in ["404", "429", "503"] {
            assert_eq!(content(status), ["application/problem+json"], "{status}");
        }
        let schema = &document["components"]["schemas"]["ErrorBody"];
        let mut required: Vec<_> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(
            required,
            ["detail", "error", "message", "status", "title", "type"]
        );
        assert!(schema["properties"]["violated-policies"].is_object());
    }
}
