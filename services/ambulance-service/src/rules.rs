//! Field rules and decisions for each AmbulanceService RPC: pure functions,
//! tested without a server.

use hub_core::{
    command::{headcount_fact, staff_fact, Decision, RuleContext},
    person::check_optional_person,
    validate::{self, Violations},
};
use hub_proto::{
    ambulance::*,
    events::{
        event::Payload, AmbulanceWorkforceRecorded, AttendanceProtocolRecorded,
        OverdoseAttendanceRecorded, ParamedicNaloxoneTrainingRecorded,
    },
};

pub fn record_paramedic_naloxone_training(
    r: &RecordParamedicNaloxoneTrainingRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    staff_fact(
        "trust_code",
        &r.trust_code,
        &r.staff_id,
        ctx,
        v,
        |trust_code, staff_key| {
            Payload::ParamedicNaloxoneTrainingRecorded(ParamedicNaloxoneTrainingRecorded {
                trust_code,
                staff_key,
            })
        },
    )
}

pub fn record_ambulance_workforce(
    r: &RecordAmbulanceWorkforceRequest,
    _ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    headcount_fact(
        "trust_code",
        &r.trust_code,
        "paramedic_headcount",
        r.paramedic_headcount,
        v,
        |trust_code, paramedic_headcount| {
            Payload::AmbulanceWorkforceRecorded(AmbulanceWorkforceRecorded {
                trust_code,
                paramedic_headcount,
            })
        },
    )
}

pub fn record_overdose_attendance(
    r: &RecordOverdoseAttendanceRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let code = v
        .check("trust_code", validate::org_code(&r.trust_code))
        .map(str::to_string);
    let person = check_optional_person(v, "person", r.person.as_ref(), ctx.today);
    Some(Decision::about(
        person?,
        Payload::OverdoseAttendanceRecorded(OverdoseAttendanceRecorded {
            trust_code: code?,
            naloxone_administered: r.naloxone_administered,
            police_attended: r.police_attended,
            conveyed_to_hospital: r.conveyed_to_hospital,
        }),
    ))
}

pub fn record_attendance_protocol(
    r: &RecordAttendanceProtocolRequest,
    _ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let code = v
        .check("trust_code", validate::org_code(&r.trust_code))
        .map(str::to_string);
    let force = v
        .check(
            "police_force_code",
            validate::org_code(&r.police_force_code),
        )
        .map(str::to_string);
    Some(Decision::about(
        None,
        Payload::AttendanceProtocolRecorded(AttendanceProtocolRecorded {
            trust_code: code?,
            police_force_code: force?,
            in_force: r.in_force,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{auth::Role, command::testing::decide};
    use hub_proto::common::PersonRef;

    fn attendance(person: Option<PersonRef>) -> RecordOverdoseAttendanceRequest {
        RecordOverdoseAttendanceRequest {
            trust_code: "RX8".into(),
            person,
            naloxone_administered: true,
            conveyed_to_hospital: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_attendance_may_name_nobody() {
        let d = decide(
            Role::Paramedic,
            record_overdose_attendance,
            &attendance(None),
        )
        .unwrap();
        assert!(d.person.is_none());
        let d = decide(
            Role::Paramedic,
            record_overdose_attendance,
            &attendance(Some(PersonRef::default())),
        )
        .unwrap();
        assert!(d.person.is_none(), "an empty ref is nobody");
        let d = decide(
            Role::Paramedic,
            record_overdose_attendance,
            &attendance(Some(PersonRef {
                nhs_number: "9434765919".into(),
                ..Default::default()
            })),
        )
        .unwrap();
        assert!(d.person.is_some());
    }

    #[test]
    fn a_named_person_must_be_valid() {
        let bad = Some(PersonRef {
            given_name: "Sam".into(),
            ..Default::default()
        });
        assert_eq!(
            decide(
                Role::Paramedic,
                record_overdose_attendance,
                &attendance(bad)
            )
            .unwrap_err(),
            ["person"]
        );
        let bad = Some(PersonRef {
            nhs_number: "123".into(),
            ..Default::default()
        });
        assert_eq!(
            decide(
                Role::Paramedic,
                record_overdose_attendance,
                &attendance(bad)
            )
            .unwrap_err(),
            ["person.nhs_number"]
        );
    }

    #[test]
    fn protocol_and_workforce_rules() {
        let req = RecordAttendanceProtocolRequest {
            trust_code: "RX8".into(),
            police_force_code: "west yorks".into(),
            in_force: true,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::Paramedic, record_attendance_protocol, &req).unwrap_err(),
            ["police_force_code"]
        );
        let req = RecordAmbulanceWorkforceRequest {
            trust_code: "RX8".into(),
            paramedic_headcount: 20_000,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::Paramedic, record_ambulance_workforce, &req).unwrap_err(),
            ["paramedic_headcount"]
        );
        let req = RecordParamedicNaloxoneTrainingRequest {
            trust_code: "RX8".into(),
            staff_id: "P-1".into(),
            ..Default::default()
        };
        assert!(
            decide(Role::Paramedic, record_paramedic_naloxone_training, &req)
                .unwrap()
                .person
                .is_none()
        );
    }
}
