//! Documents in and out: input rows (JSON objects) become tantivy documents under a schema, and
//! stored documents become JSON again for hits.

mod from_json;
mod to_json;
mod value;

pub use from_json::{BuiltDocument, DocumentBuilder, FieldError};
pub use to_json::{facet_path, stored_to_json};
pub use value::{parse_date, parse_vector_text};
