//! The Kinesis client (one per source or sink, on its own runtime) and the
//! classification of its errors into what to do about them.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::Error;
use crate::config::KinesisCredentials;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Connect<'a> {
    pub(crate) endpoint_url: Option<&'a str>,
    pub(crate) region: Option<&'a str>,
    pub(crate) credentials: Option<&'a KinesisCredentials>,
    pub(crate) request_timeout: Duration,
}

/// A current-thread runtime for one I/O thread.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// Builds a client. The SDK's own retries are off: the connector retries
/// with its own backoff and counts what it retries.
pub(crate) async fn build_client(c: &Connect<'_>) -> Result<Client, Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(c.request_timeout)
                .operation_timeout(c.request_timeout)
                .build(),
        );
    if let Some(region) = c.region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = c.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(k) = c.credentials {
        loader = loader.credentials_provider(Credentials::new(
            k.access_key_id.clone(),
            k.secret_access_key.clone(),
            k.session_token.clone(),
            None,
            "iotflow-config",
        ));
    }
    let sdk = loader.load().await;
    let mut conf = aws_sdk_kinesis::config::Builder::from(&sdk);
    if sdk.region().is_none() {
        if c.endpoint_url.is_some() {
            // Local servers ignore the region, but the SDK must sign with one.
            conf = conf.region(Region::new("us-east-1"));
        } else {
            return Err(Error::Config(
                "no AWS region: set `region` or AWS_REGION".into(),
            ));
        }
    }
    Ok(Client::from_conf(conf.build()))
}

/// What to do about a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Over the shard's or the account's rate: back off and retry.
    Throttled,
    /// The shard iterator is too old: get a new one and retry.
    ExpiredIterator,
    /// The stream or shard does not exist (any more).
    NotFound,
    /// The network or the server failed; a retry may help.
    Transient,
    /// Retrying will not help (bad request, access denied, …).
    Fatal,
}

/// A failed call: its fault and a message for logs and errors.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) fault: Fault,
    /// The error code of a service error.
    pub(crate) code: Option<String>,
    pub(crate) message: String,
}

/// Classifies an SDK error.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = match err {
        // Code and message; the full context repeats the raw response.
        SdkError::ServiceError(se) => format!(
            "{} (HTTP {}): {}",
            se.err().code().unwrap_or("unknown error"),
            se.raw().status().as_u16(),
            se.err().message().unwrap_or("")
        ),
        _ => DisplayErrorContext(err).to_string(),
    };
    let fault = match err {
        SdkError::ServiceError(se) => {
            let by_code = fault_of_code(se.err().code());
            if by_code == Fault::Fatal && se.raw().status().is_server_error() {
                Fault::Transient
            } else {
                by_code
            }
        }
        SdkError::ConstructionFailure(_) => Fault::Fatal,
        // Timeouts, dispatch (connection) failures, unparsable responses.
        _ => Fault::Transient,
    };
    let code = match err {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    };
    Failure {
        fault,
        code,
        message,
    }
}

/// The fault an error code names (error codes of the Kinesis API and of
/// AWS's common errors).
pub(crate) fn fault_of_code(code: Option<&str>) -> Fault {
    match code {
        Some(
            "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "KMSThrottlingException",
        ) => Fault::Throttled,
        Some("ExpiredIteratorException") => Fault::ExpiredIterator,
        Some("ResourceNotFoundException") => Fault::NotFound,
        Some(
            "InternalFailure"
            | "InternalFailureException"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "KMSInternalException",
        ) => Fault::Transient,
        _ => Fault::Fatal,
    }
}

/// Whether a failed `PutRecords` entry (by its error code) is worth
/// retrying: throttling and internal failures are; KMS configuration errors
/// (access denied, disabled key, …) are not.
pub(crate) fn entry_is_retryable(code: &str) -> bool {
    !matches!(
        code,
        "KMSAccessDeniedException"
            | "KMSDisabledException"
            | "KMSInvalidStateException"
            | "KMSNotFoundException"
            | "KMSOptInRequired"
            | "AccessDeniedException"
            | "ValidationException"
            | "InvalidArgumentException"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_faults() {
        assert_eq!(
            fault_of_code(Some("ProvisionedThroughputExceededException")),
            Fault::Throttled
        );
        assert_eq!(
            fault_of_code(Some("LimitExceededException")),
            Fault::Throttled
        );
        assert_eq!(fault_of_code(Some("ThrottlingException")), Fault::Throttled);
        assert_eq!(
            fault_of_code(Some("KMSThrottlingException")),
            Fault::Throttled
        );
        assert_eq!(
            fault_of_code(Some("ExpiredIteratorException")),
            Fault::ExpiredIterator
        );
        assert_eq!(
            fault_of_code(Some("ResourceNotFoundException")),
            Fault::NotFound
        );
        assert_eq!(fault_of_code(Some("InternalFailure")), Fault::Transient);
        assert_eq!(fault_of_code(Some("AccessDeniedException")), Fault::Fatal);
        assert_eq!(fault_of_code(None), Fault::Fatal);
    }

    #[test]
    fn put_entry_errors_retry_unless_permanent() {
        assert!(entry_is_retryable("ProvisionedThroughputExceededException"));
        assert!(entry_is_retryable("InternalFailure"));
        assert!(!entry_is_retryable("KMSAccessDeniedException"));
    }
}
