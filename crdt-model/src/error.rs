//! Error types of the model. Every variant names the offending field and value,
//! because the officer reading it is at a border post with a queue in front.

use thiserror::Error;

/// Input that breaks a rule of the domain. Shown to the officer as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    #[error("unknown {field} \"{value}\"; expected one of: {allowed}")]
    UnknownTerm { field: &'static str, value: String, allowed: String },
    #[error("impossible date \"{value}\" for {field}: {reason}")]
    ImpossibleDate { field: &'static str, value: String, reason: String },
    #[error("bad time \"{value}\" for {field}: {reason}")]
    BadTime { field: &'static str, value: String, reason: String },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long; the limit is {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("too many {field}: {count}; the limit is {max}")]
    TooMany { field: &'static str, count: usize, max: usize },
    #[error("{field} \"{value}\" is malformed; expected {expected}")]
    Malformed { field: &'static str, value: String, expected: &'static str },
    #[error("quantity \"{value}\" has no unit; write SUBSTANCE:QUANTITY:UNIT, e.g. heroin:1.5:kg")]
    QuantityWithoutUnit { value: String },
    #[error("quantity \"{value}\" is not a positive number")]
    BadQuantity { value: String },
    #[error("unknown country code \"{value}\" for {field}; use ICAO alpha-3, e.g. KAZ, KGZ, TJK, TKM, UZB")]
    UnknownCountry { field: &'static str, value: String },
    #[error("expiry {expires} is before the start date {valid_from}")]
    ExpiryBeforeStart { expires: String, valid_from: String },
    #[error("{field} {value} lies in the future")]
    InFuture { field: &'static str, value: String },
    #[error("a {kind} entry needs {needs}")]
    Incomplete { kind: &'static str, needs: &'static str },
    #[error("{field} does not apply to a {kind} entry")]
    NotApplicable { field: &'static str, kind: &'static str },
    #[error("cannot change status from {from} to {to}")]
    StatusChange { from: String, to: String },
    #[error("the amendment changes nothing")]
    NothingToChange,
}

/// Any failure of a model operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("document {doc} is malformed at {path}: {detail}")]
    Schema { doc: String, path: String, detail: String },
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// Automerge panicked on a change a peer crafted; the document in
    /// memory may be inconsistent and must be reloaded from storage.
    #[error("automerge failed on these changes ({0}); nothing of them is kept")]
    AutomergePanicked(String),
    /// Automerge applied a crafted change without error and then gives it
    /// back otherwise than it was sent; the document in memory is broken
    /// and must be reloaded from storage.
    #[error("change {0} applied, and Automerge does not give it back as it was sent; nothing of this batch is kept")]
    NotGivenBack(String),
}

/// Runs `work`, which hands peers' bytes to Automerge, turning a panic of
/// Automerge's (it unwraps on some malformed changes: fuzzing found
/// them) into an error. The release profile must keep `panic = "unwind"`
/// for this to hold.
pub fn guard<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

impl ModelError {
    pub(crate) fn schema(doc: &impl std::fmt::Display, path: impl Into<String>, detail: impl Into<String>) -> Self {
        ModelError::Schema { doc: doc.to_string(), path: path.into(), detail: detail.into() }
    }
}
