//! `hubctl <agency> record-batch --file F`: a bulk upload through the
//! agency service's `RecordBatch`.
//!
//! An agency exporting its records (a pharmacy system's day of needle
//! exchange, a trust's month of attendances) writes one command a line as
//! JSON: the batch command message of its service in protobuf's JSON
//! mapping, e.g.
//! `{"record_needle_exchange": {"request_id": "fw844-2026-11-24-0001", ...}}`.
//! Each line carries its own `request_id`, so uploading the same file again
//! (after a refusal was fixed, or a broken connection) records nothing twice.
//! Files longer than one batch (10,000 commands) go up in several.

use std::{io::Read as _, path::PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hub_proto::common::{batch_result::Outcome, BatchAck};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::json;

/// Most commands in one `RecordBatch` call (the services' limit).
pub use hub_runtime::pipeline::MAX_BATCH;

#[derive(Args, Debug)]
pub struct BatchFile {
    /// JSON lines, one command a line, named as the service's RPC in
    /// snake_case: {"record_needle_exchange": {"request_id": "...",
    /// "partnership_code": "bradford", "occurred_at": "2026-11-24T09:30:00Z", ...}}.
    /// `-` reads standard input. Blank lines are skipped.
    #[arg(long)]
    pub file: PathBuf,
}

/// The commands of a file, in order, with the line and request id of each.
pub struct Commands<T> {
    pub commands: Vec<T>,
    /// (line number, request id) of each command.
    pub lines: Vec<(usize, String)>,
}

impl BatchFile {
    /// Reads the file as commands of the message `message` (its full name).
    pub fn read<T: prost::Message + Default>(&self, message: &str) -> Result<Commands<T>> {
        let text = if self.file.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(&self.file)
                .with_context(|| format!("reading {}", self.file.display()))?
        };
        parse(&text, message)
    }
}

fn parse<T: prost::Message + Default>(text: &str, message: &str) -> Result<Commands<T>> {
    let pool = DescriptorPool::decode(hub_proto::FILE_DESCRIPTOR_SET)?;
    let descriptor = pool
        .get_message_by_name(message)
        .with_context(|| format!("{message} is not in the hub's schema"))?;
    let mut out = Commands {
        commands: Vec::new(),
        lines: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(line);
        let command = DynamicMessage::deserialize(descriptor.clone(), &mut de)
            .and_then(|m| de.end().map(|_| m))
            .with_context(|| format!("line {n}: not a {message} in JSON"))?;
        let request_id = command
            .fields()
            .find_map(|(_, v)| {
                v.as_message()
                    .and_then(|m| m.get_field_by_name("request_id"))
                    .and_then(|v| v.as_str().map(str::to_string))
            })
            .unwrap_or_default();
        out.commands.push(
            command
                .transcode_to::<T>()
                .with_context(|| format!("line {n}"))?,
        );
        out.lines.push((n, request_id));
    }
    if out.commands.is_empty() {
        bail!("no commands in the file");
    }
    Ok(out)
}

/// Prints the results line by line and the totals; fails (exit 1) when any
/// command was refused.
pub fn report(lines: &[(usize, String)], replies: &[BatchAck], as_json: bool) -> Result<()> {
    let results = replies.iter().flat_map(|r| r.results.iter());
    let (mut recorded, mut duplicates, mut refused) = (0, 0, 0);
    let mut rows = Vec::new();
    for ((line, request_id), result) in lines.iter().zip(results) {
        let (outcome, detail) = match &result.outcome {
            Some(Outcome::Ack(a)) if a.duplicate => {
                duplicates += 1;
                (
                    "already recorded",
                    json!({"event_id": a.event_id, "stream_sequence": a.stream_sequence}),
                )
            }
            Some(Outcome::Ack(a)) => {
                recorded += 1;
                (
                    "recorded",
                    json!({"event_id": a.event_id, "stream_sequence": a.stream_sequence}),
                )
            }
            Some(Outcome::Error(e)) => {
                refused += 1;
                let fields: Vec<_> = e
                    .field_violations
                    .iter()
                    .map(|v| json!({"field": v.field, "description": v.description}))
                    .collect();
                (
                    "refused",
                    json!({"code": e.code, "message": e.message, "field_violations": fields}),
                )
            }
            None => {
                refused += 1;
                ("refused", json!({"message": "no result"}))
            }
        };
        rows.push((line, request_id, outcome, detail));
    }
    if as_json {
        let results: Vec<_> = rows
            .iter()
            .map(|(line, request_id, outcome, detail)| {
                let mut o = json!({"line": line, "request_id": request_id, "outcome": outcome});
                if let (Some(o), Some(d)) = (o.as_object_mut(), detail.as_object()) {
                    o.extend(d.clone());
                }
                o
            })
            .collect();
        println!(
            "{}",
            json!({"recorded": recorded, "duplicates": duplicates, "refused": refused, "results": results})
        );
    } else {
        for (line, request_id, outcome, detail) in &rows {
            let what = match *outcome {
                "refused" => format!(
                    "refused {}: {}",
                    detail["code"].as_str().unwrap_or_default(),
                    detail["message"].as_str().unwrap_or_default()
                ),
                other => format!("{other} at sequence {}", detail["stream_sequence"]),
            };
            println!("line {line:>6}  {request_id:<40}  {what}");
        }
        println!("recorded {recorded}, already recorded {duplicates}, refused {refused}");
    }
    if refused > 0 {
        bail!(
            "{refused} command(s) refused and not recorded; fix those lines and upload the file again \
             (the others are acknowledged again, not recorded twice)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::pharmacy::{pharmacy_command::Command, PharmacyCommand};

    #[test]
    fn lines_become_commands_with_their_request_ids() {
        let text = r#"{"record_needle_exchange": {"request_id": "r-1", "partnership_code": "bradford", "occurred_at": "2026-11-24T09:30:00Z", "pharmacy_code": "FW844", "client_code": "JS02031985M", "packs_given": 3}}

{"recordNaloxoneSupply": {"requestId": "r-2", "kits": 1}}
"#;
        let read: Commands<PharmacyCommand> =
            parse(text, "hub.pharmacy.v1.PharmacyCommand").unwrap();
        assert_eq!(read.lines, [(1, "r-1".to_string()), (3, "r-2".to_string())]);
        match &read.commands[0].command {
            Some(Command::RecordNeedleExchange(r)) => {
                assert_eq!(r.packs_given, 3);
                assert_eq!(r.occurred_at.as_ref().unwrap().seconds, 1_795_512_600);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read.commands[1].command,
            Some(Command::RecordNaloxoneSupply(_))
        ));
    }

    #[test]
    fn a_line_that_is_not_a_command_names_its_line() {
        let e = parse::<PharmacyCommand>(
            "{\"record_needle_exchange\": {}}\n{\"record_release_date\": {}}\n",
            "hub.pharmacy.v1.PharmacyCommand",
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        assert!(parse::<PharmacyCommand>("\n\n", "hub.pharmacy.v1.PharmacyCommand").is_err());
    }
}
