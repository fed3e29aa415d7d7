//! `MessagingService/SendAndReceive`: one envelope in, its message's
//! payload run through the node in a fresh sandbox, one envelope out.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost_types::{Any, Struct};
use tonic::{Code, Request, Response, Status};

use super::drain::Drain;
use super::payload::{self, PayloadError, proto_of};
use super::proto::messaging::ProtoEnvelope;
use super::proto::messaging::messaging_service_server::MessagingService;
use super::proto::payloads::{BatchProto, ProtoMessage};
use crate::core::{Event, LaneLimits, RunError, Runner, Terms};
use crate::metrics::Metrics;
use crate::sandbox::{ErrorCode, Limits, NamedValue, NodeComponent, Value};

/// A request's deadline when its `ttl` is 0: Juturna's 30 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The longest `ttl` honoured: Juturna's 300 s.
pub const MAX_TTL: Duration = Duration::from_secs(300);

/// What a served node runs under.
#[derive(Debug, Clone)]
pub struct Served {
    /// The node.
    pub node: Arc<NodeComponent>,
    /// Its limits; a request's `ttl` shortens the deadline, never lengthens it.
    pub limits: Limits,
    /// The name replies are sent as (`sender`): Juturna's pipe name.
    pub pipe_name: String,
    /// Configuration for requests that send none (`--config`).
    pub default_config: serde_json::Map<String, serde_json::Value>,
    /// Requests run at once; beyond, `RESOURCE_EXHAUSTED`.
    pub concurrency: u64,
}

/// The service.
#[derive(Debug)]
pub struct Messaging {
    served: Served,
    runner: Runner,
    /// Whether the node declares a `configuration` input.
    takes_configuration: bool,
    drain: Arc<Drain>,
    metrics: Metrics,
}

impl Messaging {
    /// Serves `served` with `runner`, counting requests by status in
    /// `metrics` (made with [`Metrics::with_requests`]).
    pub fn new(served: Served, runner: Runner, metrics: Metrics) -> Self {
        let takes_configuration = served
            .node
            .info()
            .inputs
            .iter()
            .any(|port| port.name == "configuration");
        Self {
            served,
            runner,
            takes_configuration,
            drain: Arc::default(),
            metrics,
        }
    }

    /// The drain this service obeys; see [`Drain`].
    pub fn drain(&self) -> Arc<Drain> {
        self.drain.clone()
    }

    /// The metrics requests are counted in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn handle(&self, envelope: ProtoEnvelope) -> Result<ProtoEnvelope, Status> {
        let received = Instant::now();
        let Some(_entered) = self.drain.enter() else {
            return Err(Status::unavailable(
                "node-host is shutting down and takes no new requests; send this one to another server or retry after it restarts",
            ));
        };
        if envelope.sender.is_empty() {
            return Err(Status::invalid_argument(
                "Missing sender in request envelope",
            ));
        }
        let ttl = match envelope.ttl {
            ttl if ttl <= 0 => DEFAULT_TTL,
            ttl => Duration::from_secs(ttl as u64).min(MAX_TTL),
        };
        let deadline = received + ttl;
        let configuration = self.takes_configuration.then(|| {
            let configuration = match envelope.configuration {
                Some(config) if !config.fields.is_empty() => payload::json_of_struct(config),
                _ => self.served.default_config.clone(),
            };
            NamedValue {
                name: "configuration".into(),
                value: Value::Json(serde_json::Value::Object(configuration).to_string()),
            }
        });
        let mut message = envelope.message.unwrap_or_default();
        let (payload, class) = match payload::batch(message.payload.as_ref()) {
            None => {
                let outputs = self
                    .run_message(message.payload.as_ref(), configuration, ttl, deadline)
                    .await?;
                payload::of_outputs(&outputs).map_err(invalid_output)?
            }
            // One sandbox per message, one after another within the ttl.
            Some(batch) => {
                let batch = batch.map_err(refused)?;
                let mut replies = Vec::with_capacity(batch.messages.len());
                for (index, message) in batch.messages.into_iter().enumerate() {
                    let in_batch = |status: Status| {
                        Status::new(
                            status.code(),
                            format!("batch message {index}: {}", status.message()),
                        )
                    };
                    let outputs = self
                        .run_message(
                            message.payload.as_ref(),
                            configuration.clone(),
                            ttl,
                            deadline,
                        )
                        .await
                        .map_err(in_batch)?;
                    let (payload, _) = payload::of_outputs(&outputs)
                        .map_err(invalid_output)
                        .map_err(in_batch)?;
                    replies.push(reply_message(message, payload));
                }
                let batch = BatchProto { messages: replies };
                (payload::any("BatchProto", &batch), "Batch")
            }
        };
        message.payload = None;
        let reply = reply_message(message, payload);
        let processing = received.elapsed().as_secs_f64();
        Ok(ProtoEnvelope {
            id: uuid::Uuid::new_v4().to_string(),
            message: Some(reply),
            sender: self.served.pipe_name.clone(),
            receiver: envelope.sender,
            response_to: envelope.id,
            ttl: ttl.as_secs() as i64,
            created_at: unix_now(),
            configuration: Some(Struct::default()),
            metadata: Some(Struct {
                fields: [(
                    "processing_time".to_owned(),
                    proto_of(serde_json::json!(processing)),
                )]
                .into(),
            }),
            priority: 0,
            // As Juturna fills them: the reply payload's class name here.
            request_type: class.to_owned(),
            response_type: String::new(),
        })
    }

    /// Runs one message's payload in a fresh sandbox, by `deadline`.
    async fn run_message(
        &self,
        payload: Option<&Any>,
        configuration: Option<NamedValue>,
        ttl: Duration,
        deadline: Instant,
    ) -> Result<Vec<(String, Value)>, Status> {
        let mut inputs = payload::inputs(payload).map_err(refused)?;
        if !payload::is_object(payload) {
            // A media payload brings all its fields: the node takes those
            // it declares (an Object's keys are the caller's, all passed).
            let declared = &self.served.node.info().inputs;
            inputs.retain(|input| declared.iter().any(|port| port.name == input.name));
        }
        inputs.extend(configuration);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(ttl));
        }
        let limits = Limits {
            timeout: self.served.limits.timeout.min(left),
            ..self.served.limits.clone()
        };
        let event = Event {
            id: uuid::Uuid::new_v4().to_string(),
            account: 0,
            node: self.served.node.name().to_owned(),
            inputs,
            deadline: Some(deadline),
        };
        let lane = LaneLimits {
            concurrency: self.served.concurrency,
            queue: 0,
        };
        let permit = self
            .runner
            .admit(&event, lane)
            .await
            .map_err(|err| run_failed(err, ttl))?;
        let terms = Terms {
            limits,
            secrets: Arc::default(),
        };
        let outcome = self
            .runner
            .run(permit, event, self.served.node.clone(), terms, |_| {})
            .await
            .map_err(|err| run_failed(err, ttl))?;
        outcome.result.map_err(|failure| {
            tracing::info!(
                code = failure.code.as_str(),
                "a Juturna request failed in the node"
            );
            Status::new(
                status_code(failure.code),
                format!("{}: {}", failure.code.as_str(), failure.message),
            )
        })
    }
}

/// The reply to `message`: its creator, version, meta, timers and id kept,
/// `payload` in it.
fn reply_message(message: ProtoMessage, payload: Any) -> ProtoMessage {
    ProtoMessage {
        created_at: unix_now(),
        creator: message.creator,
        version: message.version,
        payload: Some(payload),
        meta: message.meta,
        timers: message.timers,
        id: message.id,
    }
}

#[tonic::async_trait]
impl MessagingService for Messaging {
    async fn send_and_receive(
        &self,
        request: Request<ProtoEnvelope>,
    ) -> Result<Response<ProtoEnvelope>, Status> {
        let answer = self.handle(request.into_inner()).await;
        let code = match &answer {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        self.metrics.request(code_name(code));
        answer.map(Response::new)
    }
}

/// A payload the node cannot take.
fn refused(err: PayloadError) -> Status {
    let code = match err {
        PayloadError::Unsupported(_) => Code::Unimplemented,
        PayloadError::Missing | PayloadError::NestedBatch | PayloadError::Malformed(..) => {
            Code::InvalidArgument
        }
    };
    Status::new(code, err.to_string())
}

/// The runner's refusal as a status.
fn run_failed(err: RunError, ttl: Duration) -> Status {
    match err {
        RunError::QueueFull(full) => Status::resource_exhausted(format!(
            "the node is busy: {} requests are running, as many as --concurrency allows; retry shortly",
            full.running
        )),
        RunError::Timeout { .. } => timed_out(ttl),
        RunError::NoThread(_) | RunError::Lost => Status::internal(err.to_string()),
    }
}

/// The status of a node's failure: the caller's fault, the limits', or the
/// node's.
fn status_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidInput => Code::InvalidArgument,
        ErrorCode::Deadline => Code::DeadlineExceeded,
        ErrorCode::OutOfFuel | ErrorCode::MemoryLimit | ErrorCode::OutputTooLarge => {
            Code::ResourceExhausted
        }
        _ => Code::Internal,
    }
}

/// Juturna's own words for a request past its ttl.
fn timed_out(ttl: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "Node processing timed out after {}s",
        ttl.as_secs()
    ))
}

/// Outputs that cannot be a payload.
fn invalid_output(err: String) -> Status {
    Status::internal(format!("invalid_output: {err}"))
}

/// A status code as gRPC names it, e.g. `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
