//! The one command pipeline every agency service runs:
//!
//! authenticate → authorise → validate → pseudonymise and seal → publish →
//! acknowledge.
//!
//! A service contributes only its RPC table and, per RPC, a rule function
//! that checks the RPC's own fields and decides the event payload. Nothing
//! is recorded unless every step passes, and the reply is sent only after
//! JetStream has acknowledged the event.

use std::sync::Arc;

use async_nats::{header::HeaderMap, jetstream::publish::PublishAck};
use bytes::Bytes;
use futures::{stream::FuturesOrdered, StreamExt};
use prost::Message;
use tonic::{metadata::MetadataMap, Request, Response, Status};

use hub_core::{
    auth::{Agency, Caller, Rpc},
    partnerships::PartnershipRegister,
    pseudonym::Pseudonymiser,
    sealing,
    validate::Violations,
    Error,
};
use hub_proto::{
    common::{
        batch_result::Outcome, BatchAck, BatchError, BatchFieldViolation, BatchResult, EventAck,
    },
    event_type,
    events::{Event, PersonalData},
    CommandFields, SCHEMA_VERSION,
};

use crate::{
    eventlog::{EventLog, ReadMessage, PUBLISH_TIMEOUT},
    keystore::KeyStore,
    ApiError,
};

/// Header that carried the keyed digest of the request that produced an
/// event, in messages recorded before decision record 0012 (now the
/// event's `request_digest`). Read, never written.
pub const HEADER_REQUEST_DIGEST: &str = "Hub-Request-Digest";
/// Header that carried the event id in the same messages. Read, never
/// written.
pub const HEADER_EVENT_ID: &str = "Hub-Event-Id";

pub use hub_core::command::{Checker, Decision, RuleContext};
pub use jiff::Timestamp;

/// What a batch command that sets none of the service's requests is told.
pub const NO_COMMAND: &str = "each command of a batch must set one of the service's requests";

/// Everything the pipeline needs, shared by every RPC of a service.
#[derive(Clone)]
pub struct CommandPipeline {
    agency: Agency,
    auth: Arc<crate::authn::Authenticator>,
    partnerships: Arc<PartnershipRegister>,
    pseudonymiser: Pseudonymiser,
    keys: KeyStore,
    log: EventLog,
    /// This agency's messages, read back for retried commands.
    read_back: crate::eventlog::ReadBack,
}

impl CommandPipeline {
    /// The NATS client (for health).
    pub fn client(&self) -> &async_nats::Client {
        self.log.client()
    }

    pub fn new(
        agency: Agency,
        auth: Arc<crate::authn::Authenticator>,
        partnerships: PartnershipRegister,
        pseudonymiser: Pseudonymiser,
        keys: KeyStore,
        log: EventLog,
    ) -> Self {
        Self {
            agency,
            auth,
            partnerships: Arc::new(partnerships),
            pseudonymiser,
            keys,
            read_back: crate::eventlog::ReadBack::start(
                log.clone(),
                format!("hub.events.{}.>", agency.as_str()),
            ),
            log,
        }
    }

    /// Runs one command. `rules` checks the RPC's own fields (adding to the
    /// violations) and returns the event payload.
    pub async fn execute<R, F>(
        &self,
        rpc: Rpc,
        request: Request<R>,
        rules: F,
    ) -> Result<Response<EventAck>, Status>
    where
        R: CommandFields,
        F: FnOnce(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
    {
        let authorization = authorization(request.metadata());
        let req = request.into_inner();
        let started = std::time::Instant::now();
        let result = self.run(rpc, authorization.as_deref(), &req, rules).await;
        observe(rpc, req.request_id(), started, &result);
        result.map(Response::new).map_err(|e| ApiError(e).into())
    }

    async fn run<R, F>(
        &self,
        rpc: Rpc,
        authorization: Option<&str>,
        req: &R,
        rules: F,
    ) -> Result<EventAck, Error>
    where
        R: CommandFields,
        F: FnOnce(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
    {
        let caller = self.auth.authenticate(authorization)?;
        let caller = &*caller;
        let now = Timestamp::now();
        let (decision, occurred_at) = self.checker().check(rpc, caller, req, rules, now)?;
        // Everything from here waits on NATS: one bound for all of it, so a
        // caller hears UNAVAILABLE within 5 s whatever is slow.
        let record = async {
            let event = self
                .seal(rpc, caller, req, decision, occurred_at, now)
                .await?;
            self.send(event).await?.await
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, record).await {
            Ok(result) => result,
            Err(_) => Err(Error::unavailable(format!(
                "the event log did not acknowledge within {}s; retry with the same request_id",
                PUBLISH_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The pure half of the pipeline: authorise and validate.
    pub fn checker(&self) -> Checker<'_> {
        Checker {
            agency: self.agency,
            partnerships: &self.partnerships,
            pseudonymiser: &self.pseudonymiser,
        }
    }

    /// Pseudonymise and seal: the event as it will be published.
    async fn seal<R: CommandFields>(
        &self,
        rpc: Rpc,
        caller: &Caller,
        req: &R,
        decision: Decision,
        occurred_at: Timestamp,
        now: Timestamp,
    ) -> Result<SealedEvent, Error> {
        let partnership_code = req.partnership_code();
        let event_id = uuid::Uuid::now_v7().to_string();
        let keys = decision
            .person
            .as_ref()
            .map(|p| self.pseudonymiser.person_keys(p));
        let sealed = match (&decision.person, &keys) {
            (Some(person), Some(keys))
                if person.has_personal_data() || !decision.person_text.is_empty() =>
            {
                let data_key = self.keys.get_or_create(&keys.person_key).await?;
                let data = PersonalData {
                    given_name: person.given_name.clone(),
                    family_name: person.family_name.clone(),
                    date_of_birth: person
                        .date_of_birth
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    text: decision.person_text.clone(),
                };
                Some(sealing::seal(&data_key, &keys.person_key, &event_id, &data))
            }
            _ => None,
        };
        let event_type = event_type(&decision.payload);
        let (person_key, linked_person_keys, client_key) = keys
            .map(|k| (k.person_key, k.linked_person_keys, k.client_key))
            .unwrap_or_default();
        let digest = self.pseudonymiser.request_digest(
            &format!("{}/{}", self.agency.as_str(), rpc.name()),
            &req.encode_to_vec(),
        );
        let event = Event {
            event_id: event_id.clone(),
            event_type: event_type.to_string(),
            schema_version: SCHEMA_VERSION,
            occurred_at: Some(to_proto(occurred_at)),
            recorded_at: Some(to_proto(now)),
            agency: self.agency.as_str().to_string(),
            org_code: caller.org_code.clone(),
            partnership_code: partnership_code.to_string(),
            actor_user_id: caller.user_id.clone(),
            actor_role: caller.role.as_str().to_string(),
            person_key,
            request_id: req.request_id().to_string(),
            linked_person_keys,
            client_key: client_key.unwrap_or_default(),
            request_digest: digest.clone(),
            sealed,
            payload: Some(decision.payload),
        };
        Ok(SealedEvent {
            subject: format!(
                "hub.events.{}.{}.{}",
                self.agency.as_str(),
                partnership_code,
                event_type
            ),
            msg_id: format!("{}:{}", caller.org_code, req.request_id()),
            digest,
            event_id,
            org_code: caller.org_code.clone(),
            body: Bytes::from(event.encode_to_vec()),
        })
    }

    /// Publishes `event` without waiting; the future waits for JetStream's
    /// acknowledgement and answers with it (see [`Self::acknowledge`]).
    async fn send(
        &self,
        event: SealedEvent,
    ) -> Result<impl std::future::Future<Output = Result<EventAck, Error>> + Send + 'static, Error>
    {
        let started = std::time::Instant::now();
        let pending = self
            .log
            .send(
                event.subject.clone(),
                &event.msg_id,
                HeaderMap::new(),
                event.body.clone(),
            )
            .await?;
        let pipeline = self.clone();
        Ok(async move {
            let ack = pending.await?;
            metrics::histogram!("hub_publish_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            pipeline.acknowledge(&event, ack).await
        })
    }

    /// Acknowledge only what JetStream acknowledged. A duplicate id with
    /// the same body gets the first recording's ack; with another body it
    /// is a conflict.
    async fn acknowledge(&self, event: &SealedEvent, ack: PublishAck) -> Result<EventAck, Error> {
        if !ack.duplicate {
            return Ok(EventAck {
                event_id: event.event_id.clone(),
                stream_sequence: ack.sequence,
                duplicate: false,
            });
        }
        // Read back through this agency's own subjects only: a request id
        // this organisation used with another agency is not ours to read.
        let first = self
            .read_back
            .message(ack.sequence)
            .await?
            .map(|m| FirstRecording::of(&m))
            .transpose()?
            .unwrap_or_default();
        if first.digest != event.digest {
            return Err(Error::AlreadyExists(format!(
                "request_id: already used by organisation {} for a different request; use a new request_id",
                event.org_code
            )));
        }
        Ok(EventAck {
            event_id: first.event_id,
            stream_sequence: ack.sequence,
            duplicate: true,
        })
    }

    /// The caller of a batch upload: authenticated once for the whole call.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        self.auth
            .authenticate(authorization(metadata).as_deref())
            .map(|caller| (*caller).clone())
            .map_err(|e| ApiError(e).into())
    }

    /// A batch upload by `caller` (see [`Batch`]).
    pub fn batch(&self, caller: Caller) -> Batch<'_> {
        Batch {
            pipeline: self,
            caller,
            results: Vec::new(),
            in_flight: FuturesOrdered::new(),
        }
    }
}

/// A command that passed every check, pseudonymised, sealed and encoded:
/// what is published, and what its acknowledgement needs.
struct SealedEvent {
    subject: String,
    msg_id: String,
    digest: String,
    event_id: String,
    org_code: String,
    body: Bytes,
}

/// What a retried command is answered from: the first recording of its
/// request id (an empty one when that message is not this agency's, which
/// no digest matches).
#[derive(Debug, Default, PartialEq)]
struct FirstRecording {
    event_id: String,
    digest: String,
}

impl FirstRecording {
    /// Messages recorded before decision record 0012 carry the event id and
    /// request digest in headers; later ones only in the event itself, so
    /// that every reader of the stream is spared two headers per message.
    fn of(message: &ReadMessage) -> Result<Self, Error> {
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
        if let Some(digest) = header(HEADER_REQUEST_DIGEST) {
            return Ok(Self {
                event_id: header(HEADER_EVENT_ID).unwrap_or_default(),
                digest,
            });
        }
        let event = Event::decode(message.payload.clone())
            .map_err(|e| Error::internal_from("decoding a recorded event read back", e))?;
        Ok(Self {
            event_id: event.event_id,
            digest: event.request_digest,
        })
    }
}

fn authorization(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("authorization")
        .map(|v| v.to_str().unwrap_or_default().to_string())
}

/// An agency service's `RecordBatch`, the label of commands a batch
/// refuses before they reach their own RPC's rules.
fn record_batch(agency: Agency) -> Rpc {
    use hub_core::auth::{
        AmbulanceRpc, CustodyRpc, IdentityRpc, PharmacyRpc, PrisonRpc, TreatmentRpc,
    };
    match agency {
        Agency::Custody => CustodyRpc::RecordBatch.into(),
        Agency::Prison => PrisonRpc::RecordBatch.into(),
        Agency::Pharmacy => PharmacyRpc::RecordBatch.into(),
        Agency::Treatment => TreatmentRpc::RecordBatch.into(),
        Agency::Ambulance => AmbulanceRpc::RecordBatch.into(),
        Agency::Identity => IdentityRpc::RecordBatch.into(),
    }
}

/// Metrics and the log line of one command, recorded or refused.
fn observe(
    rpc: Rpc,
    request_id: &str,
    started: std::time::Instant,
    result: &Result<EventAck, Error>,
) {
    let code = match result {
        Ok(_) => "OK",
        Err(e) => status_code_name(e),
    };
    let labels = [("rpc", rpc.name().to_string()), ("code", code.to_string())];
    metrics::counter!("hub_commands_total", &labels).increment(1);
    metrics::histogram!("hub_command_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(ack) => tracing::info!(
            rpc = rpc.name(),
            request_id,
            sequence = ack.stream_sequence,
            duplicate = ack.duplicate,
            "recorded"
        ),
        Err(e) => tracing::info!(rpc = rpc.name(), request_id, error = %e, "refused"),
    }
}

/// Most commands of one batch upload.
pub const MAX_BATCH: usize = 10_000;
/// Most commands of one batch awaiting JetStream's acknowledgement at once.
const BATCH_IN_FLIGHT: usize = 512;

type PendingAck = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, Result<EventAck, Error>)> + Send + 'static>,
>;

/// One batch upload (`RecordBatch`): each command goes through the same
/// checks as alone and is published as soon as it passes, without waiting
/// for the previous one's acknowledgement (up to [`BATCH_IN_FLIGHT`] at
/// once), so a bulk upload costs one round trip per batch rather than one
/// per command. Commands reach the stream in the order sent. The reply
/// waits for every acknowledgement: a command is reported recorded only
/// once JetStream holds it.
pub struct Batch<'a> {
    pipeline: &'a CommandPipeline,
    caller: Caller,
    results: Vec<Option<Result<EventAck, Error>>>,
    in_flight: FuturesOrdered<PendingAck>,
}

impl Batch<'_> {
    /// Checks, seals and sends the next command of the batch.
    pub async fn push<R, F>(&mut self, rpc: Rpc, req: &R, rules: F)
    where
        R: CommandFields,
        F: FnOnce(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
    {
        let index = self.results.len();
        self.results.push(None);
        let started = std::time::Instant::now();
        while self.in_flight.len() >= BATCH_IN_FLIGHT {
            self.settle_one().await;
        }
        let pipeline = self.pipeline;
        let now = Timestamp::now();
        let sent = async {
            let (decision, occurred_at) =
                pipeline
                    .checker()
                    .check(rpc, &self.caller, req, rules, now)?;
            let event = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                pipeline.seal(rpc, &self.caller, req, decision, occurred_at, now),
            )
            .await
            .map_err(|_| {
                Error::unavailable(format!(
                    "the key store did not answer within {}s; retry with the same request_id",
                    PUBLISH_TIMEOUT.as_secs()
                ))
            })??;
            pipeline.send(event).await
        }
        .await;
        match sent {
            Err(e) => self.refuse(index, req.request_id(), e),
            Ok(acknowledged) => {
                let request_id = req.request_id().to_string();
                self.in_flight.push_back(Box::pin(async move {
                    let result = acknowledged.await;
                    observe(rpc, &request_id, started, &result);
                    (index, result)
                }));
            }
        }
    }

    /// Whether the batch holds [`MAX_BATCH`] commands: the caller stops
    /// reading the upload and answers with [`Batch::overflow`].
    pub fn is_full(&self) -> bool {
        self.results.len() >= MAX_BATCH
    }

    /// The answer to an upload that sent more than [`MAX_BATCH`] commands:
    /// `RESOURCE_EXHAUSTED`, once every command already sent is settled
    /// (so what was recorded stays recorded, and a retry of those
    /// commands with the same request ids answers as duplicates). Nothing
    /// past the limit is read.
    pub async fn overflow(self) -> Status {
        let reply = self.finish().await;
        ApiError(Error::ResourceExhausted(format!(
            "a batch holds at most {MAX_BATCH} commands and this upload sent more: the first \
             {MAX_BATCH} were checked ({} recorded, {} duplicates, {} refused) and nothing after \
             them was read; send the rest in another batch, and retry the first {MAX_BATCH} with \
             the same request ids to get their acknowledgements",
            reply.recorded, reply.duplicates, reply.refused
        )))
        .into()
    }

    /// A command of the batch that is not one of the service's RPCs.
    pub fn push_empty(&mut self) {
        let index = self.results.len();
        self.results.push(None);
        self.refuse(index, "", Error::invalid("command", NO_COMMAND));
    }

    fn refuse(&mut self, index: usize, request_id: &str, error: Error) {
        let result = Err(error);
        observe(
            record_batch(self.pipeline.agency),
            request_id,
            std::time::Instant::now(),
            &result,
        );
        self.results[index] = Some(result);
    }

    async fn settle_one(&mut self) {
        if let Some((index, result)) = self.in_flight.next().await {
            self.results[index] = Some(result);
        }
    }

    /// Waits for every acknowledgement; the reply, one result per command.
    pub async fn finish(mut self) -> BatchAck {
        while !self.in_flight.is_empty() {
            self.settle_one().await;
        }
        let mut reply = BatchAck::default();
        for result in self.results {
            let outcome = match result {
                Some(Ok(ack)) => {
                    if ack.duplicate {
                        reply.duplicates += 1;
                    } else {
                        reply.recorded += 1;
                    }
                    Outcome::Ack(ack)
                }
                Some(Err(e)) => {
                    reply.refused += 1;
                    Outcome::Error(batch_error(e))
                }
                None => {
                    reply.refused += 1;
                    Outcome::Error(batch_error(Error::internal("the command was not settled")))
                }
            };
            reply.results.push(BatchResult {
                outcome: Some(outcome),
            });
        }
        tracing::info!(
            recorded = reply.recorded,
            duplicates = reply.duplicates,
            refused = reply.refused,
            "batch settled"
        );
        reply
    }
}

/// A refused command of a batch, as its status would have been alone.
fn batch_error(e: Error) -> BatchError {
    let field_violations = match &e {
        Error::Invalid(violations) => violations
            .iter()
            .map(|v| BatchFieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    BatchError {
        code: status_code_name(&e).to_string(),
        message: Status::from(ApiError(e)).message().to_string(),
        field_violations,
    }
}

/// The gRPC status name an error becomes (for metrics).
fn status_code_name(e: &Error) -> &'static str {
    match e {
        Error::Invalid(_) => "INVALID_ARGUMENT",
        Error::Unauthenticated(_) => "UNAUTHENTICATED",
        Error::PermissionDenied(_) => "PERMISSION_DENIED",
        Error::AlreadyExists(_) => "ALREADY_EXISTS",
        Error::Unavailable(_) => "UNAVAILABLE",
        Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
        Error::Config { .. } | Error::Internal(_) => "INTERNAL",
    }
}

pub fn to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

impl CommandPipeline {
    /// Loads the settings' files, connects to NATS, creates or checks the
    /// stream and the key store: everything an agency service needs before
    /// it takes its first call.
    pub async fn start(
        agency: Agency,
        args: &crate::config::CommonArgs,
        service_name: &str,
        auth: Arc<crate::authn::Authenticator>,
    ) -> Result<Self, Error> {
        let partnerships = args.load_partnerships()?;
        let secret = args.load_secret()?;
        let client = crate::eventlog::connect(&args.nats, service_name).await?;
        let log = EventLog::open(client, &args.nats.stream, args.stream_settings()).await?;
        let keys = KeyStore::open_reading(&log, &secret).await?;
        tracing::info!(
            partnerships = partnerships.len(),
            stream = log.stream_name(),
            "ready for commands"
        );
        Ok(Self::new(
            agency,
            auth,
            partnerships,
            Pseudonymiser::new(&secret),
            keys,
            log,
        ))
    }
}

/// An agency's RPC table: the tonic service whose every RPC is one
/// pipeline call with its rule, plus `RecordBatch`, which runs the same
/// rules for each command of a bulk upload (the batch command's oneof
/// variants are named as the RPCs).
///
/// ```ignore
/// hub_runtime::rpc_table!(PrisonApi: PrisonService as PrisonRpc, PrisonCommand => prison_command::Command {
///     record_release_date(RecordReleaseDateRequest) => RecordReleaseDate, rules::record_release_date;
/// });
/// ```
#[macro_export]
macro_rules! rpc_table {
    ($api:ident : $service:path as $ids:ident, $batch:ty => $oneof:path { $( $method:ident($request:ty) => $rpc:ident, $rule:path; )* }) => {
        /// The RPC table: each RPC runs the shared command pipeline with its rule.
        pub struct $api {
            pipeline: $crate::pipeline::CommandPipeline,
        }

        impl $api {
            pub fn new(pipeline: $crate::pipeline::CommandPipeline) -> Self {
                Self { pipeline }
            }

            /// Authorises and validates one command of this service as
            /// its RPC would, and returns what it decided: pure, nothing
            /// recorded (the fuzz targets drive every RPC through it).
            pub fn check_command(
                checker: &$crate::pipeline::Checker<'_>,
                caller: &hub_core::auth::Caller,
                command: &$batch,
                now: $crate::pipeline::Timestamp,
            ) -> Result<$crate::pipeline::Decision, hub_core::Error> {
                use $oneof as Command;
                match &command.command {
                    $( Some(Command::$rpc(r)) => checker.check(hub_proto::rpc::$ids::$rpc.into(), caller, r, $rule, now).map(|(d, _)| d), )*
                    None => Err(hub_core::Error::invalid("command", $crate::pipeline::NO_COMMAND)),
                }
            }
        }

        #[tonic::async_trait]
        impl $service for $api {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<hub_proto::common::EventAck>, tonic::Status> {
                    self.pipeline.execute(hub_proto::rpc::$ids::$rpc.into(), request, $rule).await
                }
            )*

            async fn record_batch(
                &self,
                request: tonic::Request<tonic::Streaming<$batch>>,
            ) -> Result<tonic::Response<hub_proto::common::BatchAck>, tonic::Status> {
                use $oneof as Command;
                let caller = self.pipeline.authenticate(request.metadata())?;
                let mut commands = request.into_inner();
                let mut batch = self.pipeline.batch(caller);
                while let Some(command) = commands.message().await? {
                    if batch.is_full() {
                        return Err(batch.overflow().await);
                    }
                    match command.command {
                        $( Some(Command::$rpc(r)) => batch.push(hub_proto::rpc::$ids::$rpc.into(), &r, $rule).await, )*
                        None => batch.push_empty(),
                    }
                }
                Ok(tonic::Response::new(batch.finish().await))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, digest: &str) -> Bytes {
        Bytes::from(
            Event {
                event_id: id.into(),
                request_digest: digest.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    }

    #[test]
    fn a_first_recording_is_read_from_the_event_itself() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", "ORG1:req-1");
        let message = ReadMessage {
            headers,
            payload: event("e-1", "d-1"),
        };
        assert_eq!(
            FirstRecording::of(&message).unwrap(),
            FirstRecording {
                event_id: "e-1".into(),
                digest: "d-1".into()
            }
        );
    }

    #[test]
    fn a_recording_made_before_0012_is_read_from_its_headers() {
        // Then the event had no digest of its own: the headers speak for it.
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_REQUEST_DIGEST, "d-old");
        headers.insert(HEADER_EVENT_ID, "e-old");
        let message = ReadMessage {
            headers,
            payload: event("e-old", ""),
        };
        assert_eq!(
            FirstRecording::of(&message).unwrap(),
            FirstRecording {
                event_id: "e-old".into(),
                digest: "d-old".into()
            }
        );
    }

    #[test]
    fn a_body_that_is_no_event_is_an_internal_error_not_a_match() {
        let message = ReadMessage {
            headers: HeaderMap::new(),
            payload: Bytes::from_static(&[0xff, 0xff, 0xff]),
        };
        assert!(matches!(
            FirstRecording::of(&message),
            Err(Error::Internal(_))
        ));
    }
}
