//! How hubctl prints: aligned tables for people, JSON (`--json`) for
//! scripts, with the contract's snake_case field names.

use hub_proto::{
    common::EventAck,
    projections::{ConsentState, ListPickupsResponse, PickupAlert, PickupStatus, ProjectionStatus},
};
use serde_json::json;

fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.iter().map(|s| s.to_string()).collect()));
    for r in rows {
        println!("{}", line(r.clone()));
    }
}

pub fn ack(a: &EventAck, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"event_id": a.event_id, "stream_sequence": a.stream_sequence, "duplicate": a.duplicate})
        );
    } else if a.duplicate {
        println!(
            "already recorded: event {} at sequence {} (nothing new recorded)",
            a.event_id, a.stream_sequence
        );
    } else {
        println!(
            "recorded: event {} at sequence {}",
            a.event_id, a.stream_sequence
        );
    }
}

fn status_name(v: i32) -> &'static str {
    PickupStatus::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("?")
}

fn consent_name(v: i32) -> &'static str {
    ConsentState::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("?")
}

fn alert_names(v: &[i32]) -> Vec<&'static str> {
    v.iter()
        .map(|a| {
            PickupAlert::try_from(*a)
                .map(|x| x.as_str_name())
                .unwrap_or("?")
        })
        .collect()
}

pub fn pickups(reply: &ListPickupsResponse, as_json: bool) {
    if as_json {
        let entries: Vec<_> = reply
            .entries
            .iter()
            .map(|e| {
                json!({
                    "person_key": e.person_key, "display_name": e.display_name, "redacted": e.redacted,
                    "release_date": e.release_date, "prison_code": e.prison_code, "status": status_name(e.status),
                    "consent": consent_name(e.consent), "flagged_imminent": e.flagged_imminent,
                    "triage_completed": e.triage_completed, "appointment_at": e.appointment_at,
                    "gate_worker_id": e.gate_worker_id, "naloxone_issued": e.naloxone_issued,
                    "overdose_trained": e.overdose_trained, "days_to_release": e.days_to_release,
                    "alerts": alert_names(&e.alerts), "partnership_code": e.partnership_code,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"entries": entries, "applied_sequence": reply.applied_sequence})
        );
        return;
    }
    let rows: Vec<Vec<String>> = reply
        .entries
        .iter()
        .map(|e| {
            vec![
                e.release_date.clone(),
                e.days_to_release.to_string(),
                if e.redacted {
                    "(no consent)".into()
                } else {
                    e.display_name.clone()
                },
                e.prison_code.clone(),
                status_name(e.status).into(),
                consent_name(e.consent).into(),
                alert_names(&e.alerts).join(","),
                e.person_key.clone(),
            ]
        })
        .collect();
    table(
        &[
            "RELEASE",
            "DAYS",
            "NAME",
            "PRISON",
            "STATUS",
            "CONSENT",
            "ALERTS",
            "PERSON_KEY",
        ],
        &rows,
    );
    println!(
        "{} entries; applied sequence {}",
        reply.entries.len(),
        reply.applied_sequence
    );
}

pub fn projection_status(list: &[ProjectionStatus], as_json: bool) {
    if as_json {
        let items: Vec<_> = list
            .iter()
            .map(|s| {
                json!({"projection": s.projection, "applied_sequence": s.applied_sequence,
                       "stream_last_sequence": s.stream_last_sequence, "lag": s.lag,
                       "events_applied": s.events_applied, "parked": s.parked})
            })
            .collect();
        println!("{}", json!({"projections": items}));
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.projection.clone(),
                s.applied_sequence.to_string(),
                s.stream_last_sequence.to_string(),
                s.lag.to_string(),
                s.events_applied.to_string(),
                s.parked.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "PROJECTION",
            "APPLIED",
            "STREAM_LAST",
            "LAG",
            "EVENTS_APPLIED",
            "PARKED",
        ],
        &rows,
    );
}
