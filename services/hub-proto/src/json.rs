//! JSON for the read side's replies, with the contract's snake_case field
//! names and enum values by name: one encoding for `hubctl --json` and the
//! dashboard's API, so the two never drift apart.

use serde_json::{json, Value};

use crate::projections::{
    ConsentState, ContinuityFunnel, ListPickupsResponse, ListPotentialDuplicatesResponse,
    LookupPersonResponse, PickupAlert, PickupEntry, PickupStatus, PickupSummary,
    QuarterTrainingCounts, TrainingCounts,
};

pub fn status_name(v: i32) -> &'static str {
    PickupStatus::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("PICKUP_STATUS_UNSPECIFIED")
}

pub fn consent_name(v: i32) -> &'static str {
    ConsentState::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("CONSENT_UNKNOWN")
}

pub fn alert_name(v: i32) -> &'static str {
    PickupAlert::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("PICKUP_ALERT_UNSPECIFIED")
}

pub fn pickup_entry(e: &PickupEntry) -> Value {
    json!({
        "person_key": e.person_key, "display_name": e.display_name, "redacted": e.redacted,
        "release_date": e.release_date, "prison_code": e.prison_code, "status": status_name(e.status),
        "consent": consent_name(e.consent), "flagged_imminent": e.flagged_imminent,
        "triage_completed": e.triage_completed, "appointment_at": e.appointment_at,
        "gate_worker_id": e.gate_worker_id, "naloxone_issued": e.naloxone_issued,
        "overdose_trained": e.overdose_trained, "days_to_release": e.days_to_release,
        "alerts": e.alerts.iter().map(|a| alert_name(*a)).collect::<Vec<_>>(),
        "partnership_code": e.partnership_code, "removed": e.removed,
        "handed_over_from": e.handed_over_from,
        "handed_over_at": e.handed_over_at.as_ref().map(rfc3339),
        "consent_since": e.consent_since.as_ref().map(rfc3339),
        "share_with_treatment": consent_name(e.share_with_treatment),
        "share_with_treatment_since": e.share_with_treatment_since.as_ref().map(rfc3339),
    })
}

/// A protobuf timestamp as RFC 3339 (UTC).
pub fn rfc3339(t: &prost_types::Timestamp) -> String {
    jiff::Timestamp::new(t.seconds, t.nanos)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn lookup(reply: &LookupPersonResponse) -> Value {
    json!({
        "entry": reply.entry.as_ref().map(pickup_entry),
        "applied_sequence": reply.applied_sequence,
    })
}

pub fn duplicates(reply: &ListPotentialDuplicatesResponse) -> Value {
    json!({
        "pairs": reply.pairs.iter().map(|p| json!({
            "person_key_a": p.person_key_a, "person_key_b": p.person_key_b,
            "reason": p.reason, "first_seen_at": p.first_seen_at.as_ref().map(rfc3339),
        })).collect::<Vec<_>>(),
        "applied_sequence": reply.applied_sequence,
    })
}

pub fn pickups(reply: &ListPickupsResponse) -> Value {
    json!({
        "entries": reply.entries.iter().map(pickup_entry).collect::<Vec<_>>(),
        "applied_sequence": reply.applied_sequence,
    })
}

impl ContinuityFunnel {
    /// The funnel's stages in order, by their field names.
    pub fn stages(&self) -> [(&'static str, u32); 6] {
        [
            ("released", self.released),
            ("flagged", self.flagged),
            ("triaged", self.triaged),
            ("appointment_booked", self.appointment_booked),
            ("met_at_gate", self.met_at_gate),
            ("engaged_within_21_days", self.engaged_within_21_days),
        ]
    }

    /// The same, to change (withholding small counts).
    pub fn stages_mut(&mut self) -> [(&'static str, &mut u32); 6] {
        [
            ("released", &mut self.released),
            ("flagged", &mut self.flagged),
            ("triaged", &mut self.triaged),
            ("appointment_booked", &mut self.appointment_booked),
            ("met_at_gate", &mut self.met_at_gate),
            ("engaged_within_21_days", &mut self.engaged_within_21_days),
        ]
    }
}

/// The summary's funnels, in all then by prison: each with the path its
/// withheld counts are named under (`funnel`, `funnel_by_prison.LEI`) and
/// a label for people (`All prisons`, `LEI`).
pub fn funnels(s: &PickupSummary) -> Vec<(String, String, &ContinuityFunnel)> {
    s.funnel
        .iter()
        .map(|f| ("funnel".to_string(), "All prisons".to_string(), f))
        .chain(s.funnel_by_prison.iter().map(|f| {
            (
                format!("funnel_by_prison.{}", f.prison_code),
                f.prison_code.clone(),
                f,
            )
        }))
        .collect()
}

pub fn pickup_summary(s: &PickupSummary) -> Value {
    let by_status: serde_json::Map<_, _> = s
        .by_status
        .iter()
        .map(|c| (status_name(c.status).to_string(), json!(c.count)))
        .collect();
    let by_alert: serde_json::Map<_, _> = s
        .by_alert
        .iter()
        .map(|c| (alert_name(c.alert).to_string(), json!(c.count)))
        .collect();
    let stages = |f: &ContinuityFunnel| -> Value {
        f.stages()
            .into_iter()
            .map(|(name, n)| (name.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    // By prison as an object keyed by prison code: the paths `suppressed`
    // names (`funnel_by_prison.LEI.flagged`) are paths in this JSON.
    let by_prison: serde_json::Map<_, _> = s
        .funnel_by_prison
        .iter()
        .map(|f| (f.prison_code.clone(), stages(f)))
        .collect();
    json!({
        "financial_year": s.financial_year, "by_status": by_status, "by_alert": by_alert,
        "released": s.released, "engaged_within_21_days": s.engaged_within_21_days,
        "continuity_pct": s.continuity_pct,
        "funnel": stages(&s.funnel.clone().unwrap_or_default()), "funnel_by_prison": by_prison,
        "suppressed": s.suppressed, "applied_sequence": s.applied_sequence,
    })
}

fn quarter(q: &QuarterTrainingCounts) -> Value {
    json!({
        "quarter": q.quarter, "service_users_trained": q.service_users_trained,
        "carers_trained": q.carers_trained, "prison_leavers_trained": q.prison_leavers_trained,
        "custody_officers_trained": q.custody_officers_trained,
        "custody_officer_headcount": q.custody_officer_headcount,
        "custody_officers_trained_pct": q.custody_officers_trained_pct,
        "paramedics_trained": q.paramedics_trained, "paramedic_headcount": q.paramedic_headcount,
        "paramedics_trained_pct": q.paramedics_trained_pct,
        "pharmacy_staff_trained": q.pharmacy_staff_trained,
        "naloxone_kits_supplied": q.naloxone_kits_supplied,
    })
}

pub fn training_counts(c: &TrainingCounts) -> Value {
    json!({
        "partnership_code": c.partnership_code, "financial_year": c.financial_year,
        "service_users_trained": c.service_users_trained, "carers_trained": c.carers_trained,
        "prison_leavers_trained": c.prison_leavers_trained,
        "custody_officers_trained": c.custody_officers_trained,
        "custody_officer_headcount": c.custody_officer_headcount,
        "custody_officers_trained_pct": c.custody_officers_trained_pct,
        "paramedics_trained": c.paramedics_trained, "paramedic_headcount": c.paramedic_headcount,
        "paramedics_trained_pct": c.paramedics_trained_pct,
        "pharmacy_staff_trained": c.pharmacy_staff_trained,
        "naloxone_kits_supplied": c.naloxone_kits_supplied,
        "quarters": c.quarters.iter().map(quarter).collect::<Vec<_>>(),
        "suppressed": c.suppressed, "applied_sequence": c.applied_sequence,
    })
}
