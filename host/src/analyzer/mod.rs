//! Text analyzers, registered on every collection's index under the names that
//! [`Analyzer::tokenizer_name`](crate::schema::Analyzer::tokenizer_name) gives.

mod jieba;

use tantivy::Index;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};

pub use jieba::JiebaTokenizer;

use crate::schema::Analyzer;

/// Tokens longer than this many bytes are dropped (base64 blobs, URLs): they never match a query.
const MAX_TOKEN_BYTES: usize = 64;

/// Registers Mira's analyzers on an index. Must run on every open, before indexing or parsing.
pub fn register(index: &Index) {
    let manager = index.tokenizers();
    manager.register(Analyzer::English.tokenizer_name(), english());
    manager.register(Analyzer::Chinese.tokenizer_name(), chinese());
}

fn english() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

fn chinese() -> TextAnalyzer {
    TextAnalyzer::builder(JiebaTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .build()
}
