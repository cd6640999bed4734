//! `hubctl events tail`: the event log as it is, decoded.
//!
//! It reads the stream directly from NATS (the same `HUB_NATS_*` settings
//! as the services; in production, a NATS user with read access), so it
//! shows exactly what any NATS client could see, and no more: people are
//! their `person_key`, sealed names and notes stay sealed (only whether a
//! seal is present is shown, never its bytes). Nothing is decrypted here.
//!
//! Events are decoded from the hub's own descriptors (`prost-reflect`), so
//! every event type, including ones added later, prints without a table of
//! formatters; `--json` prints one object per line in protobuf's JSON
//! mapping with the proto's field names.

use std::{collections::VecDeque, time::Duration};

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
};
use futures::StreamExt;
use hub_runtime::config::NatsArgs;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions, Value};

/// Which events, and from where.
#[derive(clap::Args, Debug)]
pub struct Tail {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Only this partnership's events.
    #[arg(long, visible_alias = "partnership-code")]
    pub partnership: Option<String>,
    /// Only this agency's events: custody, prison, pharmacy, treatment, ambulance.
    #[arg(long)]
    pub agency: Option<String>,
    /// Only this event type, e.g. release_date_recorded.
    #[arg(long)]
    pub event_type: Option<String>,
    /// A raw NATS subject filter instead, e.g. 'hub.audit.>' for the hub's
    /// own records (default: every subject of the stream).
    #[arg(long, conflicts_with_all = ["partnership", "agency", "event_type"])]
    pub subject: Option<String>,
    /// Show the last N matching events (when neither --since nor --from-sequence is given).
    #[arg(short = 'n', long, default_value_t = 20)]
    pub last: usize,
    /// Start at this instant (RFC 3339, or YYYY-MM-DD[THH:MM] in London).
    #[arg(long, value_parser = crate::record::instant, conflicts_with = "from_sequence")]
    pub since: Option<prost_types::Timestamp>,
    /// Start at this stream sequence.
    #[arg(long)]
    pub from_sequence: Option<u64>,
    /// Keep printing events as they are recorded, until interrupted.
    #[arg(short, long)]
    pub follow: bool,
}

/// Where the stream's subjects put agency, partnership and event type.
pub fn subject_filter(t: &Tail) -> String {
    if let Some(s) = &t.subject {
        return s.clone();
    }
    if t.partnership.is_none() && t.agency.is_none() && t.event_type.is_none() {
        return "hub.>".into();
    }
    let part = |o: &Option<String>| o.clone().unwrap_or_else(|| "*".into());
    format!(
        "hub.events.{}.{}.{}",
        part(&t.agency),
        part(&t.partnership),
        part(&t.event_type)
    )
}

/// Decodes events and prints them.
pub struct Printer {
    event: MessageDescriptor,
    json: bool,
}

impl Printer {
    pub fn new(json: bool) -> Result<Self> {
        let pool = DescriptorPool::decode(hub_proto::FILE_DESCRIPTOR_SET)
            .context("the hub's own descriptors do not decode")?;
        let event = pool
            .get_message_by_name("hub.events.v1.Event")
            .context("hub.events.v1.Event missing from the descriptors")?;
        Ok(Self { event, json })
    }

    /// One event as one line: a table row, or a JSON object.
    pub fn line(&self, sequence: u64, subject: &str, payload: &[u8]) -> String {
        let mut event = match DynamicMessage::decode(self.event.clone(), payload) {
            Ok(e) => e,
            Err(e) => {
                return if self.json {
                    serde_json::json!({"stream_sequence": sequence, "subject": subject, "undecodable": e.to_string()}).to_string()
                } else {
                    format!("{sequence:>8}  {subject}  (not a hub event: {e})")
                }
            }
        };
        let sealed = unseal_nothing(&mut event);
        if self.json {
            let mut out = serde_json::Serializer::new(Vec::new());
            let options = SerializeOptions::new()
                .use_proto_field_name(true)
                .skip_default_fields(true);
            let body = event
                .serialize_with_options(&mut out, &options)
                .map(|_| serde_json::from_slice::<serde_json::Value>(&out.into_inner()))
                .ok()
                .and_then(Result::ok)
                .unwrap_or(serde_json::Value::Null);
            return serde_json::json!({"stream_sequence": sequence, "subject": subject, "event": body})
                .to_string();
        }
        let text = |name: &str| {
            event
                .get_field_by_name(name)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let recorded = event
            .get_field_by_name("recorded_at")
            .and_then(|v| v.as_message().map(timestamp_of))
            .unwrap_or_default();
        let person = match text("person_key") {
            k if k.is_empty() => "-".to_string(),
            k => format!("{}…", &k[..k.len().min(12)]),
        };
        let payload = event
            .fields()
            .find(|(f, _)| f.containing_oneof().is_some())
            .map(|(f, v)| match v {
                Value::Message(m) => {
                    // Defaults too: `met:false` is what a missed pick-up says.
                    let body = m.to_text_format_with_options(
                        &prost_reflect::text_format::FormatOptions::new()
                            .skip_default_fields(false),
                    );
                    if body.is_empty() {
                        String::new()
                    } else {
                        format!("{{{body}}}")
                    }
                }
                other => format!("{}={other:?}", f.name()),
            })
            .unwrap_or_default();
        let mut line = format!(
            "{sequence:>8}  {recorded}  {subject}  {org}  person {person}  by {role}  {payload}",
            org = text("org_code"),
            role = text("actor_role"),
        );
        if let Some(s) = sealed {
            line.push_str(&format!("  [{s}]"));
        }
        line
    }
}

/// Drops the seal's bytes from what is printed, keeping only what it
/// holds (a name, or free text): nothing sealed leaves hubctl, even
/// encrypted.
fn unseal_nothing(event: &mut DynamicMessage) -> Option<&'static str> {
    if !event.has_field_by_name("sealed") {
        return None;
    }
    let Some(Value::Message(sealed)) = event.get_field_by_name_mut("sealed") else {
        return None;
    };
    sealed.clear_field_by_name("nonce");
    sealed.clear_field_by_name("ciphertext");
    let has_name = sealed
        .get_field_by_name("has_name")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Some(if has_name {
        "sealed: name"
    } else {
        "sealed: text"
    })
}

fn timestamp_of(m: &DynamicMessage) -> String {
    let seconds = m
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    jiff::Timestamp::from_second(seconds)
        .map(|t| {
            t.to_zoned(crate::london())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// Prints the matching events; with `--follow`, keeps going.
pub async fn tail(t: Tail, json: bool) -> Result<()> {
    let printer = Printer::new(json)?;
    let client = hub_runtime::eventlog::connect(&t.nats, "hubctl")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let js = jetstream::new(client);
    let mut stream = js.get_stream(&t.nats.stream).await.with_context(|| {
        format!(
            "cannot read stream {} at {} (is NATS running? set HUB_NATS_URL, HUB_STREAM and the HUB_NATS_* credentials)",
            t.nats.stream, t.nats.nats_url
        )
    })?;
    let filter = subject_filter(&t);
    let last_sequence = stream.info().await?.state.last_sequence;
    // With neither start given, only the last N are printed: an unfiltered
    // tail starts N before the end; a filtered one reads the matching
    // events and keeps the last N.
    let (deliver_policy, keep) = match (&t.since, t.from_sequence) {
        (Some(since), _) => (
            DeliverPolicy::ByStartTime {
                start_time: time_of(since)?,
            },
            None,
        ),
        (None, Some(from)) => (
            DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            None,
        ),
        (None, None) if filter == "hub.>" => (
            DeliverPolicy::ByStartSequence {
                start_sequence: (last_sequence + 1).saturating_sub(t.last as u64).max(1),
            },
            Some(t.last),
        ),
        (None, None) => (DeliverPolicy::All, Some(t.last)),
    };
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot read {filter} from {}", t.nats.stream))?;
    let pending = consumer.info().await?.num_pending;
    let mut messages = consumer.messages().await?;
    let mut kept: VecDeque<String> = VecDeque::new();
    let mut caught_up = pending == 0;
    let flush = |kept: &mut VecDeque<String>| {
        for line in kept.drain(..) {
            emit(&line);
        }
    };
    while !caught_up || t.follow {
        let next = if caught_up {
            messages.next().await
        } else {
            // Pending was counted at the start; a message that does not come
            // within this long means the server had no more to give.
            match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
                Ok(m) => m,
                Err(_) => bail!("the stream stopped delivering before the tail was complete"),
            }
        };
        let Some(message) = next else { break };
        let message = message?;
        let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let line = printer.line(info.stream_sequence, &message.subject, &message.payload);
        let pending = info.pending;
        if caught_up {
            emit(&line);
            continue;
        }
        kept.push_back(line);
        if let Some(n) = keep {
            while kept.len() > n {
                kept.pop_front();
            }
        }
        if pending == 0 {
            caught_up = true;
            flush(&mut kept);
        }
    }
    flush(&mut kept);
    Ok(())
}

/// Prints one line, flushed at once (a followed tail is read as it comes).
/// A reader that went away (`| head`) ends the tail quietly, as `tail` does.
fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the tail: {e}");
        std::process::exit(1);
    }
}

fn time_of(t: &prost_types::Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.seconds).context("--since is out of range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::events::{event::Payload, Event, ReleaseDateRecorded, Sealed};
    use prost::Message;

    fn tail(args: &[&str]) -> Tail {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            tail: Tail,
        }
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).unwrap().tail
    }

    #[test]
    fn filters_follow_the_subject_layout() {
        assert_eq!(subject_filter(&tail(&[])), "hub.>");
        assert_eq!(
            subject_filter(&tail(&["--partnership", "bradford"])),
            "hub.events.*.bradford.*"
        );
        assert_eq!(
            subject_filter(&tail(&[
                "--agency",
                "prison",
                "--event-type",
                "release_recorded"
            ])),
            "hub.events.prison.*.release_recorded"
        );
        assert_eq!(
            subject_filter(&tail(&["--subject", "hub.audit.>"])),
            "hub.audit.>"
        );
    }

    fn event() -> Vec<u8> {
        Event {
            event_id: "e-1".into(),
            event_type: "release_date_recorded".into(),
            org_code: "LEI".into(),
            actor_role: "carat_worker".into(),
            person_key: "0123456789abcdef0123456789abcdef".into(),
            sealed: Some(Sealed {
                key_id: "0123456789abcdef0123456789abcdef".into(),
                nonce: vec![7; 24],
                ciphertext: b"JOHN SMITH ciphertext".to_vec(),
                has_name: true,
            }),
            payload: Some(Payload::ReleaseDateRecorded(ReleaseDateRecorded {
                prison_code: "LEI".into(),
                release_date: "2026-12-01".into(),
            })),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_line_shows_the_payload_and_never_the_seal() {
        let p = Printer::new(false).unwrap();
        let line = p.line(
            42,
            "hub.events.prison.bradford.release_date_recorded",
            &event(),
        );
        assert!(line.contains("release_date:\"2026-12-01\""), "{line}");
        assert!(line.contains("person 0123456789ab…"), "{line}");
        assert!(line.contains("[sealed: name]"), "{line}");
        assert!(
            !line.contains("ciphertext") && !line.contains("BwcH"),
            "{line}"
        );

        let p = Printer::new(true).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&p.line(42, "hub.events.prison.bradford.x", &event())).unwrap();
        assert_eq!(v["stream_sequence"], 42);
        assert_eq!(
            v["event"]["release_date_recorded"]["release_date"],
            "2026-12-01"
        );
        assert_eq!(v["event"]["sealed"]["has_name"], true);
        assert!(v["event"]["sealed"].get("ciphertext").is_none(), "{v}");
        assert!(v["event"]["sealed"].get("nonce").is_none(), "{v}");
    }

    #[test]
    fn garbage_is_reported_not_fatal() {
        let p = Printer::new(false).unwrap();
        let line = p.line(1, "hub.events.x", &[0xff, 0xff, 0xff]);
        assert!(line.contains("not a hub event"), "{line}");
    }
}
