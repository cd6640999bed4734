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

use async_nats::header::HeaderMap;
use bytes::Bytes;
use jiff::Timestamp;
use prost::Message;
use tonic::{Request, Response, Status};

use hub_core::{
    auth::{Action, Agency, Caller, TokenRegistry},
    partnerships::PartnershipRegister,
    pseudonym::Pseudonymiser,
    sealing,
    time::london_date,
    validate::{self, Violations},
    Error,
};
use hub_proto::{
    common::EventAck,
    event_type,
    events::{Event, PersonalData},
    CommandFields, SCHEMA_VERSION,
};

use crate::{
    eventlog::{EventLog, PUBLISH_TIMEOUT},
    keystore::KeyStore,
    ApiError,
};

/// Header carrying the keyed digest of the request that produced an event.
pub const HEADER_REQUEST_DIGEST: &str = "Hub-Request-Digest";
/// Header carrying the event id (so a duplicate can be answered without
/// decoding the body).
pub const HEADER_EVENT_ID: &str = "Hub-Event-Id";
pub const HEADER_EVENT_TYPE: &str = "Hub-Event-Type";

pub use hub_core::command::{Decision, RuleContext};

/// Everything the pipeline needs, shared by every RPC of a service.
#[derive(Clone)]
pub struct CommandPipeline {
    agency: Agency,
    tokens: Arc<TokenRegistry>,
    partnerships: Arc<PartnershipRegister>,
    pseudonymiser: Pseudonymiser,
    keys: KeyStore,
    log: EventLog,
}

impl CommandPipeline {
    /// The NATS client (for health).
    pub fn client(&self) -> &async_nats::Client {
        self.log.client()
    }

    pub fn new(
        agency: Agency,
        tokens: TokenRegistry,
        partnerships: PartnershipRegister,
        pseudonymiser: Pseudonymiser,
        keys: KeyStore,
        log: EventLog,
    ) -> Self {
        Self {
            agency,
            tokens: Arc::new(tokens),
            partnerships: Arc::new(partnerships),
            pseudonymiser,
            keys,
            log,
        }
    }

    /// Runs one command. `rules` checks the RPC's own fields (adding to the
    /// violations) and returns the event payload.
    pub async fn execute<R, F>(
        &self,
        rpc: &'static str,
        request: Request<R>,
        rules: F,
    ) -> Result<Response<EventAck>, Status>
    where
        R: CommandFields,
        F: FnOnce(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
    {
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let req = request.into_inner();
        let started = std::time::Instant::now();
        let result = self.run(rpc, authorization.as_deref(), &req, rules).await;
        let code = match &result {
            Ok(_) => "OK",
            Err(e) => status_code_name(e),
        };
        let labels = [("rpc", rpc.to_string()), ("code", code.to_string())];
        metrics::counter!("hub_commands_total", &labels).increment(1);
        metrics::histogram!("hub_command_duration_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(ack) => tracing::info!(
                rpc,
                request_id = req.request_id(),
                sequence = ack.stream_sequence,
                duplicate = ack.duplicate,
                "recorded"
            ),
            Err(e) => tracing::info!(rpc, request_id = req.request_id(), error = %e, "refused"),
        }
        result.map(Response::new).map_err(|e| ApiError(e).into())
    }

    async fn run<R, F>(
        &self,
        rpc: &'static str,
        authorization: Option<&str>,
        req: &R,
        rules: F,
    ) -> Result<EventAck, Error>
    where
        R: CommandFields,
        F: FnOnce(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
    {
        // authenticate
        let caller = self.tokens.authenticate(authorization)?;
        // authorise: role first; the partnership when it is a real one (an
        // unknown code is a validation error below).
        let partnership_code = req.partnership_code();
        let action = Action::Command(self.agency, rpc);
        if !caller.role.may(action) || self.partnerships.get(partnership_code).is_some() {
            caller.authorise(action, partnership_code)?;
        }
        // validate
        let now = Timestamp::now();
        let mut violations = Violations::new();
        violations.check("request_id", validate::request_id(req.request_id()));
        violations.check(
            "partnership_code",
            validate::partnership(&self.partnerships, partnership_code),
        );
        let occurred_at =
            violations.check("occurred_at", validate::occurred_at(req.occurred_at(), now));
        let ctx = RuleContext {
            caller,
            today: london_date(now),
            pseudonymiser: &self.pseudonymiser,
        };
        let decision = rules(req, &ctx, &mut violations);
        violations.finish(|| ())?;
        let (Some(decision), Some(occurred_at)) = (decision, occurred_at) else {
            return Err(Error::Internal(format!(
                "{rpc}: rules passed but decided nothing"
            )));
        };

        // Everything from here waits on NATS: one bound for all of it, so a
        // caller hears UNAVAILABLE within 5 s whatever is slow.
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.record(rpc, caller, req, decision, occurred_at, now),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(format!(
                "the event log did not acknowledge within {}s; retry with the same request_id",
                PUBLISH_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Pseudonymise and seal, publish, and answer with the acknowledgement.
    async fn record<R: CommandFields>(
        &self,
        rpc: &'static str,
        caller: &Caller,
        req: &R,
        decision: Decision,
        occurred_at: Timestamp,
        now: Timestamp,
    ) -> Result<EventAck, Error> {
        let partnership_code = req.partnership_code();
        // pseudonymise and seal
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
        let (person_key, linked_person_keys) = keys
            .map(|k| (k.person_key, k.linked_person_keys))
            .unwrap_or_default();
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
            sealed,
            payload: Some(decision.payload),
        };

        // publish, and acknowledge only what JetStream acknowledged
        let subject = format!(
            "hub.events.{}.{}.{}",
            self.agency.as_str(),
            partnership_code,
            event_type
        );
        let msg_id = format!("{}:{}", caller.org_code, req.request_id());
        let digest = self.pseudonymiser.request_digest(
            &format!("{}/{rpc}", self.agency.as_str()),
            &req.encode_to_vec(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_REQUEST_DIGEST, digest.as_str());
        headers.insert(HEADER_EVENT_ID, event_id.as_str());
        headers.insert(HEADER_EVENT_TYPE, event_type);
        let publish_started = std::time::Instant::now();
        let ack = self
            .log
            .publish(
                subject,
                &msg_id,
                headers,
                Bytes::from(event.encode_to_vec()),
            )
            .await?;
        metrics::histogram!("hub_publish_duration_seconds")
            .record(publish_started.elapsed().as_secs_f64());
        if !ack.duplicate {
            return Ok(EventAck {
                event_id,
                stream_sequence: ack.sequence,
                duplicate: false,
            });
        }
        // The id was seen: same body → the first ack; another body → conflict.
        let first = self.log.message(ack.sequence).await?;
        let header = |name: &str| {
            first
                .headers
                .get(name)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        if header(HEADER_REQUEST_DIGEST) != digest {
            return Err(Error::AlreadyExists(format!(
                "request_id: already used by organisation {} for a different request; use a new request_id",
                caller.org_code
            )));
        }
        Ok(EventAck {
            event_id: header(HEADER_EVENT_ID),
            stream_sequence: ack.sequence,
            duplicate: true,
        })
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
    ) -> Result<Self, Error> {
        let tokens = args.load_tokens()?;
        let partnerships = args.load_partnerships()?;
        let secret = args.load_secret()?;
        let client = crate::eventlog::connect(&args.nats, service_name).await?;
        let log = EventLog::open(client, &args.nats.stream, args.dedupe_window).await?;
        let keys = KeyStore::open(log.jetstream(), sealing::KeyWrapper::new(&secret)).await?;
        tracing::info!(
            partnerships = partnerships.len(),
            stream = log.stream_name(),
            "ready for commands"
        );
        Ok(Self::new(
            agency,
            tokens,
            partnerships,
            Pseudonymiser::new(&secret),
            keys,
            log,
        ))
    }
}

/// An agency's RPC table: the tonic service whose every RPC is one
/// pipeline call with its rule function.
///
/// ```ignore
/// hub_runtime::rpc_table!(PrisonApi: PrisonService {
///     record_release_date(RecordReleaseDateRequest) => "RecordReleaseDate", rules::record_release_date;
/// });
/// ```
#[macro_export]
macro_rules! rpc_table {
    ($api:ident : $service:path { $( $method:ident($request:ty) => $rpc:literal, $rule:path; )* }) => {
        /// The RPC table: each RPC runs the shared command pipeline with its rule.
        pub struct $api {
            pipeline: $crate::pipeline::CommandPipeline,
        }

        impl $api {
            pub fn new(pipeline: $crate::pipeline::CommandPipeline) -> Self {
                Self { pipeline }
            }
        }

        #[tonic::async_trait]
        impl $service for $api {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<hub_proto::common::EventAck>, tonic::Status> {
                    self.pipeline.execute($rpc, request, $rule).await
                }
            )*
        }
    };
}
