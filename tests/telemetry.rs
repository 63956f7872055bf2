//! OpenTelemetry traces from the real binary to a receiver that decodes real OTLP/HTTP protobuf
//! (`opentelemetry-proto`'s messages): the client's trace carried to the upstream, a span per
//! request, the shadow and its comparison in a trace of their own linked to the primary's span,
//! sampling, and `[telemetry]` reloaded with the file.

mod common;

use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every span the collector received, with the `service.name` it came under.
fn spans(collector: &MockUpstream) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for r in collector.received() {
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/x-protobuf"[..]));
        let request = ExportTraceServiceRequest::decode(r.body.as_ref()).expect("OTLP protobuf");
        for rs in request.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                out.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }
    out
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()?.value.clone())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Value::StringValue(s)) => s,
        other => panic!("{key} is {other:?} on {span:?}"),
    }
}

/// Wait until the collector holds a span satisfying `want`.
async fn wait_span(collector: &MockUpstream, what: &str, want: impl Fn(&Span) -> bool) -> (String, Span) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = spans(collector).into_iter().find(|(_, s)| want(s)) {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what} exported: {:#?}", spans(collector));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `traceparent` value's trace id, parent id and flags.
fn traceparent(r: &Received) -> Option<(String, String, String)> {
    let v = r.headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    Some((parts[1].to_string(), parts[2].to_string(), parts[3].to_string()))
}

/// What `upstream` received for `path` in trace `trace`, if anything.
fn in_trace(upstream: &MockUpstream, path: &str, trace: &str) -> Option<Received> {
    upstream.received().into_iter().find(|r| r.path == path && traceparent(r).is_some_and(|(t, _, _)| t == trace))
}

fn telemetry(collector: &MockUpstream, sample: &str, service: &str) -> String {
    format!(
        "[telemetry]\notlp_endpoint = \"http://{}\"\nsample = {sample}\nservice_name = \"{service}\"\n",
        collector.address()
    )
}

fn orders(legacy: &MockUpstream, new: &MockUpstream, extra: &str) -> String {
    format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n{extra}\n",
        pools(legacy, new)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_clients_trace_reaches_the_upstream_and_the_shadow_is_a_linked_trace_of_its_own() {
    let collector = MockUpstream::start("collector").await;
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let shadow = "[routes.shadow]\nsample = 100\n[routes.compare]\nignore_headers = [\"date\"]\nnoise_sample = 0\n";
    let body = format!("{}{}", telemetry(&collector, "100", "edge-proxy"), orders(&legacy, &new, shadow));
    let s = Strangler::start(&body).await;

    let resp = client()
        .get(s.url("/orders/7"))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);

    // Legacy served: it got the client's trace, with strangler's hop as its parent. The first
    // request of an endpoint is also sent to legacy again for noise, at the same time and in the
    // shadow's trace (checked below): which of the two arrives first is a race.
    let served = in_trace(&legacy, "/orders/7", TRACE).expect("the client's request, in the client's trace");
    let (_, hop, flags) = traceparent(&served).expect("a traceparent");
    assert_eq!(flags, "01");
    assert_ne!(hop, CLIENT_SPAN, "a new span id for the hop");
    assert_eq!(served.headers.get("tracestate").map(|v| v.as_bytes()), Some(&b"vendor=abc"[..]));

    let (service, span) = wait_span(&collector, "the request's span", |s| hex(&s.span_id) == hop).await;
    assert_eq!(service, "edge-proxy");
    assert_eq!(hex(&span.trace_id), TRACE);
    assert_eq!(hex(&span.parent_span_id), CLIENT_SPAN);
    assert_eq!(span.name, "GET orders");
    assert_eq!(text(&span, "strangler.route"), "orders");
    assert_eq!(text(&span, "strangler.side"), "legacy");
    assert_eq!(attr(&span, "http.response.status_code"), Some(Value::IntValue(200)));
    assert_eq!(attr(&span, "strangler.weight"), Some(Value::DoubleValue(0.0)));
    assert_eq!(attr(&span, "strangler.override"), Some(Value::BoolValue(false)));
    assert_eq!(attr(&span, "server.port"), Some(Value::IntValue(i64::from(legacy.addr.port()))));
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);

    // The shadow to new: a trace of its own, linked to the hop, never in the client's trace.
    let (_, shadow) = wait_span(&collector, "the shadow's span", |s| s.name == "shadow").await;
    assert_ne!(hex(&shadow.trace_id), TRACE);
    assert!(shadow.parent_span_id.is_empty(), "a root: {shadow:?}");
    assert_eq!(shadow.links.len(), 1);
    assert_eq!((hex(&shadow.links[0].trace_id), hex(&shadow.links[0].span_id)), (TRACE.to_string(), hop.clone()));
    assert_eq!(text(&shadow, "strangler.side"), "new");
    assert_eq!(text(&shadow, "strangler.verdict"), "mismatch");
    let to_new = &new.received()[0];
    let (shadow_trace, shadow_parent, _) = traceparent(to_new).expect("the shadow carries its own context");
    assert_eq!((shadow_trace, shadow_parent), (hex(&shadow.trace_id), hex(&shadow.span_id)));
    // The noise repeat to legacy is part of the shadow's trace, never the client's.
    let repeats: Vec<_> = legacy.received().into_iter().filter(|r| r.path == "/orders/7").collect();
    assert_eq!(repeats.len(), 2, "the request and its noise repeat");
    let repeat = in_trace(&legacy, "/orders/7", &hex(&shadow.trace_id)).expect("the repeat, in the shadow's trace");
    assert_eq!(traceparent(&repeat).map(|(_, parent, _)| parent), Some(hex(&shadow.span_id)));

    // Its comparison: a child of the shadow's span, linked to the hop, naming what differed
    // (the mocks answer with their names).
    let (_, compare) = wait_span(&collector, "the comparison's span", |s| s.name == "compare").await;
    assert_eq!(
        (compare.trace_id.clone(), compare.parent_span_id.clone()),
        (shadow.trace_id.clone(), shadow.span_id.clone())
    );
    assert_eq!(hex(&compare.links[0].span_id), hop);
    assert_eq!(text(&compare, "strangler.verdict"), "mismatch");
    let fields = match attr(&compare, "strangler.differing_fields") {
        Some(Value::ArrayValue(a)) => a
            .values
            .into_iter()
            .filter_map(|v| match v.value {
                Some(Value::StringValue(s)) => Some(s),
                _ => None,
            })
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert!(fields.iter().any(|f| f == "body"), "{fields:?}");

    // Without a traceparent, sampled at 100%: a new trace, the hop its root, carried to legacy.
    client().get(s.url("/orders/8")).send().await.expect("GET");
    let (_, root) = wait_span(&collector, "the new trace's span", |s| {
        s.name == "GET orders" && attr(s, "url.path") == Some(Value::StringValue("/orders/8".into()))
    })
    .await;
    assert_ne!(hex(&root.trace_id), TRACE);
    assert!(root.parent_span_id.is_empty());
    let served = in_trace(&legacy, "/orders/8", &hex(&root.trace_id)).expect("the request, in its new trace");
    assert_eq!(traceparent(&served), Some((hex(&root.trace_id), hex(&root.span_id), "01".to_string())));
    assert_eq!(s.metric_value("strangler_telemetry_spans_total{result=\"dropped\"}").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sample_0_exports_nothing_of_its_own_follows_a_sampled_parent_and_reloads() {
    let collector = MockUpstream::start("collector").await;
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = |telemetry_section: &str| format!("{telemetry_section}{}", orders(&legacy, &new, ""));
    let s = Strangler::start(&body(&telemetry(&collector, "0", "strangler"))).await;
    let c = client();

    for i in 0..20 {
        c.get(s.url(&format!("/orders/{i}"))).send().await.expect("GET");
    }
    assert!(legacy.received().iter().all(|r| traceparent(r).is_none()), "no trace started, none passed on");
    // An unsampled parent is carried on, unsampled, with this hop's span id.
    c.get(s.url("/orders/x")).header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-00")).send().await.expect("GET");
    let (trace, hop, flags) = traceparent(legacy.received().last().expect("received")).expect("carried on");
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "00"));
    assert_ne!(hop, CLIENT_SPAN);
    // A sampled parent is followed whatever `sample` says: its span is the only one exported.
    c.get(s.url("/orders/y")).header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01")).send().await.expect("GET");
    let (_, followed) = wait_span(&collector, "the sampled parent's span", |s| hex(&s.trace_id) == TRACE).await;
    assert_eq!(text(&followed, "url.path"), "/orders/y");
    s.wait_metric("strangler_telemetry_spans_total{result=\"exported\"}", 1.0).await;
    assert_eq!(spans(&collector).len(), 1, "nothing else exported: {:#?}", spans(&collector));

    // Reloaded with 100% and another name: every request is traced under it.
    s.rewrite(&body(&telemetry(&collector, "100", "strangler-canary")));
    s.wait_metric(RELOAD_OK, 1.0).await;
    c.get(s.url("/orders/z")).send().await.expect("GET");
    let (_, hop, _) = traceparent(legacy.received().last().expect("received")).expect("traced after the reload");
    let (service, _) = wait_span(&collector, "the reloaded span", |s| hex(&s.span_id) == hop).await;
    assert_eq!(service, "strangler-canary");

    // Taken out: nothing traced, nothing passed on.
    s.rewrite(&body(""));
    s.wait_metric(RELOAD_OK, 2.0).await;
    c.get(s.url("/orders/w")).send().await.expect("GET");
    assert!(traceparent(legacy.received().last().expect("received")).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_that_is_away_costs_the_client_nothing_and_is_counted() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let away = format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\nsample = 100\n", free_port());
    let s = Strangler::start(&format!("{away}{}", orders(&legacy, &new, ""))).await;
    for i in 0..20 {
        let r = client().get(s.url(&format!("/orders/{i}"))).send().await.expect("GET");
        assert_eq!(r.status(), 200);
    }
    s.wait_metric("strangler_telemetry_spans_total{result=\"failed\"}", 20.0).await;
    assert!(s.log().contains("spans not exported to http://127.0.0.1:"), "{}", s.log());
}
