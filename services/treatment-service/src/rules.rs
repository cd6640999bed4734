//! Field rules and decisions for each TreatmentService RPC: pure functions,
//! tested without a server.

use hub_core::{
    command::{org_and_person, org_fact, Decision, RuleContext},
    person::check_person,
    validate::{self, Violations},
};
use hub_proto::{
    common::TrainingAudience,
    events::{
        event::Payload, CommunityAppointmentBooked, GatePickupArranged, GatePickupRecorded,
        OverdoseTrainingRecorded, TreatmentEngagementRecorded, TreatmentReferralRecorded,
    },
    treatment::*,
};

/// Who may have referred a person.
pub const SOURCE_AGENCIES: [&str; 7] = [
    "custody",
    "prison",
    "pharmacy",
    "treatment",
    "ambulance",
    "self",
    "other",
];

/// How far ahead an appointment may be booked.
pub const MAX_APPOINTMENT_DAYS_AHEAD: i64 = 366;

fn source_agency(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if SOURCE_AGENCIES.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(format!("must be one of {}", SOURCE_AGENCIES.join(", ")))
    }
}

pub fn record_referral(
    r: &RecordReferralRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (code, person) = org_and_person("service_code", &r.service_code, r.person.as_ref(), ctx, v);
    let source = v.check("source_agency", source_agency(&r.source_agency));
    let reason = v.check("reason", validate::required_text(&r.reason));
    Some(Decision {
        payload: Payload::TreatmentReferralRecorded(TreatmentReferralRecorded {
            service_code: code?,
            source_agency: source?,
        }),
        person: Some(person?),
        person_text: reason?.trim().to_string(),
    })
}

fn appointment_at(
    ts: Option<&prost_types::Timestamp>,
    ctx: &RuleContext<'_>,
) -> Result<prost_types::Timestamp, String> {
    let ts = ts.ok_or_else(|| "required".to_string())?;
    let t = validate::timestamp(ts)?;
    let date = hub_core::time::london_date(t);
    if date.year() < 2000 {
        return Err("before 2000-01-01".into());
    }
    if (date - ctx.today).get_days() as i64 > MAX_APPOINTMENT_DAYS_AHEAD {
        return Err(format!("more than {MAX_APPOINTMENT_DAYS_AHEAD} days ahead"));
    }
    Ok(*ts)
}

pub fn book_community_appointment(
    r: &BookCommunityAppointmentRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (code, person) = org_and_person("service_code", &r.service_code, r.person.as_ref(), ctx, v);
    let at = v.check(
        "appointment_at",
        appointment_at(r.appointment_at.as_ref(), ctx),
    );
    Some(Decision::about(
        Some(person?),
        Payload::CommunityAppointmentBooked(CommunityAppointmentBooked {
            service_code: code?,
            appointment_at: Some(at?),
        }),
    ))
}

pub fn arrange_gate_pickup(
    r: &ArrangeGatePickupRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let person = check_person(v, "person", r.person.as_ref(), ctx.today);
    let worker = v.check("worker_id", validate::required_text(&r.worker_id));
    Some(Decision::about(
        Some(person?),
        Payload::GatePickupArranged(GatePickupArranged {
            worker_id: worker?.trim().to_string(),
        }),
    ))
}

pub fn record_gate_pickup(
    r: &RecordGatePickupRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let person = check_person(v, "person", r.person.as_ref(), ctx.today);
    if r.accompanied_to_service && !r.met {
        v.add("accompanied_to_service", "cannot be true when met is false");
    }
    let person = person?;
    if !v.is_empty() {
        return None;
    }
    Some(Decision::about(
        Some(person),
        Payload::GatePickupRecorded(GatePickupRecorded {
            met: r.met,
            accompanied_to_service: r.accompanied_to_service,
        }),
    ))
}

pub fn record_treatment_engagement(
    r: &RecordTreatmentEngagementRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    org_fact(
        "service_code",
        &r.service_code,
        r.person.as_ref(),
        ctx,
        v,
        |service_code| {
            Payload::TreatmentEngagementRecorded(TreatmentEngagementRecorded { service_code })
        },
    )
}

pub fn record_overdose_training(
    r: &RecordOverdoseTrainingRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (code, person) = org_and_person("service_code", &r.service_code, r.person.as_ref(), ctx, v);
    let audience = v.check(
        "audience",
        validate::enum_value::<TrainingAudience>(r.audience),
    );
    Some(Decision::about(
        Some(person?),
        Payload::OverdoseTrainingRecorded(OverdoseTrainingRecorded {
            service_code: code?,
            audience: audience? as i32,
            naloxone_kit_supplied: r.naloxone_kit_supplied,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{auth::Role, command::testing::decide};
    use hub_proto::common::PersonRef;

    fn person() -> Option<PersonRef> {
        Some(PersonRef {
            prison_number: "A1234BC".into(),
            ..Default::default()
        })
    }

    #[test]
    fn referral_source_is_a_known_agency() {
        let req = RecordReferralRequest {
            service_code: "TRT01".into(),
            person: person(),
            source_agency: "Prison".into(),
            reason: "release".into(),
            ..Default::default()
        };
        let d = decide(Role::DipWorker, record_referral, &req).unwrap();
        assert_eq!(
            d.payload,
            Payload::TreatmentReferralRecorded(TreatmentReferralRecorded {
                service_code: "TRT01".into(),
                source_agency: "prison".into()
            })
        );
        assert_eq!(d.person_text, "release");
        let req = RecordReferralRequest {
            source_agency: "the moon".into(),
            ..req
        };
        assert_eq!(
            decide(Role::DipWorker, record_referral, &req).unwrap_err(),
            ["source_agency"]
        );
    }

    #[test]
    fn appointments_need_a_time_within_a_year() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        // 2026-12-01T10:00:00Z
        let req = BookCommunityAppointmentRequest {
            service_code: "TRT01".into(),
            person: person(),
            appointment_at: at(1_796_119_200),
            ..Default::default()
        };
        assert!(decide(Role::TreatmentWorker, book_community_appointment, &req).is_ok());
        let none = BookCommunityAppointmentRequest {
            appointment_at: None,
            ..req.clone()
        };
        assert_eq!(
            decide(Role::TreatmentWorker, book_community_appointment, &none).unwrap_err(),
            ["appointment_at"]
        );
        // 2030
        let far = BookCommunityAppointmentRequest {
            appointment_at: at(1_900_000_000),
            ..req
        };
        assert_eq!(
            decide(Role::TreatmentWorker, book_community_appointment, &far).unwrap_err(),
            ["appointment_at"]
        );
    }

    #[test]
    fn nobody_is_accompanied_who_was_not_met() {
        let req = RecordGatePickupRequest {
            person: person(),
            met: false,
            accompanied_to_service: true,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::DipWorker, record_gate_pickup, &req).unwrap_err(),
            ["accompanied_to_service"]
        );
        let req = RecordGatePickupRequest { met: true, ..req };
        assert_eq!(
            decide(Role::DipWorker, record_gate_pickup, &req)
                .unwrap()
                .payload,
            Payload::GatePickupRecorded(GatePickupRecorded {
                met: true,
                accompanied_to_service: true
            })
        );
    }

    #[test]
    fn training_needs_an_audience_and_gate_pickups_a_worker() {
        let req = RecordOverdoseTrainingRequest {
            service_code: "TRT01".into(),
            person: person(),
            audience: 0,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::TreatmentWorker, record_overdose_training, &req).unwrap_err(),
            ["audience"]
        );
        let req = ArrangeGatePickupRequest {
            person: person(),
            worker_id: "".into(),
            ..Default::default()
        };
        assert_eq!(
            decide(Role::DipWorker, arrange_gate_pickup, &req).unwrap_err(),
            ["worker_id"]
        );
    }
}
