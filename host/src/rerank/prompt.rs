//! Qwen3-Reranker's prompt, exactly as its model card builds it: a system turn that asks for
//! "yes" or "no", the user turn `<Instruct>: ..\n<Query>: ..\n<Document>: ..`, and an assistant
//! turn opened with an empty think block. The three parts are tokenized separately and joined as
//! token ids; only the user turn is truncated (from its end, so the document is what is cut).

use tokenizers::Tokenizer;

use crate::models::ModelError;

/// The system turn and the opening of the user turn.
pub const PREFIX: &str = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n";
/// The end of the user turn and the assistant turn with an empty think block.
pub const SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
/// The instruction used when neither the request nor a plugin gives one.
pub const DEFAULT_INSTRUCTION: &str = "Given a web search query, retrieve relevant passages that answer the query";

/// The user turn for one candidate.
pub fn user_turn(instruction: &str, query: &str, doc: &str) -> String {
    format!("<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}")
}

/// Turns (instruction, query, document) into the token ids the model reads.
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// Longest prompt in tokens, prefix and suffix included.
    pub max_length: usize,
}

impl PromptTokenizer {
    pub fn new(mut tokenizer: Tokenizer, max_length: usize) -> Result<Self, ModelError> {
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| ModelError::Input(format!("tokenizer: {e}")))?;
        let encode = |s: &str| -> Result<Vec<u32>, ModelError> {
            Ok(tokenizer
                .encode(s, false)
                .map_err(|e| ModelError::Input(format!("cannot tokenize the prompt template: {e}")))?
                .get_ids()
                .to_vec())
        };
        let prefix = encode(PREFIX)?;
        let suffix = encode(SUFFIX)?;
        if prefix.len() + suffix.len() >= max_length {
            return Err(ModelError::Input(format!(
                "max_length {max_length} leaves no room for a document: the prompt template alone takes {} tokens",
                prefix.len() + suffix.len()
            )));
        }
        Ok(PromptTokenizer {
            tokenizer,
            prefix,
            suffix,
            max_length,
        })
    }

    /// Tokens of the template's fixed parts, before and after the user turn.
    pub fn template_tokens(&self) -> (&[u32], &[u32]) {
        (&self.prefix, &self.suffix)
    }

    /// The whole prompt's token ids. When it would exceed `max_length`, the user turn is cut
    /// from its end (the document's tail goes); the template stays intact. A query and
    /// instruction that leave no room for any of the document are an error.
    pub fn encode(&self, instruction: &str, query: &str, doc: &str) -> Result<Vec<u32>, ModelError> {
        let room = self.max_length - self.prefix.len() - self.suffix.len();
        let turn = self.tokenize(&user_turn(instruction, query, doc))?;
        if turn.len() > room {
            let head = self.tokenize(&user_turn(instruction, query, ""))?.len();
            if head >= room {
                return Err(ModelError::Input(format!(
                    "the instruction and query take {head} tokens; with max_length {} only {room} fit \
                     beside the prompt template, leaving nothing for the document",
                    self.max_length
                )));
            }
        }
        let kept = turn.len().min(room);
        let mut ids = Vec::with_capacity(self.prefix.len() + kept + self.suffix.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend_from_slice(&turn[..kept]);
        ids.extend_from_slice(&self.suffix);
        Ok(ids)
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        // The model card calls the tokenizer with its defaults (special tokens on); Qwen's
        // tokenizer adds none, so this is the same ids as without.
        Ok(self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Input(format!("cannot tokenize: {e}")))?
            .get_ids()
            .to_vec())
    }
}
