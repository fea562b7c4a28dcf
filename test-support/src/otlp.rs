//! A real OTLP/gRPC trace receiver for tests: a tonic server of
//! `opentelemetry.proto.collector.trace.v1.TraceService` on `127.0.0.1:0`
//! that keeps every span it is sent, flattened, so a test can check the
//! tree a real host and real plugins exported.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio::sync::watch;

/// One span as the receiver got it, with its resource's service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The trace id, lower-case hex (32 digits).
    pub trace_id: String,
    /// The span id, lower-case hex (16 digits).
    pub span_id: String,
    /// The parent span id, lower-case hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The span's name (`outboard.invoke`, ...).
    pub name: String,
    /// Every attribute, its value rendered as a string.
    pub attributes: BTreeMap<String, String>,
    /// The attributes whose value was sent as an integer (OTLP `Int`),
    /// so a test can tell `2` from `"2"`.
    pub int_attributes: BTreeMap<String, i64>,
    /// The span's status.
    pub status: Status,
    /// The `service.name` of the resource the span came with ("" if none).
    pub service: String,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
}

impl Span {
    /// The attribute `key`, if the span has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The attributes a span should not carry: where in the code it came
    /// from (`code.*`), on which thread (`thread.*`), under which `tracing`
    /// target, and how long it sat busy or idle (`busy_ns`, `idle_ns`).
    pub fn noise(&self) -> Vec<&str> {
        self.attributes
            .keys()
            .map(String::as_str)
            .filter(|k| {
                k.starts_with("code.")
                    || k.starts_with("thread.")
                    || ["target", "busy_ns", "idle_ns"].contains(k)
            })
            .collect()
    }

    /// The attribute `key` if it was sent as an integer; `None` if absent
    /// or of another kind (a string "2" included).
    pub fn int(&self, key: &str) -> Option<i64> {
        self.int_attributes.get(key).copied()
    }
}

/// A span's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No status was set.
    Unset,
    /// Set to Ok.
    Ok,
    /// Set to Error, with the description given.
    Error(String),
}

/// The receiver: a running server and the spans sent to it so far. The
/// server stops when this is dropped.
pub struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    /// Bumped after every export, so `wait_for` wakes on arrival.
    arrivals: watch::Receiver<u64>,
    server: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:0`.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the OTLP receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (bump, arrivals) = watch::channel(0);
        let service = Collector {
            spans: spans.clone(),
            bump,
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(incoming)
                .await
                .expect("the OTLP receiver serves");
        });
        Receiver {
            addr,
            spans,
            arrivals,
            server,
        }
    }

    /// Where to send spans: `http://127.0.0.1:PORT` (for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("receiver lock").clone()
    }

    /// Waits until `pred` holds for the spans received so far and returns
    /// them; panics, listing what did arrive, if it does not within
    /// `timeout`. Wakes on each export, never by polling.
    pub async fn wait_for(&self, pred: impl Fn(&[Span]) -> bool, timeout: Duration) -> Vec<Span> {
        let mut arrivals = self.arrivals.clone();
        let wait = async {
            loop {
                // Marks the current value seen before checking, so an
                // export between the check and `changed` still wakes us.
                arrivals.borrow_and_update();
                let spans = self.spans();
                if pred(&spans) {
                    return spans;
                }
                arrivals.changed().await.expect("the receiver lives");
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(spans) => spans,
            Err(_) => panic!(
                "the OTLP receiver did not get the expected spans within {timeout:?}; it got:\n{}",
                render(&self.spans())
            ),
        }
    }
}

/// One line per span: name, ids, service, status, attributes (for failure
/// messages and reports).
pub fn render(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} trace={} span={} parent={} service={} status={:?} {:?}\n",
                s.name,
                s.trace_id,
                s.span_id,
                s.parent_span_id.as_deref().unwrap_or("-"),
                s.service,
                s.status,
                s.attributes
            )
        })
        .collect()
}

/// The spans as trees, one line each, a child indented under its parent
/// (siblings in the order they started): `name [service] span=ID
/// parent=ID attributes`. Spans whose parent is not among them are roots
/// (a remote parent shows as `(parent ID)` above its root).
pub fn tree(spans: &[Span]) -> String {
    let known: std::collections::BTreeSet<&str> =
        spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    for root in spans.iter().filter(|s| {
        s.parent_span_id
            .as_deref()
            .is_none_or(|p| !known.contains(p))
    }) {
        if let Some(parent) = &root.parent_span_id {
            out.push_str(&format!("(parent {parent})\n"));
        }
        branch(spans, root, 0, &mut out);
    }
    out
}

fn branch(spans: &[Span], span: &Span, depth: usize, out: &mut String) {
    let attrs: Vec<String> = span
        .attributes
        .iter()
        .filter(|(k, _)| k.starts_with("outboard."))
        .map(|(k, v)| format!("{}={v}", k.trim_start_matches("outboard.")))
        .collect();
    let status = match &span.status {
        Status::Error(message) => format!(" ERROR({message})"),
        _ => String::new(),
    };
    out.push_str(&format!(
        "{}{} [{}] span={} parent={} {}{status}\n",
        "  ".repeat(depth),
        span.name,
        span.service,
        span.span_id,
        span.parent_span_id.as_deref().unwrap_or("-"),
        attrs.join(" ")
    ));
    let mut children: Vec<&Span> = spans
        .iter()
        .filter(|c| c.parent_span_id.as_deref() == Some(span.span_id.as_str()))
        .collect();
    children.sort_by_key(|c| c.start_unix_nanos);
    for child in children {
        branch(spans, child, depth + 1, out);
    }
}

struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    bump: watch::Sender<u64>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let flat = flatten(request.into_inner());
        self.spans.lock().expect("receiver lock").extend(flat);
        self.bump.send_modify(|n| *n += 1);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let status = match span.status {
                    Some(s) if s.code == StatusCode::Error as i32 => Status::Error(s.message),
                    Some(s) if s.code == StatusCode::Ok as i32 => Status::Ok,
                    _ => Status::Unset,
                };
                out.push(Span {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    attributes: attributes(&span.attributes),
                    int_attributes: ints(&span.attributes),
                    status,
                    service: service.clone(),
                    start_unix_nanos: span.start_time_unix_nano,
                });
            }
        }
    }
    out
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(value).unwrap_or_default(),
            )
        })
        .collect()
}

fn ints(kvs: &[KeyValue]) -> BTreeMap<String, i64> {
    kvs.iter()
        .filter_map(|kv| match kv.value.as_ref()?.value {
            Some(any_value::Value::IntValue(i)) => Some((kv.key.clone(), i)),
            _ => None,
        })
        .collect()
}

fn value(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(value).collect();
            format!("[{}]", items.join(","))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn proto_span(
        span_id: u8,
        parent: Option<u8>,
        name: &str,
    ) -> opentelemetry_proto::tonic::trace::v1::Span {
        opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![0xab; 16],
            span_id: vec![span_id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            attributes: vec![
                kv(
                    "outboard.phase",
                    any_value::Value::StringValue("build".into()),
                ),
                kv("outboard.attempt", any_value::Value::IntValue(2)),
            ],
            status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                message: "plugin crashed".into(),
                code: StatusCode::Error as i32,
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_real_client_export_arrives_flattened_and_wakes_the_waiter() {
        let receiver = Receiver::start().await;
        assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
        assert!(receiver.spans().is_empty());

        let endpoint = receiver.endpoint();
        let send = tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint)
                .await
                .expect("connect to the receiver");
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv(
                            "service.name",
                            any_value::Value::StringValue("outboard".into()),
                        )],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![proto_span(1, None, "root"), proto_span(2, Some(1), "child")],
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
            };
            client.export(request).await.expect("export accepted");
        });

        let spans = receiver
            .wait_for(|s| s.len() == 2, Duration::from_secs(30))
            .await;
        send.await.expect("sender finished");
        let child = spans.iter().find(|s| s.name == "child").expect("child");
        let root = spans.iter().find(|s| s.name == "root").expect("root");
        assert_eq!(root.parent_span_id, None);
        assert_eq!(child.parent_span_id.as_deref(), Some(root.span_id.as_str()));
        assert_eq!(child.trace_id, "ab".repeat(16));
        assert_eq!(child.span_id, "02".repeat(8));
        assert_eq!(child.service, "outboard");
        assert_eq!(child.attr("outboard.phase"), Some("build"));
        assert_eq!(child.attr("outboard.attempt"), Some("2"));
        assert_eq!(child.int("outboard.attempt"), Some(2));
        assert_eq!(child.int("outboard.phase"), None, "a string is no Int");
        assert_eq!(child.status, Status::Error("plugin crashed".into()));
        assert_eq!(receiver.spans(), spans);
        assert_eq!(
            tree(&spans),
            "root [outboard] span=0101010101010101 parent=- attempt=2 phase=build \
             ERROR(plugin crashed)\n  \
             child [outboard] span=0202020202020202 parent=0101010101010101 attempt=2 \
             phase=build ERROR(plugin crashed)\n"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "did not get the expected spans")]
    async fn wait_for_gives_up_at_its_deadline_and_says_what_arrived() {
        let receiver = Receiver::start().await;
        receiver
            .wait_for(|s| !s.is_empty(), Duration::from_millis(50))
            .await;
    }
}
