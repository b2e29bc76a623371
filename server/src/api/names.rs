//! The names a path can carry, with their patterns in the OpenAPI document (the engine checks
//! them: `mira_host::schema::valid_collection_name`, and a plugin's name at load).

/// A collection name: a letter, then letters, digits, `_` or `-`; at most 64 bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
#[allow(dead_code)]
pub struct CollectionName(String);

/// A plugin name: a lower-case letter, then lower-case letters, digits, `_` or `-`; at most 64
/// bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = "^[a-z][a-z0-9_-]{0,63}$")]
#[allow(dead_code)]
pub struct PluginName(String);
