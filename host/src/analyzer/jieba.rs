//! A tantivy tokenizer over jieba's search-mode segmentation, for Chinese (and mixed) text.
//!
//! Search mode emits a long word and its shorter dictionary words ("连衣裙" and "衣裙"), so a query
//! for either finds the document. Whitespace and punctuation tokens are dropped.

use std::sync::{Arc, OnceLock};

use jieba_rs::Jieba;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The dictionary takes ~100 ms to load; every tokenizer shares one copy.
fn shared_jieba() -> Arc<Jieba> {
    static JIEBA: OnceLock<Arc<Jieba>> = OnceLock::new();
    JIEBA.get_or_init(|| Arc::new(Jieba::new())).clone()
}

/// jieba segmentation as a tantivy [`Tokenizer`].
#[derive(Clone)]
pub struct JiebaTokenizer {
    jieba: Arc<Jieba>,
}

impl Default for JiebaTokenizer {
    fn default() -> Self {
        JiebaTokenizer { jieba: shared_jieba() }
    }
}

/// The tokens of one text, computed eagerly (jieba segments whole sentences).
pub struct JiebaTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaTokenStream {
        let tokens = self
            .jieba
            .cut_for_search(text, true)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric))
            .enumerate()
            .map(|(position, t)| Token {
                offset_from: t.byte_start,
                offset_to: t.byte_end,
                position,
                text: t.word.to_owned(),
                position_length: 1,
            })
            .collect();
        JiebaTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for JiebaTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut t = JiebaTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            let tok = s.token();
            assert_eq!(&text[tok.offset_from..tok.offset_to], tok.text);
            out.push(tok.text.clone());
        }
        out
    }

    #[test]
    fn segments_chinese_and_drops_punctuation() {
        let w = words("红色连衣裙，真丝 Dress!");
        assert!(w.contains(&"红色".to_string()), "{w:?}");
        assert!(w.contains(&"连衣裙".to_string()), "{w:?}");
        assert!(w.contains(&"Dress".to_string()), "{w:?}");
        assert!(!w.iter().any(|t| t == "，" || t == " " || t == "!"), "{w:?}");
    }
}
