//! Judged queries for offline evaluation: a JSONL file of queries with graded relevance, optionally
//! merged with TREC qrels.
//!
//! Judgment files are written by hand, so parsing is strict: unknown keys are refused (typos surface
//! instead of being ignored) and every error names `origin:line` and what is wrong. Size limits are
//! checked while reading, before any query is run, so an oversized file fails fast.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Most queries one judgment set may hold.
pub const MAX_QUERIES: usize = 100_000;
/// Most judged documents one query may hold.
pub const MAX_JUDGMENTS_PER_QUERY: usize = 10_000;
/// Highest relevance grade accepted (keeps the nDCG gain `2^grade - 1` finite).
pub const MAX_GRADE: u32 = 100;
/// Longest query or document id, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// Graded relevance from a qrels file: query id -> document id -> grade.
pub type Qrels = BTreeMap<String, BTreeMap<String, u32>>;

/// A problem in a judgment or qrels file; displays as `origin:line: message` (`origin: message`
/// when the problem is not on one line, e.g. a query left without judgments).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", line_suffix(.line))]
pub struct JudgmentError {
    pub origin: String,
    pub line: Option<usize>,
    pub message: String,
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|line| format!(":{line}")).unwrap_or_default()
}

impl JudgmentError {
    fn new(origin: &str, line: Option<usize>, message: String) -> Self {
        Self {
            origin: origin.to_owned(),
            line,
            message,
        }
    }
}

/// One query with its relevance judgments.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedQuery {
    /// Query id, unique within a file.
    pub id: String,
    pub query: Option<String>,
    /// Query image path exactly as written; the caller resolves relative paths.
    pub image: Option<PathBuf>,
    pub vector: Option<Vec<f32>>,
    pub scenario: Option<String>,
    pub plugin: Option<String>,
    pub filter: Option<String>,
    /// Plugin parameters; JSON numbers and bools are kept in their string form.
    pub params: BTreeMap<String, String>,
    /// Document id -> grade; 0 means judged not relevant.
    pub relevance: BTreeMap<String, u32>,
}

/// One JSONL line as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    id: String,
    query: Option<String>,
    image: Option<PathBuf>,
    vector: Option<Vec<f32>>,
    scenario: Option<String>,
    plugin: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    #[serde(default)]
    relevance: BTreeMap<String, Value>,
}

/// Reads a JSONL judgment file and, when given, a TREC qrels file merged into it, then checks that
/// every query ends up judged. This is the entry point callers should use.
pub fn load(jsonl: &str, origin: &str, qrels: Option<(&str, &str)>) -> Result<Vec<JudgedQuery>, JudgmentError> {
    let mut queries = parse_jsonl(jsonl, origin)?;
    if let Some((text, qrels_origin)) = qrels {
        apply_qrels(&mut queries, parse_trec_qrels(text, qrels_origin)?, qrels_origin)?;
    }
    check(&queries, origin)?;
    Ok(queries)
}

/// Parses one JSON object per non-blank line. Queries may lack judgments here (a qrels file may
/// supply them); call [`check`] on the final set, or use [`load`].
pub fn parse_jsonl(text: &str, origin: &str) -> Result<Vec<JudgedQuery>, JudgmentError> {
    let lines: Vec<(usize, &str)> = numbered_lines(text).collect();
    if lines.len() > MAX_QUERIES {
        let message = format!("{} queries, at most {MAX_QUERIES} allowed", lines.len());
        return Err(JudgmentError::new(origin, None, message));
    }
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut queries = Vec::with_capacity(lines.len());
    for (line, raw) in lines {
        let query = parse_line(raw).map_err(|message| JudgmentError::new(origin, Some(line), message))?;
        if let Some(first) = first_seen.insert(query.id.clone(), line) {
            let message = format!("duplicate query id {:?} (first on line {first})", query.id);
            return Err(JudgmentError::new(origin, Some(line), message));
        }
        queries.push(query);
    }
    Ok(queries)
}

/// Non-blank lines with their 1-based line numbers.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim().is_empty())
}

/// Parses and validates one JSONL line; the error is the message without its location.
fn parse_line(line: &str) -> Result<JudgedQuery, String> {
    if !line.trim_start().starts_with('{') {
        return Err("expected a JSON object".into()); // serde would also accept a struct as an array
    }
    let raw: RawQuery = serde_json::from_str(line).map_err(|e| json_message(&e))?;
    check_id("query id", &raw.id)?;
    if raw.query.is_none() && raw.image.is_none() && raw.vector.is_none() {
        let id = &raw.id;
        return Err(format!("query {id:?} needs one of \"query\", \"image\" or \"vector\""));
    }
    if raw.query.as_ref().is_some_and(|text| text.trim().is_empty()) {
        return Err(format!("query {:?} has empty query text", raw.id));
    }
    if raw.vector.as_ref().is_some_and(Vec::is_empty) {
        return Err(format!("query {:?} has an empty vector", raw.id));
    }
    Ok(JudgedQuery {
        params: parse_params(raw.params)?,
        relevance: parse_relevance(raw.relevance)?,
        id: raw.id,
        query: raw.query,
        image: raw.image,
        vector: raw.vector,
        scenario: raw.scenario,
        plugin: raw.plugin,
        filter: raw.filter,
    })
}

/// A serde_json error without its "at line 1" suffix (the caller names the file line), keeping the column.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let bare = text.rsplit_once(" at line ").map_or(text.as_str(), |(bare, _)| bare);
    let prefix = if error.is_data() { "" } else { "invalid JSON: " };
    format!("{prefix}{bare} (column {})", error.column())
}

fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("{what} is {} bytes, at most {MAX_ID_BYTES} allowed", id.len()));
    }
    Ok(())
}

/// Plugin params as strings: strings as-is, numbers and bools in their JSON form.
fn parse_params(params: BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, String> {
    params
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name, text)),
            Value::Number(_) | Value::Bool(_) => Ok((name, value.to_string())),
            other => Err(format!("param {name:?} must be a string, number or bool, got {other}")),
        })
        .collect()
}

fn parse_relevance(relevance: BTreeMap<String, Value>) -> Result<BTreeMap<String, u32>, String> {
    check_judgment_count(relevance.len())?;
    relevance
        .into_iter()
        .map(|(doc, value)| {
            check_id("document id", &doc)?;
            let grade = value
                .as_u64()
                .and_then(|g| u32::try_from(g).ok())
                .filter(|g| *g <= MAX_GRADE);
            let bad = || format!("relevance grade for {doc:?} must be a whole number 0..={MAX_GRADE}, got {value}");
            grade.ok_or_else(bad).map(|grade| (doc, grade))
        })
        .collect()
}

fn check_judgment_count(count: usize) -> Result<(), String> {
    if count > MAX_JUDGMENTS_PER_QUERY {
        return Err(format!(
            "{count} judgments, at most {MAX_JUDGMENTS_PER_QUERY} per query"
        ));
    }
    Ok(())
}

/// Parses TREC qrels: `qid iter docno rel`, whitespace-separated. Negative grades (used by some TREC
/// tracks for "spam"/"junk") become 0; blank lines and `#` comments are skipped; a document judged
/// twice for one query is an error.
pub fn parse_trec_qrels(text: &str, origin: &str) -> Result<Qrels, JudgmentError> {
    let mut qrels = Qrels::new();
    for (line, raw) in numbered_lines(text) {
        if raw.trim_start().starts_with('#') {
            continue;
        }
        add_qrel(&mut qrels, raw).map_err(|message| JudgmentError::new(origin, Some(line), message))?;
    }
    Ok(qrels)
}

fn add_qrel(qrels: &mut Qrels, line: &str) -> Result<(), String> {
    let columns: Vec<&str> = line.split_whitespace().collect();
    let [qid, _iteration, doc, rel] = columns[..] else {
        return Err(format!(
            "expected 4 columns \"qid iter docno rel\", got {}",
            columns.len()
        ));
    };
    check_id("query id", qid)?;
    check_id("document id", doc)?;
    let grade = qrel_grade(rel)?;
    if !qrels.contains_key(qid) && qrels.len() >= MAX_QUERIES {
        return Err(format!("more than {MAX_QUERIES} queries"));
    }
    let docs = qrels.entry(qid.to_owned()).or_default();
    if docs.insert(doc.to_owned(), grade).is_some() {
        return Err(format!("document {doc:?} judged twice for query {qid:?}"));
    }
    check_judgment_count(docs.len())
}

fn qrel_grade(rel: &str) -> Result<u32, String> {
    let bad = || format!("relevance must be a whole number ..={MAX_GRADE}, got {rel:?}");
    let value: i64 = rel.parse().map_err(|_| bad())?;
    let grade = u32::try_from(value.max(0)).ok().filter(|g| *g <= MAX_GRADE);
    grade.ok_or_else(bad)
}

/// Merges qrels into the queries by id; a qrels grade replaces the JSONL grade for the same document.
/// A qrels query id missing from `queries` is an error naming it (`origin` is the qrels file).
pub fn apply_qrels(queries: &mut [JudgedQuery], qrels: Qrels, origin: &str) -> Result<(), JudgmentError> {
    let index: HashMap<String, usize> = queries.iter().enumerate().map(|(i, q)| (q.id.clone(), i)).collect();
    for (qid, docs) in qrels {
        let Some(query) = index.get(&qid).and_then(|&i| queries.get_mut(i)) else {
            let message = format!("query {qid:?} is judged but not in the query file");
            return Err(JudgmentError::new(origin, None, message));
        };
        query.relevance.extend(docs);
        check_judgment_count(query.relevance.len())
            .map_err(|message| JudgmentError::new(origin, None, format!("query {qid:?}: {message}")))?;
    }
    Ok(())
}

/// Checks the final set: every query has at least one judgment (a grade-0 judgment counts).
pub fn check(queries: &[JudgedQuery], origin: &str) -> Result<(), JudgmentError> {
    let Some(query) = queries.iter().find(|q| q.relevance.is_empty()) else {
        return Ok(());
    };
    let message = format!("query {:?} has no relevance judgments", query.id);
    Err(JudgmentError::new(origin, None, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_jsonl(text, "j.jsonl").map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_line() {
        let text = "\n{\"id\": \"q1\", \"query\": \"red dress\", \"scenario\": \"ecommerce\", \"params\": {\"max_price\": 80, \
                    \"fast\": true, \"mode\": \"x\"}, \"filter\": \"brand:acme\", \"relevance\": {\"doc-1\": 3, \"doc-7\": 0}}\n\n\
                    {\"id\": \"q2\", \"image\": \"img/a.jpg\", \"vector\": [0.5, 1]}\n";
        let queries = parse_jsonl(text, "j.jsonl").unwrap();
        assert_eq!(queries.len(), 2);
        let q = &queries[0];
        assert_eq!(
            (q.id.as_str(), q.query.as_deref(), q.filter.as_deref()),
            ("q1", Some("red dress"), Some("brand:acme"))
        );
        assert_eq!(q.params["max_price"], "80");
        assert_eq!(q.params["fast"], "true");
        assert_eq!(q.params["mode"], "x");
        assert_eq!(q.relevance, BTreeMap::from([("doc-1".into(), 3), ("doc-7".into(), 0)]));
        assert_eq!(queries[1].image, Some(PathBuf::from("img/a.jpg")));
        assert_eq!(queries[1].vector, Some(vec![0.5, 1.0]));
    }

    #[test]
    fn errors_name_the_line_and_problem() {
        let ok = "{\"id\": \"q1\", \"query\": \"a\", \"relevance\": {\"d\": 1}}\n";
        assert_eq!(
            err(&format!(
                "{ok}\n{{\"id\": \"q2\", \"query\": \"b\", \"relevance\": {{\"doc-1\": -2}}}}"
            )),
            "j.jsonl:3: relevance grade for \"doc-1\" must be a whole number 0..=100, got -2"
        );
        assert_eq!(
            err(&format!("{ok}{ok}")),
            "j.jsonl:2: duplicate query id \"q1\" (first on line 1)"
        );
        assert!(err(&format!("{ok}{{\"id\": ")).starts_with("j.jsonl:2: invalid JSON: EOF"));
        assert!(err("{\"id\": \"q\", \"quey\": \"a\"}").starts_with("j.jsonl:1: unknown field `quey`"));
        assert_eq!(
            err("{\"id\": \"q\"}"),
            "j.jsonl:1: query \"q\" needs one of \"query\", \"image\" or \"vector\""
        );
        assert!(err("{\"id\": \"q\", \"query\": \"a\", \"relevance\": {\"d\": 101}}").contains("got 101"));
        assert!(err("{\"id\": \"q\", \"query\": \"a\", \"relevance\": {\"d\": 1.5}}").contains("got 1.5"));
        assert!(err("{\"id\": \"q\", \"query\": \"a\", \"params\": {\"p\": [1]}}").contains("param \"p\" must be"));
        assert_eq!(err("[\"q\", \"a\"]"), "j.jsonl:1: expected a JSON object");
        let long = format!("{{\"id\": \"{}\", \"query\": \"a\"}}", "x".repeat(513));
        assert_eq!(err(&long), "j.jsonl:1: query id is 513 bytes, at most 512 allowed");
    }

    #[test]
    fn parses_trec_qrels() {
        let text = "# comment\nq1 0 d1 2\n\nq1 0 d2 -1\nq2\tQ0\td1\t1\n";
        let qrels = parse_trec_qrels(text, "q.txt").unwrap();
        assert_eq!(qrels["q1"], BTreeMap::from([("d1".into(), 2), ("d2".into(), 0)]));
        assert_eq!(qrels["q2"]["d1"], 1);
        let bad = |text: &str| parse_trec_qrels(text, "q.txt").unwrap_err().to_string();
        assert_eq!(
            bad("q1 0 d1\n"),
            "q.txt:1: expected 4 columns \"qid iter docno rel\", got 3"
        );
        assert_eq!(
            bad("q1 0 d1 x\n"),
            "q.txt:1: relevance must be a whole number ..=100, got \"x\""
        );
        assert_eq!(
            bad("q1 0 d1 1\nq1 0 d1 2\n"),
            "q.txt:2: document \"d1\" judged twice for query \"q1\""
        );
    }

    #[test]
    fn load_merges_qrels_and_checks_the_final_set() {
        let jsonl = "{\"id\": \"q1\", \"query\": \"a\", \"relevance\": {\"d1\": 1, \"d2\": 1}}\n{\"id\": \"q2\", \"query\": \"b\"}";
        let queries = load(jsonl, "j.jsonl", Some(("q2 0 d9 3\nq1 0 d2 0\n", "q.txt"))).unwrap();
        assert_eq!(
            queries[0].relevance,
            BTreeMap::from([("d1".into(), 1), ("d2".into(), 0)])
        );
        assert_eq!(queries[1].relevance, BTreeMap::from([("d9".into(), 3)]));
        let missing = load(jsonl, "j.jsonl", None).unwrap_err();
        assert_eq!(missing.to_string(), "j.jsonl: query \"q2\" has no relevance judgments");
        let unknown = load(jsonl, "j.jsonl", Some(("q3 0 d1 1\n", "q.txt"))).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "q.txt: query \"q3\" is judged but not in the query file"
        );
    }
}
