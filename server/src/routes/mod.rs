//! The API's routes, one module per resource. Each handler carries its OpenAPI description, so
//! the document served at `/openapi.json` is generated from the routes themselves.

pub mod collections;
pub mod documents;
pub mod plugins;
pub mod search;
pub mod system;
