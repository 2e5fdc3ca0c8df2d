//! Traces across the internal API: a call made inside a traced request carries the caller's
//! span context in its metadata (W3C `traceparent`, as the public API takes it), and the
//! serving process continues the trace from it, so the spans a shard records in the history
//! process are children of the frontend's RPC span.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

struct Inject<'a>(&'a mut MetadataMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct Extract<'a>(&'a MetadataMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// `message` as a request carrying the current span context, when there is one.
pub fn traced<M>(message: M) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    let cx = Context::current();
    if cx.has_active_span() {
        TraceContextPropagator::new().inject_context(&cx, &mut Inject(request.metadata_mut()));
    }
    request
}

/// Runs `call` in the trace of `caller` (see [`caller`]), when there is one.
pub async fn within<T>(caller: Option<Context>, call: impl Future<Output = T>) -> T {
    use opentelemetry::context::FutureExt;
    match caller {
        Some(cx) => call.with_context(cx).await,
        None => call.await,
    }
}

/// The caller's span context a request carries, if it carries one.
pub fn caller<M>(request: &tonic::Request<M>) -> Option<Context> {
    let metadata = request.metadata();
    metadata.get("traceparent")?;
    let cx = TraceContextPropagator::new().extract(&Extract(metadata));
    cx.has_active_span().then_some(cx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn a_span_context_crosses_in_the_metadata() {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::current().with_remote_span_context(span.clone());
        let request = {
            let _guard = cx.attach();
            traced(())
        };
        let received = caller(&request).expect("a caller context");
        let got = received.span().span_context().clone();
        assert_eq!(got.trace_id(), span.trace_id());
        assert_eq!(got.span_id(), span.span_id());
        // Outside a traced request nothing is added, and nothing is found.
        let plain = traced(());
        assert!(plain.metadata().is_empty());
        assert!(caller(&plain).is_none());
    }
}
