//! Schema validation: every mistake is refused with a message naming the field.

use mira_host::{CollectionSchema, Error};

use crate::common::{Env, SMALL, stderr};

fn err(toml: &str) -> String {
    match CollectionSchema::from_toml(toml, "t.toml") {
        Err(e @ Error::Schema { .. }) => e.to_string(),
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("schema should have been refused:\n{toml}"),
    }
}

#[test]
fn valid_schema_parses_with_defaults() {
    let s = CollectionSchema::from_toml(SMALL, "t").unwrap();
    assert_eq!(s.id_field, "id");
    assert_eq!(s.search.text_fields, vec!["title", "title_zh"]);
    assert_eq!(s.search.vector_field.as_deref(), Some("emb"));
    assert_eq!(s.ingest.batch_size, 2);
    assert_eq!(s.fields.len(), 10);
}

#[test]
fn mistakes_name_the_field() {
    let base = "name = \"c\"\n";
    let cases = [
        ("[fields.a]\ntype = \"txt\"\n", "unknown variant `txt`"),
        ("[fields.a]\ntype = \"text\"\ncolour = 1\n", "unknown field `colour`"),
        (
            "[fields.price]\ntype = \"f64\"\nanalyzer = \"english\"\n",
            "field `price`: `analyzer` applies only to text fields",
        ),
        ("[fields.v]\ntype = \"vector\"\n", "field `v`: vector fields need `dim`"),
        (
            "[fields.v]\ntype = \"vector\"\ndim = 0\n",
            "field `v`: dim must be between 1 and",
        ),
        (
            "[fields.v]\ntype = \"vector\"\ndim = 4\ndtype = \"f64\"\n",
            "unknown variant `f64`",
        ),
        ("[fields.id]\ntype = \"keyword\"\n", "field `id`: `id` is the id field"),
        (
            "[fields.\"bad name\"]\ntype = \"keyword\"\n",
            "field `bad name`: names must start with a letter",
        ),
        (
            "[fields.t]\ntype = \"text\"\nboost = -1.0\n",
            "field `t`: boost must be a positive number",
        ),
        (
            "[fields.t]\ntype = \"text\"\nanalyzer = \"klingon\"\n",
            "unknown variant `klingon`",
        ),
        (
            "[fields.t]\ntype = \"keyword\"\n[search]\ntext_fields = [\"t\"]\n",
            "text_fields: `t` is a keyword field, not text",
        ),
        (
            "[fields.t]\ntype = \"text\"\n[search]\nvector_field = \"nope\"\n",
            "vector_field: unknown field `nope`",
        ),
        (
            "[fields.t]\ntype = \"text\"\n[search]\nfusion = \"rrf\"\nnormalization = \"zscore\"\n",
            "normalization applies to linear",
        ),
        (
            "[fields.t]\ntype = \"text\"\n[search]\nfusion = \"borda\"\n",
            "unknown fusion `borda`",
        ),
        ("[fields]\n", "at least one field"),
        (
            "[fields.t]\ntype = \"text\"\nsource = \"clip-text\"\n",
            "field `t`: source clip-text applies to vector fields",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.v]\ntype = \"vector\"\ndim = 4\nsource = \"clip-tags\"\nvocabulary = [\"a\"]\n",
            "field `v`: source clip-tags applies to text or keyword fields",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.t]\ntype = \"text\"\nsource = \"clip-tags\"\n",
            "field `t`: clip-tags needs a vocabulary",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.t]\ntype = \"text\"\nsource = \"clip-tags\"\nvocabulary = 5\n",
            "a list of words, or \"plugin:NAME\"",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.t]\ntype = \"text\"\nsource = \"clip-tags\"\nvocabulary = \"plugin:Not A Name\"\n",
            "field `t`: vocabulary = \"plugin:Not A Name\": a vocabulary is a list of words or \"plugin:NAME\"",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.t]\ntype = \"text\"\nsource = \"clip-tags\"\nvocabulary = \"plugin:shop\"\ntop = 0\n",
            "field `t`: top must be between 1 and 10000, got 0",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.t]\ntype = \"text\"\nsource = \"clip-tags\"\nvocabulary = [\"a\", \"b\", \"a\"]\ntop = 3\n",
            "field `t`: top must be between 1 and the vocabulary's 2 words, got 3",
        ),
        (
            "[fields.p]\ntype = \"image\"\n[fields.v]\ntype = \"vector\"\ndim = 4\nsource = \"clip-image\"\ntop = 3\n",
            "field `v`: `vocabulary` and `top` apply to source clip-tags",
        ),
        (
            "[fields.t]\ntype = \"text\"\ntop = 3\n",
            "field `t`: `from`, `vocabulary`, `top` and `max_tokens` need a `source`",
        ),
        (
            "[fields.v]\ntype = \"vector\"\ndim = 4\nsource = \"clip-image\"\n",
            "field `v`: clip-image needs an image field",
        ),
        (
            "[fields.v]\ntype = \"vector\"\ndim = 4\nsource = \"magic\"\n",
            "field `v`: unknown source `magic`",
        ),
        (
            "[fields.n]\ntype = \"i64\"\n[fields.v]\ntype = \"vector\"\ndim = 4\nsource = \"clip-text\"\nfrom = [\"n\"]\n",
            "clip-text reads text fields; `n` is not one",
        ),
    ];
    for (fields, expected) in cases {
        let message = err(&format!("{base}{fields}"));
        assert!(message.contains(expected), "expected `{expected}` in: {message}");
        assert!(message.starts_with("schema t.toml:"), "{message}");
    }
    assert!(err("name = \"../etc\"\n[fields.a]\ntype = \"text\"\n").contains("collection name `../etc`"));
}

#[test]
fn toml_syntax_errors_give_line_and_column() {
    let message = err("name = \"c\"\n[fields.a]\ntype = \n");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn cli_create_names_the_file_and_refuses_duplicates() {
    let env = Env::new();
    let bad = env.write(
        "bad.toml",
        "name = \"c\"\n[fields.v]\ntype = \"vector\"\ndim = 3\nanalyzer = \"english\"\n",
    );
    let out = env.mira(&["create", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("bad.toml") && e.contains("field `v`: `analyzer` applies only to text fields"),
        "{e}"
    );

    let good = env.write("good.toml", SMALL);
    assert!(env.mira(&["create", good.to_str().unwrap()]).status.success());
    let again = env.mira(&["create", good.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("collection `small` already exists"));
}
