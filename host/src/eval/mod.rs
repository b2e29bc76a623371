//! Rank evaluation: judged queries run through the live pipeline (or a given plugin version, or
//! other settings), scored with nDCG@k, MRR, recall@k and P@k per query and overall, and two runs
//! compared query by query with a paired randomization test. What an operator runs before
//! swapping a ranking plugin or changing fusion weights; `[plugins] gate` runs it before every
//! activation.

mod gate;
mod judgments;
mod metrics;
mod run;
mod settings;
mod significance;

pub use gate::{GateVerdict, check_gate};
pub use judgments::{
    JudgedQuery, JudgmentError, MAX_GRADE, MAX_ID_BYTES, MAX_JUDGMENTS_PER_QUERY, MAX_QUERIES, Qrels, apply_qrels,
    check, load, parse_jsonl, parse_trec_qrels,
};
pub use metrics::{QueryMetrics, Summary, evaluate, ndcg_at, precision_at, recall_at, reciprocal_rank, summarize};
pub use run::{ComparisonReport, EvalReport, MAX_EVAL_K, QueryDelta, QueryReport, RunReport, RunSpec, run};
pub use settings::{SETTINGS, apply_setting};
pub use significance::{Comparison, EXACT_MAX_QUERIES, MONTE_CARLO_ROUNDS, paired_randomization_test};
