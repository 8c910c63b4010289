//! The errors of iotflow-cep.

/// Why a pattern (built in code or read from TOML) cannot run.
///
/// Every variant is the pattern author's fault: fix the pattern and build
/// again; retrying never helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CepError {
    /// The pattern breaks one of the rules of pattern construction.
    #[error("invalid pattern: {0}")]
    Invalid(String),
    /// Two stages (or a stage and a negation) share a name.
    #[error("invalid pattern: the name {0:?} is used twice")]
    DuplicateName(String),
    /// A skip strategy names a stage that is not in the pattern.
    #[error("invalid pattern: the skip strategy names stage {0:?}, which is not in the pattern")]
    UnknownStage(String),
    /// A declarative pattern did not parse.
    #[error("pattern config does not parse: {0}")]
    Parse(String),
}

impl CepError {
    /// Whether retrying may help: never, a pattern is wrong until edited.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Whose fault it is: always the pattern author's.
    pub fn fault(&self) -> iotflow_core::Fault {
        iotflow_core::Fault::User
    }
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T, CepError> {
    Err(CepError::Invalid(msg.into()))
}
