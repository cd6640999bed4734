//! The activity projection from outside: commands through the agency
//! services, `GetActivity` through a gRPC client, as the people who read
//! it (an admin, a partnership analyst) and people who may not.

use hub_proto::{
    ambulance::{ambulance_service_client::AmbulanceServiceClient, *},
    common::{AdviceTopic, PersonRef},
    custody::{custody_service_client::CustodyServiceClient, *},
    pharmacy::{pharmacy_service_client::PharmacyServiceClient, *},
    projections::{activity_service_client::ActivityServiceClient, *},
    treatment::{treatment_service_client::TreatmentServiceClient, *},
};
use hub_tests::*;
use tonic::Code;

const CUSTODY_OFFICER: &str = "dev-custody-officer-token";
const PARAMEDIC: &str = "dev-paramedic-token";

/// An instant given in UTC.
fn at(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t: jiff::Timestamp = rfc3339.parse().expect("an instant");
    Some(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    })
}

fn jolene() -> Option<PersonRef> {
    Some(PersonRef {
        nhs_number: "943 476 5919".into(),
        given_name: "Jolene".into(),
        family_name: "Featherstonehaugh".into(),
        date_of_birth: "1985-03-02".into(),
        ..Default::default()
    })
}

fn by_nhs(nhs: &str) -> Option<PersonRef> {
    Some(PersonRef {
        nhs_number: nhs.into(),
        ..Default::default()
    })
}

/// A needle exchange in Bradford at pharmacy FW844.
fn needle_exchange(
    when: &str,
    client_code: &str,
    packs: u32,
    returns: u32,
) -> RecordNeedleExchangeRequest {
    RecordNeedleExchangeRequest {
        request_id: request_id("nx"),
        partnership_code: "bradford".into(),
        occurred_at: at(when),
        pharmacy_code: "FW844".into(),
        client_code: client_code.into(),
        packs_given: packs,
        returns,
    }
}

struct Clients {
    custody: CustodyServiceClient<tonic::transport::Channel>,
    pharmacy: PharmacyServiceClient<tonic::transport::Channel>,
    treatment: TreatmentServiceClient<tonic::transport::Channel>,
    ambulance: AmbulanceServiceClient<tonic::transport::Channel>,
    activity: ActivityServiceClient<tonic::transport::Channel>,
    /// The last acknowledged sequence.
    last: u64,
}

impl Clients {
    async fn new(hub: &Hub) -> Self {
        Self {
            custody: CustodyServiceClient::new(Hub::channel(&hub.custody).await),
            pharmacy: PharmacyServiceClient::new(Hub::channel(&hub.pharmacy).await),
            treatment: TreatmentServiceClient::new(Hub::channel(&hub.treatment).await),
            ambulance: AmbulanceServiceClient::new(Hub::channel(&hub.ambulance).await),
            activity: ActivityServiceClient::new(Hub::channel(&hub.activity).await),
            last: 0,
        }
    }

    fn note(&mut self, ack: Result<tonic::Response<hub_proto::common::EventAck>, tonic::Status>) {
        let seq = ack.expect("recorded").into_inner().stream_sequence;
        self.last = self.last.max(seq);
    }

    async fn advice(&mut self, p: &str, when: &str, person: Option<PersonRef>, referred: bool) {
        let r = RecordHarmReductionAdviceRequest {
            request_id: request_id("advice"),
            partnership_code: p.into(),
            occurred_at: at(when),
            custody_suite_code: "WYP01".into(),
            person,
            topics: vec![
                AdviceTopic::OverdoseRisk as i32,
                AdviceTopic::Naloxone as i32,
            ],
            referred_to_treatment: referred,
        };
        // The custody officer's token covers West Yorkshire's Bradford and
        // Leeds; advice elsewhere is recorded by an admin.
        let token = if ["bradford", "leeds"].contains(&p) {
            CUSTODY_OFFICER
        } else {
            ADMIN
        };
        let ack = self
            .custody
            .record_harm_reduction_advice(authed(r, token))
            .await;
        self.note(ack);
    }

    async fn engagement(&mut self, p: &str, when: &str, person: Option<PersonRef>) {
        let r = RecordTreatmentEngagementRequest {
            request_id: request_id("engaged"),
            partnership_code: p.into(),
            occurred_at: at(when),
            service_code: "TRT01".into(),
            person,
        };
        let ack = self
            .treatment
            .record_treatment_engagement(authed(r, ADMIN))
            .await;
        self.note(ack);
    }

    async fn needle_exchange(&mut self, when: &str, client_code: &str, packs: u32, returns: u32) {
        let r = needle_exchange(when, client_code, packs, returns);
        let ack = self
            .pharmacy
            .record_needle_exchange(authed(r, PHARMACIST))
            .await;
        self.note(ack);
    }

    async fn attendance(&mut self, when: &str, person: Option<PersonRef>, police: bool) {
        let r = RecordOverdoseAttendanceRequest {
            request_id: request_id("attended"),
            partnership_code: "bradford".into(),
            occurred_at: at(when),
            trust_code: "RX8".into(),
            person,
            naloxone_administered: true,
            police_attended: police,
            conveyed_to_hospital: false,
        };
        let ack = self
            .ambulance
            .record_overdose_attendance(authed(r, PARAMEDIC))
            .await;
        self.note(ack);
    }

    async fn protocol(&mut self, when: &str, force: &str, in_force: bool) {
        let r = RecordAttendanceProtocolRequest {
            request_id: request_id("protocol"),
            partnership_code: "bradford".into(),
            occurred_at: at(when),
            trust_code: "RX8".into(),
            police_force_code: force.into(),
            in_force,
        };
        let ack = self
            .ambulance
            .record_attendance_protocol(authed(r, PARAMEDIC))
            .await;
        self.note(ack);
    }

    async fn activity(
        &mut self,
        p: &str,
        fy: &str,
        token: &str,
    ) -> Result<Activity, tonic::Status> {
        let r = GetActivityRequest {
            partnership_code: p.into(),
            financial_year: fy.into(),
            min_sequence: self.last,
        };
        self.activity
            .get_activity(authed(r, token))
            .await
            .map(|r| r.into_inner())
    }
}

fn referrals<'a>(f: &'a ActivityFigures, source: &str) -> &'a Referrals {
    f.referrals
        .iter()
        .find(|r| r.source == source)
        .expect("every source listed")
}

#[tokio::test(flavor = "multi_thread")]
async fn what_agencies_record_is_counted_per_partnership_with_small_counts_withheld_from_analysts()
{
    let hub = Hub::start().expect("hub");
    let mut c = Clients::new(&hub).await;

    // Bradford, October 2026 (Q3 of 2026-27). Jolene is advised in
    // custody and referred; she engages with treatment 12 days later.
    c.advice("bradford", "2026-10-05T20:00:00Z", jolene(), true)
        .await;
    c.engagement("bradford", "2026-10-17T10:00:00Z", by_nhs("943 476 5919"))
        .await;
    // Someone else is advised, not referred.
    c.advice(
        "bradford",
        "2026-10-06T11:00:00Z",
        by_nhs("401 023 2137"),
        false,
    )
    .await;
    // Needle exchange: Saturday 3 October (out of hours), Tuesday 6
    // October 10:00 BST (in hours), twice by the same client.
    c.needle_exchange("2026-10-03T10:00:00Z", "JF02031985F", 10, 4)
        .await;
    c.needle_exchange("2026-10-06T09:00:00Z", "JF02031985F", 5, 5)
        .await;
    c.needle_exchange("2026-10-06T15:00:00Z", "AB01011990M", 5, 0)
        .await;
    // An attendance of a named person, police there; one of nobody named.
    c.attendance("2026-10-08T02:00:00Z", by_nhs("450 557 7104"), true)
        .await;
    c.attendance("2026-10-09T02:00:00Z", None, false).await;
    c.protocol("2026-05-01T09:00:00Z", "WYP", true).await;

    // Leeds records about the same NHS number: none of it is Bradford's.
    c.advice(
        "leeds",
        "2026-10-05T20:00:00Z",
        by_nhs("943 476 5919"),
        true,
    )
    .await;
    c.engagement("leeds", "2026-10-06T10:00:00Z", by_nhs("401 023 2137"))
        .await;

    let a = c
        .activity("bradford", "2026-27", ADMIN)
        .await
        .expect("GetActivity");
    assert!(a.applied_sequence >= c.last, "read-your-writes");
    assert!(a.suppressed.is_empty(), "admins see small counts");
    let year = a.year.clone().expect("the year");
    let q3 = a.quarters[2].clone();
    assert_eq!(a.quarters.len(), 4);
    for f in [&year, &q3] {
        let nx = f.needle_exchange.unwrap();
        assert_eq!(
            (
                nx.transactions,
                nx.clients,
                nx.packs_given,
                nx.returns,
                nx.pharmacies
            ),
            (3, 2, 20, 9, 1)
        );
        assert_eq!(nx.return_rate_pct, Some(45.0));
        assert_eq!(nx.out_of_hours_pct, Some(33.3));
        let ca = f.custody_advice.unwrap();
        assert_eq!((ca.records, ca.people, ca.referred_to_treatment), (2, 2, 1));
        assert_eq!(
            (ca.overdose_risk, ca.naloxone, ca.blood_borne_viruses),
            (2, 2, 0)
        );
        let custody = referrals(f, "custody");
        assert_eq!(
            (
                custody.referred,
                custody.engaged_within_28_days,
                custody.engaged_pct
            ),
            (1, 1, Some(100.0)),
            "Leeds's engagement of another person changes nothing here"
        );
        let oa = f.overdose_attendances.unwrap();
        assert_eq!(
            (
                oa.attendances,
                oa.police_attended,
                oa.people_named,
                oa.followed_by_treatment_within_28_days
            ),
            (2, 1, 1, 0)
        );
        assert_eq!(oa.police_attended_pct, Some(50.0));
        assert_eq!(oa.protocols_in_force, 1);
        assert_eq!(referrals(f, "ambulance").referred, 1);
    }
    assert_eq!(
        a.quarters[0].needle_exchange.unwrap().transactions,
        0,
        "Q1 had none"
    );
    assert_eq!(
        a.quarters[0]
            .overdose_attendances
            .unwrap()
            .protocols_in_force,
        1,
        "in force from May"
    );

    // Leeds sees only its own: one referral, not engaged (its engagement
    // was of someone else).
    let leeds = c.activity("leeds", "2026-27", ADMIN).await.unwrap();
    let custody = referrals(leeds.year.as_ref().unwrap(), "custody");
    assert_eq!((custody.referred, custody.engaged_within_28_days), (1, 0));
    assert_eq!(leeds.year.unwrap().needle_exchange.unwrap().transactions, 0);

    // The analyst: counts of 1 to 7 people withheld, named by path.
    let a = c
        .activity("bradford", "2026-27", ANALYST)
        .await
        .expect("analysts read activity");
    let year = a.year.clone().unwrap();
    assert_eq!(year.needle_exchange.unwrap().clients, 0);
    assert_eq!(year.needle_exchange.unwrap().transactions, 3, "not people");
    assert_eq!(referrals(&year, "custody").engaged_pct, None);
    for name in [
        "needle_exchange.clients",
        "custody_advice.people",
        "referrals.custody.referred",
        "referrals.custody.engaged_within_28_days",
        "referrals.custody.engaged_pct",
        "overdose_attendances.people_named",
        "q3.custody_advice.people",
    ] {
        assert!(
            a.suppressed.iter().any(|s| s == name),
            "{name} in {:?}",
            a.suppressed
        );
    }
    assert!(
        !a.suppressed
            .iter()
            .any(|s| s.contains("transactions") || s.contains("pharmacy")),
        "events and zero counts are shown: {:?}",
        a.suppressed
    );

    // Who may not: an analyst outside their partnership, a worker, bad input.
    let denied = c.activity("leeds", "2026-27", ANALYST).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let denied = c.activity("bradford", "2026-27", CARAT).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let bad = c.activity("bradford", "2026", ADMIN).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("financial_year"),
        "{}",
        bad.message()
    );
}

/// Needle exchanges of a year and of each quarter: (transactions, client
/// codes, pharmacies).
fn needle_exchanges(a: &Activity) -> Vec<(u32, u32, u32)> {
    std::iter::once(a.year.as_ref().expect("the year"))
        .chain(&a.quarters)
        .map(|f| {
            let nx = f.needle_exchange.expect("needle exchange figures");
            (nx.transactions, nx.clients, nx.pharmacies)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_counts_each_client_code_once_a_quarter_and_once_a_year_as_the_live_store_did() {
    let hub = Hub::start().expect("hub");
    let mut c = Clients::new(&hub).await;
    // 2026-27: one client in July (Q2) and three times in October (Q3),
    // with more exchanges between than a rebuild applies at once (8,192),
    // so that it meets the client again after committing the first time.
    c.needle_exchange("2026-07-10T10:00:00Z", "JF02031985F", 2, 0)
        .await;
    c.needle_exchange("2026-10-06T09:00:00Z", "JF02031985F", 1, 1)
        .await;
    const BETWEEN: u32 = 8_300;
    let between = (0..BETWEEN).map(|_| PharmacyCommand {
        command: Some(pharmacy_command::Command::RecordNeedleExchange(
            needle_exchange("2026-10-07T09:00:00Z", "MM01011980M", 1, 0),
        )),
    });
    let batch = c
        .pharmacy
        .record_batch(authed(futures::stream::iter(between), PHARMACIST))
        .await
        .expect("RecordBatch")
        .into_inner();
    assert_eq!(batch.recorded, BETWEEN, "{:?}", batch.refused);
    for day in ["08", "09"] {
        c.needle_exchange(&format!("2026-10-{day}T09:00:00Z"), "JF02031985F", 1, 1)
            .await;
    }
    c.needle_exchange("2026-10-09T10:00:00Z", "AB01011990M", 5, 0)
        .await;
    let n = BETWEEN + 5;
    let live = c.activity("bradford", "2026-27", ADMIN).await.unwrap();
    assert_eq!(
        needle_exchanges(&live),
        [(n, 3, 1), (0, 0, 0), (1, 1, 1), (n - 1, 3, 1), (0, 0, 0)],
        "the year, then Q1 to Q4"
    );

    // A rebuild (a fresh store loaded in bulk, which remembers the members
    // it has committed) counts them as the live store did.
    rebuild_and_switch(&hub.activity).await;
    let rebuilt = c.activity("bradford", "2026-27", ADMIN).await.unwrap();
    assert_eq!(needle_exchanges(&rebuilt), needle_exchanges(&live));

    // Live again on the rebuilt store: a client already counted in the
    // quarter is not counted again, a new one is.
    c.needle_exchange("2026-10-10T09:00:00Z", "AB01011990M", 1, 0)
        .await;
    c.needle_exchange("2026-10-10T10:00:00Z", "ZZ01011970F", 1, 0)
        .await;
    let after = c.activity("bradford", "2026-27", ADMIN).await.unwrap();
    assert_eq!(
        needle_exchanges(&after),
        [
            (n + 2, 4, 1),
            (0, 0, 0),
            (1, 1, 1),
            (n + 1, 4, 1),
            (0, 0, 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_national_comparison_sets_every_partnership_beside_england_and_covers_a_lone_small_count(
) {
    let hub = Hub::start().expect("hub");
    let mut c = Clients::new(&hub).await;
    // People advised in custody, 2026-27: Bradford 9, Leeds 3, Wakefield
    // 12. Leeds's 3 is withheld from analysts, and Bradford's 9, the
    // smallest count beside it, with it: England's 24 would otherwise
    // give Leeds's away.
    for (p, n) in [("bradford", 9), ("leeds", 3), ("wakefield", 12)] {
        for i in 0..n {
            let person = Some(PersonRef {
                pnc_id: format!("26/{i}{p}"),
                ..Default::default()
            });
            c.advice(p, "2026-06-01T10:00:00Z", person, false).await;
        }
    }
    c.needle_exchange("2026-06-02T10:00:00Z", "JF02031985F", 10, 5)
        .await;

    let national = |token: &'static str, fy: &'static str, min_sequence: u64| {
        let mut client = c.activity.clone();
        async move {
            client
                .get_national_comparison(authed(
                    GetNationalComparisonRequest {
                        financial_year: fy.into(),
                        min_sequence,
                    },
                    token,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let row = |n: &NationalComparison, code: &str| {
        n.partnerships
            .iter()
            .find(|r| r.partnership_code == code)
            .cloned()
            .expect("every partnership of the register has a row")
    };

    let admin = national(ADMIN, "2026-27", c.last).await.expect("admin");
    assert!(admin.applied_sequence >= c.last, "read-your-writes");
    assert_eq!(admin.financial_year, "2026-27");
    assert_eq!(admin.partnerships.len(), 149, "the whole register");
    let bradford = row(&admin, "bradford");
    assert_eq!(bradford.partnership_name, "Bradford");
    assert_eq!(
        (
            bradford.people_advised_in_custody,
            bradford.custody_advice_records,
            bradford.needle_exchange_transactions,
            bradford.needle_exchange_return_rate_pct,
        ),
        (9, 9, 1, Some(50.0))
    );
    assert_eq!(row(&admin, "leeds").people_advised_in_custody, 3);
    let england = admin.england.clone().expect("England");
    assert_eq!(
        (
            england.people_advised_in_custody,
            england.custody_advice_records
        ),
        (24, 24)
    );
    assert!(admin.partnerships.iter().all(|r| r.suppressed.is_empty()));
    let spread = |n: &NationalComparison, figure: &str| {
        n.spread
            .iter()
            .find(|s| s.figure == figure)
            .cloned()
            .expect("every figure has a spread")
    };
    let advised = spread(&admin, "people_advised_in_custody");
    assert_eq!((advised.partnerships, advised.median), (149, Some(0.0)));
    assert_eq!(
        spread(&admin, "needle_exchange_return_rate_pct").partnerships,
        1,
        "a rate only where there were packs"
    );

    let analyst = national(ANALYST, "2026-27", c.last)
        .await
        .expect("open to analysts, whichever partnerships their token names");
    for code in ["leeds", "bradford"] {
        let r = row(&analyst, code);
        assert_eq!(r.people_advised_in_custody, 0, "{code}");
        assert!(
            r.suppressed
                .contains(&"people_advised_in_custody".to_string()),
            "{code}: {:?}",
            r.suppressed
        );
    }
    assert_eq!(row(&analyst, "wakefield").people_advised_in_custody, 12);
    assert_eq!(
        row(&analyst, "bradford").custody_advice_records,
        9,
        "records are not people: shown"
    );
    assert_eq!(
        analyst.england.as_ref().unwrap().people_advised_in_custody,
        24,
        "England is national level"
    );
    assert_eq!(
        spread(&analyst, "people_advised_in_custody").partnerships,
        147,
        "withheld values are left out of the spread"
    );

    // Refusals: a worker's role, a malformed year.
    let err = national(CARAT, "2026-27", 0).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("national comparison"),
        "{}",
        err.message()
    );
    let err = national(ADMIN, "2026", 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("financial_year"),
        "{}",
        err.message()
    );

    // hubctl: England and the spread, a ranking, CSV.
    let run = hubctl(&hub, Some(ANALYST), &["national", "--fy", "2026-27"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("people_advised_in_custody"),
        "{}",
        run.stdout
    );
    let run = hubctl(
        &hub,
        Some(ADMIN),
        &[
            "national",
            "--fy",
            "2026-27",
            "--figure",
            "people_advised_in_custody",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ranked: Vec<&str> = run.stdout.lines().skip(2).take(3).collect();
    assert!(
        ranked[0].contains("wakefield") && ranked[0].contains("12"),
        "{}",
        run.stdout
    );
    assert!(ranked[1].contains("bradford"), "{}", run.stdout);
    assert!(ranked[2].contains("leeds"), "{}", run.stdout);
    let run = hubctl(
        &hub,
        Some(ANALYST),
        &["national", "--fy", "2026-27", "--csv"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("partnership,leeds,Leeds,"),
        "{}",
        run.stdout
    );
    let leeds_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("partnership,leeds,"))
        .unwrap();
    assert!(leeds_line.contains("withheld"), "{leeds_line}");
    let run = hubctl(&hub, Some(ADMIN), &["national", "--figure", "nonsense"]).await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--figure"), "{}", run.stderr);
}
