//! How hubctl prints: aligned tables for people, JSON (`--json`) for
//! scripts, with the contract's snake_case field names.

use hub_proto::{
    admin::{
        AuditRecord, AuditTrailVerification, KeyVersions, ListPersonAccessResponse, PersonErasure,
        RetentionStatus,
    },
    projections::{
        ListPickupsResponse, ListPotentialDuplicatesResponse, LookupPersonResponse, PickupSummary,
        ProjectionStatus, TrainingCounts,
    },
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

/// A command's outcome. A refusal or failure becomes the error (exit 1),
/// naming the request id so that a retry can reuse it.
pub fn outcome(o: crate::record::Outcome, as_json: bool) -> anyhow::Result<()> {
    match o {
        crate::record::Outcome::One(s) => sent(s, as_json),
        crate::record::Outcome::Batch { lines, replies } => {
            crate::batch::report(&lines, &replies, as_json)
        }
    }
}

pub fn sent(s: crate::record::Sent, as_json: bool) -> anyhow::Result<()> {
    let a = match s.reply {
        Ok(a) => a,
        Err(status) => {
            let retry = status.code() == tonic::Code::Unavailable;
            let occurred = jiff::Timestamp::new(s.occurred_at.seconds, s.occurred_at.nanos)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let e = crate::explain(status);
            return Err(if retry {
                e.context(format!(
                    "not recorded (or not acknowledged) under request id {}; retry with --request-id {} --occurred-at {} to record it at most once",
                    s.request_id, s.request_id, occurred
                ))
            } else {
                e.context(format!("request id {}: nothing recorded", s.request_id))
            });
        }
    };
    if as_json {
        println!(
            "{}",
            json!({"request_id": s.request_id, "event_id": a.event_id, "stream_sequence": a.stream_sequence, "duplicate": a.duplicate})
        );
    } else if a.duplicate {
        println!(
            "already recorded: event {} at sequence {} (request id {}; nothing new recorded)",
            a.event_id, a.stream_sequence, s.request_id
        );
    } else {
        println!(
            "recorded: event {} at sequence {} (request id {})",
            a.event_id, a.stream_sequence, s.request_id
        );
    }
    Ok(())
}

fn status_name(v: i32) -> &'static str {
    hub_proto::json::status_name(v)
}

fn consent_name(v: i32) -> &'static str {
    hub_proto::json::consent_name(v)
}

fn alert_names(v: &[i32]) -> Vec<&'static str> {
    v.iter().map(|a| hub_proto::json::alert_name(*a)).collect()
}

pub fn pickups(reply: &ListPickupsResponse, as_json: bool) {
    if as_json {
        println!("{}", hub_proto::json::pickups(reply));
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
                e.handed_over_from.clone(),
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
            "HANDED OVER BY",
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
                       "lag_seconds": s.lag_seconds, "events_applied": s.events_applied, "parked": s.parked,
                       "store_fault": s.store_fault})
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
                format!("{:.1}", s.lag_seconds),
                s.events_applied.to_string(),
                s.parked.to_string(),
                if s.store_fault.is_empty() {
                    "ok".into()
                } else {
                    format!("FAULT: {}", s.store_fault)
                },
            ]
        })
        .collect();
    table(
        &[
            "PROJECTION",
            "APPLIED",
            "STREAM_LAST",
            "LAG",
            "LAG_S",
            "EVENTS_APPLIED",
            "PARKED",
            "STORE",
        ],
        &rows,
    );
}

fn pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |v| format!("{v:.1}%"))
}

pub fn pickup_summary(s: &PickupSummary, as_json: bool) {
    if as_json {
        println!("{}", hub_proto::json::pickup_summary(s));
        return;
    }
    // Withheld values say so, rather than showing the 0 they are sent as.
    let shown = |field: &str, value: String| {
        if s.suppressed.iter().any(|f| f == field) {
            "withheld".to_string()
        } else {
            value
        }
    };
    // In the contract's order, not alphabetical.
    let mut rows: Vec<Vec<String>> = s
        .by_status
        .iter()
        .map(|c| {
            let name = status_name(c.status);
            vec![
                "status".into(),
                name.into(),
                shown(&format!("by_status.{name}"), c.count.to_string()),
            ]
        })
        .collect();
    rows.extend(s.by_alert.iter().map(|c| {
        let name = alert_names(&[c.alert])[0];
        vec![
            "alert".into(),
            name.into(),
            shown(&format!("by_alert.{name}"), c.count.to_string()),
        ]
    }));
    table(&["", "ON THE LIST", "PEOPLE"], &rows);
    println!(
        "continuity of care {}: {} released, {} engaged within 21 days ({})",
        s.financial_year,
        shown("released", s.released.to_string()),
        shown(
            "engaged_within_21_days",
            s.engaged_within_21_days.to_string()
        ),
        shown("continuity_pct", pct(s.continuity_pct))
    );
    // The funnel: where people released in the year were lost.
    let funnels = hub_proto::json::funnels(s).into_iter();
    let rows: Vec<Vec<String>> = funnels
        .map(|(path, label, f)| {
            std::iter::once(label)
                .chain(
                    f.stages()
                        .into_iter()
                        .map(|(name, n)| shown(&format!("{path}.{name}"), n.to_string())),
                )
                .collect()
        })
        .collect();
    table(
        &[
            "",
            "RELEASED",
            "FLAGGED",
            "TRIAGED",
            "APPOINTMENT",
            "MET AT GATE",
            "ENGAGED ≤21 DAYS",
        ],
        &rows,
    );
    if !s.suppressed.is_empty() {
        println!("withheld (1 to 7 people): {}", s.suppressed.join(", "));
    }
}

pub fn training(c: &TrainingCounts, as_json: bool) {
    if as_json {
        println!("{}", hub_proto::json::training_counts(c));
        return;
    }
    let q = |f: &dyn Fn(&hub_proto::projections::QuarterTrainingCounts) -> String| -> Vec<String> {
        c.quarters.iter().map(f).collect()
    };
    // Withheld values say so, rather than showing the 0 they are sent as.
    let hidden = |name: String| c.suppressed.contains(&name);
    let row = |name: &str, field: &str, year: String, quarters: Vec<String>| {
        let mut r = vec![
            name.to_string(),
            if hidden(field.into()) {
                "withheld".into()
            } else {
                year
            },
        ];
        r.extend(quarters.into_iter().enumerate().map(|(i, v)| {
            if hidden(format!("q{}.{field}", i + 1)) {
                "withheld".into()
            } else {
                v
            }
        }));
        r
    };
    let rows = vec![
        row(
            "service users trained",
            "service_users_trained",
            c.service_users_trained.to_string(),
            q(&|x| x.service_users_trained.to_string()),
        ),
        row(
            "carers trained",
            "carers_trained",
            c.carers_trained.to_string(),
            q(&|x| x.carers_trained.to_string()),
        ),
        row(
            "prison leavers trained",
            "prison_leavers_trained",
            c.prison_leavers_trained.to_string(),
            q(&|x| x.prison_leavers_trained.to_string()),
        ),
        row(
            "custody officers trained",
            "custody_officers_trained",
            c.custody_officers_trained.to_string(),
            q(&|x| x.custody_officers_trained.to_string()),
        ),
        row(
            "custody officer headcount",
            "custody_officer_headcount",
            c.custody_officer_headcount.to_string(),
            q(&|x| x.custody_officer_headcount.to_string()),
        ),
        row(
            "custody officers trained %",
            "custody_officers_trained_pct",
            pct(c.custody_officers_trained_pct),
            q(&|x| pct(x.custody_officers_trained_pct)),
        ),
        row(
            "paramedics trained",
            "paramedics_trained",
            c.paramedics_trained.to_string(),
            q(&|x| x.paramedics_trained.to_string()),
        ),
        row(
            "paramedic headcount",
            "paramedic_headcount",
            c.paramedic_headcount.to_string(),
            q(&|x| x.paramedic_headcount.to_string()),
        ),
        row(
            "paramedics trained %",
            "paramedics_trained_pct",
            pct(c.paramedics_trained_pct),
            q(&|x| pct(x.paramedics_trained_pct)),
        ),
        row(
            "pharmacy staff trained",
            "pharmacy_staff_trained",
            c.pharmacy_staff_trained.to_string(),
            q(&|x| x.pharmacy_staff_trained.to_string()),
        ),
        row(
            "naloxone kits supplied",
            "naloxone_kits_supplied",
            c.naloxone_kits_supplied.to_string(),
            q(&|x| x.naloxone_kits_supplied.to_string()),
        ),
    ];
    println!(
        "{} overdose training, {}",
        c.partnership_code, c.financial_year
    );
    table(&["", "YEAR", "Q1", "Q2", "Q3", "Q4"], &rows);
    if !c.suppressed.is_empty() {
        println!("withheld (1 to 7 people): {}", c.suppressed.join(", "));
    }
}

/// Harm-reduction activity: a table of every figure by year and quarter,
/// JSON, or CSV (the dashboard's download, line for line).
pub fn activity(a: &hub_proto::projections::Activity, format: Format) {
    use activity_projection::report;
    let today = hub_core::time::london_today();
    match format {
        Format::Json => println!("{}", report::json(a)),
        Format::Csv => print!("{}", report::csv(a, today)),
        Format::Table => {
            let rows: Vec<Vec<String>> = report::rows(a, today)
                .into_iter()
                .map(|r| std::iter::once(r.label).chain(r.cells).collect())
                .collect();
            println!(
                "{} harm-reduction activity, {} (applied sequence {})",
                a.partnership_code, a.financial_year, a.applied_sequence
            );
            table(&["", "YEAR", "Q1", "Q2", "Q3", "Q4"], &rows);
            if !a.suppressed.is_empty() {
                println!("withheld (1 to 7 people): {}", a.suppressed.join(", "));
            }
        }
    }
}

/// The national comparison: its JSON, its CSV, or as tables: England and
/// each figure's spread, or the partnerships ranked on `figure`.
pub fn national(
    c: &hub_proto::projections::NationalComparison,
    figure: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    use activity_projection::national;
    match format {
        Format::Json => println!("{}", national::json(c)),
        Format::Csv => print!("{}", national::csv(c)),
        Format::Table => match figure {
            Some(figure) => {
                let ranked = national::ranking(c, figure).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--figure: no figure {figure:?}; the figures are the fields of `hubctl national --json`'s rows"
                    )
                })?;
                println!(
                    "{}, {} (applied sequence {})",
                    national::label(figure),
                    c.financial_year,
                    c.applied_sequence
                );
                let rows: Vec<Vec<String>> = ranked
                    .into_iter()
                    .enumerate()
                    .map(|(i, (code, name, value))| vec![(i + 1).to_string(), code, name, value])
                    .collect();
                table(&["RANK", "CODE", "PARTNERSHIP", "VALUE"], &rows);
            }
            None => {
                println!(
                    "England and {} partnerships, {} (applied sequence {})",
                    c.partnerships.len(),
                    c.financial_year,
                    c.applied_sequence
                );
                let england = c.england.clone().unwrap_or_default();
                let one = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
                let rows: Vec<Vec<String>> = national::figures(&england)
                    .iter()
                    .map(|(name, value)| {
                        let s = c
                            .spread
                            .iter()
                            .find(|s| s.figure == *name)
                            .cloned()
                            .unwrap_or_default();
                        vec![
                            name.to_string(),
                            national::cell(&england, name, *value),
                            one(s.lower_quartile),
                            one(s.median),
                            one(s.upper_quartile),
                            s.partnerships.to_string(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "FIGURE",
                        "ENGLAND",
                        "LOWER QUARTILE",
                        "MEDIAN",
                        "UPPER QUARTILE",
                        "PARTNERSHIPS",
                    ],
                    &rows,
                );
                let withheld: usize = c.partnerships.iter().map(|r| r.suppressed.len()).sum();
                if withheld > 0 {
                    println!("withheld (1 to 7 people, and one beside each lone such count): {withheld} values; see --json or --csv");
                }
            }
        },
    }
    Ok(())
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    /// From `--json` and `--csv`: `--json` wins.
    pub fn of(json: bool, csv: bool) -> Self {
        match (json, csv) {
            (true, _) => Format::Json,
            (_, true) => Format::Csv,
            _ => Format::Table,
        }
    }
}

pub fn erasure(e: &PersonErasure, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"person_key": e.person_key, "keys_destroyed": e.keys_destroyed,
                   "event_id": e.event_id, "stream_sequence": e.stream_sequence,
                   "applied_sequence": e.applied_sequence})
        );
    } else {
        println!(
            "erased: person {} ({} identifier keys destroyed); recorded as event {} at sequence {}",
            e.person_key, e.keys_destroyed, e.event_id, e.stream_sequence
        );
    }
}

fn instant(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn audit_json(records: &[AuditRecord]) -> Vec<serde_json::Value> {
    records
        .iter()
        .map(|r| {
            json!({"at": instant(&r.at), "user_id": r.user_id, "role": r.role, "org_code": r.org_code,
                   "partnership_code": r.partnership_code, "rpc": r.rpc, "rows": r.rows,
                   "stream_sequence": r.stream_sequence, "person_keys": r.person_keys,
                   "break_glass_reason": r.break_glass_reason})
        })
        .collect()
}

/// Who saw a person.
pub fn person_access(reply: &ListPersonAccessResponse, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({ "person_keys": reply.person_keys, "records": audit_json(&reply.records) })
        );
        return;
    }
    println!(
        "the person's keys: {}",
        if reply.person_keys.is_empty() {
            "(none known)".to_string()
        } else {
            reply.person_keys.join(", ")
        }
    );
    audit(&reply.records, false);
}

pub fn verification(v: &AuditTrailVerification, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"partnership_code": v.partnership_code, "intact": v.intact, "records": v.records,
                   "chained": v.chained, "before_chain": v.before_chain,
                   "broken_at_sequence": v.broken_at_sequence, "broken_at_link": v.broken_at_link,
                   "problem": v.problem})
        );
    } else if v.intact {
        println!(
            "{}: the audit trail is intact: {} records, {} chained ({} from before the chain)",
            v.partnership_code, v.records, v.chained, v.before_chain
        );
    } else {
        println!(
            "{}: the audit trail is BROKEN at link {} (stream sequence {}): {}. {} records checked before it.",
            v.partnership_code, v.broken_at_link, v.broken_at_sequence, v.problem, v.chained
        );
    }
}

pub fn retention(s: &RetentionStatus, as_json: bool) {
    let days: Vec<_> = s
        .upcoming
        .iter()
        .map(|d| json!({"date": d.date, "people": d.people}))
        .collect();
    if as_json {
        println!(
            "{}",
            json!({"period_seconds": s.period_seconds, "people_held": s.people_held,
                   "people_expired": s.people_expired, "upcoming": days,
                   "last_sweep_at": instant(&s.last_sweep_at),
                   "last_erasure_sequence": s.last_erasure_sequence})
        );
        return;
    }
    let period = if s.period_seconds.is_multiple_of(86_400) {
        format!("{} days", s.period_seconds / 86_400)
    } else {
        format!("{} seconds", s.period_seconds)
    };
    println!("retention: personal data is destroyed after {period} with no event about the person");
    println!(
        "held for {} people; expired so far: {}; last sweep: {}",
        s.people_held,
        s.people_expired,
        match instant(&s.last_sweep_at) {
            t if t.is_empty() => "not yet".to_string(),
            t => t,
        }
    );
    let rows: Vec<Vec<String>> = s
        .upcoming
        .iter()
        .map(|d| vec![d.date.clone(), d.people.to_string()])
        .collect();
    table(&["EXPIRES ON", "PEOPLE"], &rows);
}

pub fn key_versions(v: &KeyVersions, as_json: bool) {
    if as_json {
        let rows: Vec<_> = v
            .versions
            .iter()
            .map(|k| {
                json!({"version": k.version, "state": k.state, "created_at": instant(&k.created_at),
                       "retired_at": instant(&k.retired_at), "data_keys": k.data_keys})
            })
            .collect();
        println!("{}", json!({ "versions": rows }));
        return;
    }
    let rows: Vec<Vec<String>> = v
        .versions
        .iter()
        .map(|k| {
            vec![
                k.version.to_string(),
                k.state.clone(),
                match instant(&k.created_at) {
                    t if t.is_empty() => "(derived from the hub secret)".to_string(),
                    t => t,
                },
                instant(&k.retired_at),
                k.data_keys.to_string(),
            ]
        })
        .collect();
    table(
        &["VERSION", "STATE", "CREATED", "RETIRED", "DATA KEYS"],
        &rows,
    );
}

pub fn audit(records: &[AuditRecord], as_json: bool) {
    if as_json {
        println!("{}", json!({ "records": audit_json(records) }));
        return;
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                instant(&r.at),
                r.partnership_code.clone(),
                r.user_id.clone(),
                r.role.clone(),
                r.org_code.clone(),
                r.rpc.clone(),
                r.rows.to_string(),
                r.break_glass_reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "AT",
            "PARTNERSHIP",
            "USER",
            "ROLE",
            "ORG",
            "READ",
            "ROWS",
            "BREAK-GLASS REASON",
        ],
        &rows,
    );
    println!("{} person-level reads", records.len());
}

pub fn duplicates(reply: &ListPotentialDuplicatesResponse, as_json: bool) {
    if as_json {
        println!("{}", hub_proto::json::duplicates(reply));
        return;
    }
    let rows: Vec<Vec<String>> = reply
        .pairs
        .iter()
        .map(|p| {
            vec![
                p.person_key_a.clone(),
                p.person_key_b.clone(),
                instant(&p.first_seen_at),
                p.reason.clone(),
            ]
        })
        .collect();
    table(
        &["PERSON_KEY_A", "PERSON_KEY_B", "FIRST SEEN", "WHY"],
        &rows,
    );
    println!(
        "{} potential duplicates; applied sequence {}",
        reply.pairs.len(),
        reply.applied_sequence
    );
}

pub fn lookup(reply: &LookupPersonResponse, as_json: bool) {
    if as_json {
        println!("{}", hub_proto::json::lookup(reply));
        return;
    }
    match &reply.entry {
        Some(e) => pickups(
            &ListPickupsResponse {
                entries: vec![e.clone()],
                applied_sequence: reply.applied_sequence,
            },
            false,
        ),
        None => println!(
            "no current release episode there; applied sequence {}",
            reply.applied_sequence
        ),
    }
}
