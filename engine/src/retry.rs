//! Server-side retry policies: defaults and the next backoff (reference §2.3, activity retries).

use temporalio_protos::temporal::api::{
    common::v1::RetryPolicy, enums::v1::RetryState, failure::v1::Failure,
    failure::v1::failure::FailureInfo,
};

use crate::time::{duration, duration_ms, validate_and_cap};

/// Default initial interval of an activity retry policy.
pub const DEFAULT_INITIAL_INTERVAL_MS: i64 = 1_000;
/// Default backoff coefficient.
pub const DEFAULT_BACKOFF_COEFFICIENT: f64 = 2.0;
/// Default maximum interval, as a multiple of the initial interval.
pub const DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT: i64 = 100;

/// Fills the unset fields of a retry policy with Temporal's defaults.
pub fn with_defaults(policy: Option<RetryPolicy>) -> RetryPolicy {
    let mut p = policy.unwrap_or_default();
    let initial = match duration_ms(p.initial_interval.as_ref()) {
        0 => DEFAULT_INITIAL_INTERVAL_MS,
        ms => ms,
    };
    p.initial_interval = Some(duration(initial));
    if p.backoff_coefficient == 0.0 {
        p.backoff_coefficient = DEFAULT_BACKOFF_COEFFICIENT;
    }
    if duration_ms(p.maximum_interval.as_ref()) == 0 {
        p.maximum_interval = Some(duration(
            initial.saturating_mul(DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT),
        ));
    }
    p
}

/// Checks a retry policy's values as Temporal's `retrypolicy.Validate` does, capping its
/// intervals in place; the message names the bad field. A policy of one attempt never retries,
/// so the rest of it is not checked.
pub fn validate(policy: &mut RetryPolicy) -> Result<(), String> {
    if policy.maximum_attempts == 1 {
        return Ok(());
    }
    validate_and_cap(policy.initial_interval.as_mut())
        .map_err(|e| format!("invalid InitialInterval set on retry policy: {e}"))?;
    if policy.backoff_coefficient != 0.0 && policy.backoff_coefficient < 1.0 {
        return Err("BackoffCoefficient cannot be less than 1 on retry policy.".into());
    }
    validate_and_cap(policy.maximum_interval.as_mut())
        .map_err(|e| format!("invalid MaximumInterval set on retry policy: {e}"))?;
    let max = duration_ms(policy.maximum_interval.as_ref());
    if max > 0 && max < duration_ms(policy.initial_interval.as_ref()) {
        return Err("MaximumInterval cannot be less than InitialInterval on retry policy.".into());
    }
    if policy.maximum_attempts < 0 {
        return Err("MaximumAttempts cannot be negative on retry policy.".into());
    }
    Ok(())
}

/// The outcome of asking whether a failed attempt retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Retry after this many millis.
    Retry(i64),
    /// Do not retry, for this reason.
    Stop(RetryState),
}

fn is_non_retryable(policy: &RetryPolicy, failure: Option<&Failure>) -> bool {
    let Some(failure) = failure else {
        return false;
    };
    match &failure.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) => {
            info.non_retryable || policy.non_retryable_error_types.contains(&info.r#type)
        }
        // The server's own failures (a heartbeat over the size limit) say whether they retry.
        Some(FailureInfo::ServerFailureInfo(info)) => info.non_retryable,
        _ => false,
    }
}

/// Decides whether attempt `attempt` (which just failed at `now_ms`) is retried.
/// `expiration_ms` is the absolute deadline (0: none).
pub fn next(
    policy: &RetryPolicy,
    attempt: i32,
    failure: Option<&Failure>,
    now_ms: i64,
    expiration_ms: i64,
) -> Decision {
    if is_non_retryable(policy, failure) {
        return Decision::Stop(RetryState::NonRetryableFailure);
    }
    if policy.maximum_attempts > 0 && attempt >= policy.maximum_attempts {
        return Decision::Stop(RetryState::MaximumAttemptsReached);
    }
    let initial = duration_ms(policy.initial_interval.as_ref()).max(1);
    let coefficient = policy.backoff_coefficient.max(1.0);
    let exponent = (attempt - 1).clamp(0, 64);
    let mut backoff = (initial as f64) * coefficient.powi(exponent);
    let max = duration_ms(policy.maximum_interval.as_ref());
    if max > 0 {
        backoff = backoff.min(max as f64);
    }
    let backoff = backoff.min(i64::MAX as f64 / 2.0) as i64;
    if expiration_ms > 0 && now_ms.saturating_add(backoff) >= expiration_ms {
        return Decision::Stop(RetryState::Timeout);
    }
    Decision::Retry(backoff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::temporal::api::failure::v1::ApplicationFailureInfo;

    fn app_failure(kind: &str, non_retryable: bool) -> Failure {
        Failure {
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    r#type: kind.into(),
                    non_retryable,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = with_defaults(None);
        assert_eq!(next(&p, 1, None, 0, 0), Decision::Retry(1_000));
        assert_eq!(next(&p, 3, None, 0, 0), Decision::Retry(4_000));
        assert_eq!(next(&p, 30, None, 0, 0), Decision::Retry(100_000));
    }

    #[test]
    fn stops_on_attempts_types_and_expiry() {
        let mut p = with_defaults(None);
        p.maximum_attempts = 2;
        p.non_retryable_error_types = vec!["Fatal".into()];
        assert_eq!(
            next(&p, 2, None, 0, 0),
            Decision::Stop(RetryState::MaximumAttemptsReached)
        );
        assert_eq!(
            next(&p, 1, Some(&app_failure("Fatal", false)), 0, 0),
            Decision::Stop(RetryState::NonRetryableFailure)
        );
        assert_eq!(
            next(&p, 1, Some(&app_failure("Other", true)), 0, 0),
            Decision::Stop(RetryState::NonRetryableFailure)
        );
        assert_eq!(
            next(&p, 1, None, 0, 500),
            Decision::Stop(RetryState::Timeout)
        );
    }

    #[test]
    fn rejects_bad_policies() {
        let mut p = RetryPolicy {
            backoff_coefficient: 0.5,
            ..Default::default()
        };
        assert!(validate(&mut p).is_err());
    }

    #[test]
    fn intervals_are_range_checked_with_temporals_messages() {
        let policy = |initial: (i64, i32), maximum: (i64, i32)| RetryPolicy {
            initial_interval: Some(prost_wkt_types::Duration {
                seconds: initial.0,
                nanos: initial.1,
            }),
            maximum_interval: Some(prost_wkt_types::Duration {
                seconds: maximum.0,
                nanos: maximum.1,
            }),
            ..Default::default()
        };
        assert_eq!(
            validate(&mut policy((-1, 0), (0, 0))),
            Err("invalid InitialInterval set on retry policy: negative duration".into())
        );
        assert_eq!(
            validate(&mut policy((1, -1), (0, 0))),
            Err(
                "invalid InitialInterval set on retry policy: duration has seconds and nanos with different signs"
                    .into()
            )
        );
        assert_eq!(
            validate(&mut policy((1, 0), (-5, 0))),
            Err("invalid MaximumInterval set on retry policy: negative duration".into())
        );
        // One attempt never retries: Temporal checks nothing else.
        let mut once = policy((-1, 0), (-1, 0));
        once.maximum_attempts = 1;
        assert_eq!(validate(&mut once), Ok(()));
        // Huge intervals are capped to 100 years, and the defaults derived from them fit.
        let mut huge = policy((i64::MAX, 999_999_999), (0, 0));
        assert_eq!(validate(&mut huge), Ok(()));
        let max_ms = crate::time::MAX_DURATION_SECONDS * 1000;
        assert_eq!(duration_ms(huge.initial_interval.as_ref()), max_ms);
        let p = with_defaults(Some(huge));
        assert_eq!(
            duration_ms(p.maximum_interval.as_ref()),
            max_ms * DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT
        );
        assert_eq!(
            next(&p, 2, None, i64::MAX - 1, i64::MAX),
            Decision::Stop(RetryState::Timeout)
        );
    }

    #[test]
    fn a_non_retryable_server_failure_is_not_retried() {
        let failure = Failure {
            failure_info: Some(FailureInfo::ServerFailureInfo(
                temporalio_protos::temporal::api::failure::v1::ServerFailureInfo {
                    non_retryable: true,
                },
            )),
            ..Default::default()
        };
        assert_eq!(
            next(&with_defaults(None), 1, Some(&failure), 0, 0),
            Decision::Stop(RetryState::NonRetryableFailure)
        );
    }
}
