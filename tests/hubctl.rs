//! `hubctl` as a worker or operator runs it: the real binary against a
//! whole hub. Every command RPC has its subcommand (flags named as the
//! fields), retries are safe, refusals exit 1 with a message naming the
//! field and the request id, `events tail` shows the stream decoded but
//! still pseudonymous, and `backup` / `restore` bring a lost site back.

use std::collections::BTreeSet;

use hub_testkit::binary;
use hub_tests::{
    base_env, bradford_training, command, commands::RPCS, hubctl, london_day, run, start_process,
    training_health_becomes, Hub, ADMIN, ANALYST, CARAT, DIP, LEEDS_CARAT, PHARMACIST, STEWARD,
    TREATMENT,
};

const CUSTODY: &str = "dev-custody-officer-token";
const PARAMEDIC: &str = "dev-paramedic-token";

fn kebab(rpc: &str) -> String {
    let mut out = String::new();
    for (i, c) in rpc.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

const PERSON: &[&str] = &[
    "--nhs-number",
    "943 476 5919",
    "--prison-number",
    "A1234BC",
    "--given-name",
    "Jolene",
    "--family-name",
    "Featherstonehaugh",
];

/// Bradford's pick-up list as a CARAT worker reads it with `--json`,
/// once `seq` is applied.
async fn pickups_json(hub: &Hub, seq: u64) -> serde_json::Value {
    hubctl(
        hub,
        Some(CARAT),
        &[
            "--json",
            "pickups",
            "--partnership",
            "bradford",
            "--min-sequence",
            &seq.to_string(),
        ],
    )
    .await
    .json()
}

/// The RPC's own flags, and whose token sends it.
fn flags(agency: &str, rpc: &str, release: &str) -> (Vec<String>, &'static str) {
    let appointment = format!("{}T10:30", london_day(7));
    let mut f: Vec<String> = match (agency, rpc) {
        ("custody", "RecordHarmReductionAdvice") => vec![
            "--custody-suite-code",
            "BD01",
            "--topics",
            "OVERDOSE_RISK,naloxone",
            "--referred-to-treatment",
        ],
        ("custody", "RecordOfficerOverdoseTraining") => {
            vec!["--custody-suite-code", "BD01", "--staff-id", "PC-1234"]
        }
        ("custody", "RecordCustodyWorkforce") => {
            vec![
                "--custody-suite-code",
                "BD01",
                "--custody-officer-headcount",
                "40",
            ]
        }
        ("prison", "RecordReleaseDate") => vec!["--prison-code", "LEI", "--release-date", release],
        ("prison", "CancelRelease") => vec!["--prison-code", "LEI"],
        ("prison", "FlagImminentRelease") => {
            vec![
                "--prison-code",
                "LEI",
                "--note",
                "Jolene asks for a morning meet",
            ]
        }
        ("prison", "RecordConsent") => vec!["--purpose", "GATE_PICKUP", "--given", "true"],
        ("prison", "RecordPreReleaseTriage")
        | ("prison", "RecordNaloxoneOnRelease")
        | ("prison", "RecordRelease") => vec!["--prison-code", "LEI"],
        ("pharmacy", "RecordNeedleExchange") => vec![
            "--pharmacy-code",
            "FW844",
            "--client-code",
            "JS02031985M",
            "--packs-given",
            "3",
            "--returns",
            "2",
        ],
        ("pharmacy", "RecordReferral") => vec!["--pharmacy-code", "FW844", "--reason", "asked"],
        ("pharmacy", "RecordStaffTraining") => vec![
            "--pharmacy-code",
            "FW844",
            "--staff-id",
            "S-9",
            "--accreditation",
            "CPPE-naloxone",
        ],
        ("pharmacy", "RecordNaloxoneSupply") => vec!["--pharmacy-code", "FW844", "--kits", "2"],
        ("treatment", "RecordReferral") => vec![
            "--service-code",
            "TRTBRAD",
            "--source-agency",
            "prison",
            "--reason",
            "on release",
        ],
        ("treatment", "BookCommunityAppointment") => vec![
            "--service-code",
            "TRTBRAD",
            "--appointment-at",
            &appointment,
        ],
        ("treatment", "ArrangeGatePickup") => vec!["--worker-id", "dip-7"],
        ("treatment", "RecordGatePickup") => vec!["--met", "true", "--accompanied-to-service"],
        ("treatment", "RecordTreatmentEngagement") => vec!["--service-code", "TRTBRAD"],
        ("treatment", "RecordOverdoseTraining") => vec![
            "--service-code",
            "TRTBRAD",
            "--audience",
            "PRISON_LEAVER",
            "--naloxone-kit-supplied",
        ],
        ("ambulance", "RecordParamedicNaloxoneTraining") => {
            vec!["--trust-code", "RX8", "--staff-id", "P-55"]
        }
        ("ambulance", "RecordAmbulanceWorkforce") => {
            vec!["--trust-code", "RX8", "--paramedic-headcount", "120"]
        }
        ("ambulance", "RecordOverdoseAttendance") => vec![
            "--trust-code",
            "RX8",
            "--naloxone-administered",
            "--conveyed-to-hospital",
            "false",
        ],
        ("ambulance", "RecordAttendanceProtocol") => vec![
            "--trust-code",
            "RX8",
            "--police-force-code",
            "WYP",
            "--in-force",
            "true",
        ],
        ("prison", "RecordHandover") => {
            vec!["--prison-code", "LEI", "--to-partnership-code", "leeds"]
        }
        ("identity", "LinkPeople") | ("identity", "UnlinkPeople") => vec![
            "--person-a-nhs-number",
            "943 476 5919",
            "--person-b-client-code",
            "JS02031985M",
            "--reason",
            "checked the referral letter and the date of birth",
        ],
        other => panic!("no hubctl test for {other:?}: add one"),
    }
    .into_iter()
    .map(String::from)
    .collect();
    let needs_person = !matches!(
        rpc,
        "RecordOfficerOverdoseTraining"
            | "RecordCustodyWorkforce"
            | "RecordNeedleExchange"
            | "RecordStaffTraining"
            | "RecordParamedicNaloxoneTraining"
            | "RecordAmbulanceWorkforce"
            | "RecordAttendanceProtocol"
            | "LinkPeople"
            | "UnlinkPeople"
    );
    if needs_person {
        f.extend(PERSON.iter().map(|s| s.to_string()));
    }
    let token = match (agency, rpc) {
        ("custody", _) => CUSTODY,
        ("prison", "FlagImminentRelease") => DIP,
        ("prison", _) => CARAT,
        ("pharmacy", _) => PHARMACIST,
        ("treatment", _) => TREATMENT,
        ("identity", _) => STEWARD,
        _ => PARAMEDIC,
    };
    (f, token)
}

/// hubctl's arguments recording `rpc` for bradford with `request_id`, and
/// whose token sends it. A retry with these arguments sends the same body
/// (the same request id and time).
fn recording(
    agency: &str,
    rpc: &str,
    release: &str,
    request_id: &str,
) -> (Vec<String>, &'static str) {
    let (own, token) = flags(agency, rpc, release);
    let mut args = vec![
        "--json".to_string(),
        agency.to_string(),
        kebab(rpc),
        "--partnership".into(),
        "bradford".into(),
        "--request-id".into(),
        request_id.to_string(),
        "--occurred-at".into(),
        jiff::Timestamp::now().to_string(),
    ];
    args.extend(own);
    (args, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_rpc_has_a_subcommand_that_records_it_once() {
    let hub = Hub::start().unwrap();
    let release = london_day(3);
    let mut sequences = BTreeSet::new();
    let mut covered = BTreeSet::new();
    // The person is handed over and the release cancelled last, so that
    // the list below still shows them.
    let last_ones = ["RecordHandover", "CancelRelease"];
    let order = RPCS
        .iter()
        .filter(|(_, r)| !last_ones.contains(r))
        .chain(RPCS.iter().filter(|(_, r)| last_ones.contains(r)));
    for (agency, rpc) in order {
        let request_id = format!("hubctl-test-{agency}-{rpc}");
        let (args, token) = recording(agency, rpc, &release, &request_id);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = hubctl(&hub, Some(token), &argv).await.json();
        assert_eq!(first["duplicate"], false, "{agency} {rpc}: {first}");
        assert_eq!(first["request_id"], request_id.as_str());
        let seq = first["stream_sequence"].as_u64().unwrap();
        assert!(
            sequences.insert(seq),
            "{agency} {rpc}: sequence {seq} reused"
        );

        // A retry with the same request id records nothing new.
        let again = hubctl(&hub, Some(token), &argv).await.json();
        assert_eq!(again["duplicate"], true, "{agency} {rpc}: {again}");
        assert_eq!(again["event_id"], first["event_id"]);
        assert_eq!(again["stream_sequence"], first["stream_sequence"]);
        covered.insert((*agency, *rpc));

        if *rpc == "RecordOverdoseTraining" {
            // Before the cancellation: the pick-up list shows what hubctl
            // recorded, with the name since consent was given.
            let list = pickups_json(&hub, seq).await;
            let entry = &list["entries"][0];
            assert_eq!(entry["release_date"], release.as_str(), "{list}");
            assert_eq!(entry["consent"], "GIVEN", "{list}");
            assert_eq!(entry["display_name"], "Jolene Featherstonehaugh", "{list}");
            assert_eq!(entry["gate_worker_id"], "dip-7", "{list}");
            assert_eq!(entry["overdose_trained"], true, "{list}");
        }
    }
    assert_eq!(
        covered.len(),
        RPCS.len(),
        "every command RPC is reachable from hubctl"
    );
    assert_eq!(
        hub.stream_messages().await,
        RPCS.len() as u64 + 1,
        "24 commands and one audit record of the read"
    );

    // What the training projection counted from them.
    let last = sequences.last().unwrap().to_string();
    let counts = bradford_json(&hub, ADMIN, "training", &last).await;
    assert_eq!(counts["prison_leavers_trained"], 1, "{counts}");
    assert_eq!(counts["custody_officers_trained"], 1, "{counts}");
    assert_eq!(counts["custody_officer_headcount"], 40, "{counts}");
    assert_eq!(counts["paramedic_headcount"], 120, "{counts}");
    // 2 from the pharmacy, 1 on release, 1 with the training.
    assert_eq!(counts["naloxone_kits_supplied"], 4, "{counts}");

    // And the activity projection: JSON with the reply's fields, CSV with
    // the analyst's withheld counts marked.
    let read = [
        "activity",
        "--partnership",
        "bradford",
        "--min-sequence",
        &last,
    ];
    let json_args: Vec<&str> = std::iter::once("--json").chain(read).collect();
    let activity = hubctl(&hub, Some(ADMIN), &json_args).await.json();
    let year = &activity["year"];
    assert_eq!(year["custody_advice"]["records"], 1, "{activity}");
    assert_eq!(year["needle_exchange"]["transactions"], 1, "{activity}");
    assert_eq!(year["overdose_attendances"]["attendances"], 1, "{activity}");
    assert_eq!(year["naloxone_kits"]["total"], 4, "{activity}");
    assert_eq!(year["referrals"][0]["source"], "custody", "{activity}");
    assert_eq!(year["referrals"][0]["referred"], 1, "{activity}");
    let fy = activity["financial_year"].as_str().unwrap().to_string();
    let csv_args: Vec<&str> = read.into_iter().chain(["--csv"]).collect();
    let csv = hubctl(&hub, Some(ANALYST), &csv_args).await;
    assert!(
        csv.stdout
            .starts_with("partnership_code,financial_year,figure,label,year,q1,q2,q3,q4\r\n"),
        "{}",
        csv.stdout
    );
    let people = format!("bradford,{fy},custody_advice.people,Custody advice: people,withheld,");
    let records = format!("bradford,{fy},custody_advice.records,Custody advice: records,1,");
    for line in [people, records] {
        assert!(csv.stdout.contains(&line), "{line} in {}", csv.stdout);
    }
    let table = hubctl(&hub, Some(ADMIN), &read).await;
    assert!(
        table.stdout.contains("Custody advice: records"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_exit_1_name_the_field_and_record_nothing() {
    let hub = Hub::start().unwrap();
    let bad_date = hubctl(
        &hub,
        Some(CARAT),
        &[
            "prison",
            "record-release-date",
            "--partnership",
            "bradford",
            "--prison-code",
            "LEI",
            "--prison-number",
            "A1234BC",
            "--release-date",
            "2026-02-30",
            "--request-id",
            "r-1",
        ],
    )
    .await;
    bad_date.refused(
        1,
        &[
            "InvalidArgument",
            "release_date",
            "request id r-1: nothing recorded",
        ],
    );

    let bad_nhs = hubctl(
        &hub,
        Some(CARAT),
        &[
            "prison",
            "record-release",
            "--partnership",
            "bradford",
            "--prison-code",
            "LEI",
            "--nhs-number",
            "943 476 5918",
        ],
    )
    .await;
    bad_nhs.refused(1, &["person.nhs_number"]);
    assert!(
        !bad_nhs.stderr.contains("943 476 5918"),
        "the identifier is not echoed: {}",
        bad_nhs.stderr
    );

    let denied = hubctl(
        &hub,
        Some(ANALYST),
        &[
            "pharmacy",
            "record-naloxone-supply",
            "--partnership",
            "bradford",
            "--pharmacy-code",
            "FW844",
            "--client-code",
            "JS02031985M",
            "--kits",
            "1",
        ],
    )
    .await;
    denied.refused(1, &["PermissionDenied", "hint: your role"]);

    let unknown = hubctl(
        &hub,
        Some("not-a-real-token-at-all"),
        &["pickups", "--partnership", "bradford"],
    )
    .await;
    unknown.refused(1, &["Unauthenticated"]);

    let none = hubctl(&hub, None, &["pickups", "--partnership", "bradford"]).await;
    none.refused(1, &["set HUB_TOKEN"]);

    // Consent is never assumed: without --given the command line is wrong (2).
    let usage = hubctl(
        &hub,
        Some(CARAT),
        &[
            "prison",
            "record-consent",
            "--partnership",
            "bradford",
            "--prison-number",
            "A1234BC",
            "--purpose",
            "GATE_PICKUP",
        ],
    )
    .await;
    usage.refused(2, &["--given"]);

    assert_eq!(
        hub.stream_messages().await,
        0,
        "nothing recorded by any refusal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_tail_decodes_the_stream_without_revealing_anyone() {
    let hub = Hub::start().unwrap();
    let release = london_day(5);
    for (i, number) in ["A1234BC", "B2345CD", "C3456DE"].iter().enumerate() {
        let r = hubctl(
            &hub,
            Some(CARAT),
            &[
                "prison",
                "record-release-date",
                "--partnership",
                if i == 2 { "leeds" } else { "bradford" },
                "--prison-code",
                "LEI",
                "--prison-number",
                number,
                "--given-name",
                "Jolene",
                "--family-name",
                "Featherstonehaugh",
                "--release-date",
                &release,
            ],
        )
        .await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.starts_with("recorded: event "), "{}", r.stdout);
    }

    // Two scheduled in bradford: an analyst's table says withheld, not 0.
    let summary = hubctl(
        &hub,
        Some(ANALYST),
        &[
            "pickup-summary",
            "--partnership",
            "bradford",
            "--min-sequence",
            "3",
        ],
    )
    .await;
    assert_eq!(summary.code, 0, "{}", summary.stderr);
    let scheduled = summary
        .stdout
        .lines()
        .find(|l| l.contains("SCHEDULED"))
        .unwrap_or_default();
    assert!(scheduled.ends_with("withheld"), "{}", summary.stdout);

    let all = hubctl(&hub, None, &["--json", "events", "tail"]).await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    let lines: Vec<serde_json::Value> = all
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", all.stdout);
    assert_eq!(lines[2]["stream_sequence"], 3);
    let e = &lines[0]["event"];
    assert_eq!(e["event_type"], "release_date_recorded");
    assert_eq!(e["release_date_recorded"]["release_date"], release.as_str());
    assert_eq!(e["person_key"].as_str().unwrap().len(), 32);
    assert_eq!(e["sealed"]["has_name"], true);
    for text in [&all.stdout] {
        for secret in ["Jolene", "Featherstonehaugh", "A1234BC", "ciphertext"] {
            assert!(
                !text.contains(secret),
                "{secret} shown by events tail: {text}"
            );
        }
    }

    let leeds = hubctl(&hub, None, &["events", "tail", "--partnership", "leeds"]).await;
    assert_eq!(leeds.code, 0, "{}", leeds.stderr);
    assert_eq!(leeds.stdout.lines().count(), 1, "{}", leeds.stdout);
    assert!(
        leeds
            .stdout
            .contains("hub.events.prison.leeds.release_date_recorded"),
        "{}",
        leeds.stdout
    );
    assert!(leeds.stdout.contains("[sealed: name]"), "{}", leeds.stdout);

    let last = hubctl(&hub, None, &["--json", "events", "tail", "-n", "1"]).await;
    assert_eq!(last.stdout.lines().count(), 1);
    assert!(
        last.stdout.contains("\"stream_sequence\":3"),
        "{}",
        last.stdout
    );

    let from = hubctl(
        &hub,
        None,
        &["--json", "events", "tail", "--from-sequence", "2"],
    )
    .await;
    assert_eq!(from.stdout.lines().count(), 2, "{}", from.stdout);

    // --follow prints what is recorded after it started.
    let mut follow = tokio::process::Command::new(binary("hubctl").unwrap())
        .args([
            "--json", "events", "tail", "-n", "0", "--follow", "--agency", "pharmacy",
        ])
        .env("HUB_NATS_URL", hub.nats.url())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = hubctl(
        &hub,
        Some(PHARMACIST),
        &[
            "pharmacy",
            "record-needle-exchange",
            "--partnership",
            "bradford",
            "--pharmacy-code",
            "FW844",
            "--client-code",
            "JS02031985M",
            "--packs-given",
            "5",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("the followed event arrives")
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v["event"]["needle_exchange_recorded"]["packs_given"], 5,
        "{line}"
    );
    assert!(!line.contains("JS02031985M"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_cover_every_subcommand() {
    let hub = Hub::start().unwrap();
    let bash = hubctl(&hub, None, &["completions", "bash"]).await;
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for (_, rpc) in RPCS {
        assert!(
            bash.stdout.contains(&kebab(rpc)),
            "{rpc} missing from the bash completions"
        );
    }
    for word in [
        "pickups",
        "pickup-summary",
        "events",
        "tail",
        "--follow",
        "--partnership-code",
    ] {
        assert!(
            bash.stdout.contains(word),
            "{word} missing from the bash completions"
        );
    }
    let zsh = hubctl(&hub, None, &["completions", "zsh"]).await;
    assert!(
        zsh.stdout.starts_with("#compdef hubctl"),
        "{}",
        &zsh.stdout[..80.min(zsh.stdout.len())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn record_batch_uploads_a_file_and_a_second_upload_records_nothing_twice() {
    let hub = Hub::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("needles.jsonl");
    let line = |id: &str, client_code: &str| {
        format!(
            r#"{{"record_needle_exchange": {{"request_id": "{id}", "partnership_code": "bradford", "occurred_at": "{}T10:00:00Z", "pharmacy_code": "FW844", "client_code": "{client_code}", "packs_given": 2}}}}"#,
            london_day(-1)
        )
    };
    // Line 2's attributor has a date that does not exist.
    let text = [
        line("fw844-1", "JS02031985M"),
        line("fw844-2", "JS31021985M"),
        line("fw844-3", "AB01011990F"),
    ]
    .join("\n");
    std::fs::write(&file, &text).unwrap();
    let path = file.display().to_string();
    let args = ["pharmacy", "record-batch", "--file", path.as_str()];

    let first = hubctl(&hub, Some(PHARMACIST), &args).await;
    first.refused(1, &["1 command(s) refused", "upload the file again"]);
    assert!(
        first.stdout.contains("line      2")
            && first.stdout.contains("refused INVALID_ARGUMENT")
            && first.stdout.contains("client_code"),
        "{}",
        first.stdout
    );
    assert!(first
        .stdout
        .contains("recorded 2, already recorded 0, refused 1"));
    assert_eq!(hub.stream_messages().await, 2);

    // Fixed and uploaded again: the fixed line is recorded, the others are
    // acknowledged again.
    std::fs::write(&file, text.replace("JS31021985M", "JS28021985M")).unwrap();
    let mut json_args = vec!["--json"];
    json_args.extend(args);
    let second = hubctl(&hub, Some(PHARMACIST), &json_args).await.json();
    assert_eq!(second["recorded"], 1, "{second}");
    assert_eq!(second["duplicates"], 2, "{second}");
    assert_eq!(second["results"][1]["line"], 2);
    assert_eq!(second["results"][1]["outcome"], "recorded");
    assert_eq!(second["results"][0]["outcome"], "already recorded");
    assert_eq!(hub.stream_messages().await, 3);

    // The wrong role for the service: each line is refused, nothing recorded.
    let wrong = hubctl(&hub, Some(CARAT), &args).await;
    wrong.refused(1, &["3 command(s) refused"]);
    assert!(
        wrong.stdout.contains("PERMISSION_DENIED"),
        "{}",
        wrong.stdout
    );
    assert_eq!(hub.stream_messages().await, 3);
}

/// What the pick-up list (as a CARAT worker) and the training counts (as an
/// admin) show of Jolene once `min_sequence` is applied: her name and the
/// kits supplied.
async fn name_and_kits(hub: &Hub, min_sequence: u64) -> (serde_json::Value, serde_json::Value) {
    let min = min_sequence.to_string();
    let list = bradford_json(hub, CARAT, "pickups", &min).await;
    let counts = bradford_json(hub, ADMIN, "training", &min).await;
    (
        list["entries"][0]["display_name"].clone(),
        counts["naloxone_kits_supplied"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restored_into_an_empty_nats_brings_back_every_event_and_every_name() {
    let mut hub = Hub::start().unwrap();
    let release = london_day(3);
    let mut last = 0;
    let mut supply = Vec::new();
    for (agency, rpc) in [
        ("prison", "RecordReleaseDate"),
        ("prison", "RecordConsent"),
        ("pharmacy", "RecordNaloxoneSupply"),
    ] {
        let (args, token) = recording(agency, rpc, &release, &format!("backup-{rpc}"));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        last = hubctl(&hub, Some(token), &argv).await.json()["stream_sequence"]
            .as_u64()
            .unwrap();
        supply = args;
    }
    let before = name_and_kits(&hub, last).await;
    assert_eq!(before, ("Jolene Featherstonehaugh".into(), 2.into()));
    let events = hub.stream_messages().await;

    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("hub-backup");
    let dir_arg = dir.to_str().unwrap();
    let made = run(command(&hub.nats.url(), &["backup", dir_arg])).await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stdout
            .contains(&format!("HUB_EVENTS: {events} messages"))
            && made.stdout.contains("KV_hub_person_keys: "),
        "{}",
        made.stdout
    );
    run(command(&hub.nats.url(), &["backup", dir_arg]))
        .await
        .refused(1, &["is not empty"]);
    // Never over a stream that is still there.
    run(command(&hub.nats.url(), &["restore", dir_arg]))
        .await
        .refused(1, &["HUB_EVENTS already exists", "Nothing was restored"]);
    // The site goes on after the backup: one more supply, applied, then
    // its training projection stops (its store is kept, below).
    let (args, token) = recording("pharmacy", "RecordNaloxoneSupply", &release, "after-backup");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let after = hubctl(&hub, Some(token), &argv).await.json()["stream_sequence"]
        .as_u64()
        .unwrap();
    assert_eq!(name_and_kits(&hub, after).await.1, 4);
    hub.training.terminate().unwrap();

    // A damaged copy is refused before anything reaches NATS...
    let mut lost_site = hub_testkit::NatsServer::start().unwrap();
    let damaged = folder.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let to = damaged.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir(&to).unwrap();
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
    let snapshot = damaged.join("HUB_EVENTS/stream.tar.s2");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    run(command(
        &lost_site.url(),
        &["restore", damaged.to_str().unwrap()],
    ))
    .await
    .refused(1, &["stream.tar.s2 is damaged", "Nothing was restored"]);

    // ...and the good one, into that same empty server, brings back every
    // event and every key: a hub started on it, with the hub secret put
    // back, shows the same name and the same counts from projections
    // rebuilt from nothing.
    let restored = run(command(&lost_site.url(), &["restore", dir_arg])).await;
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    assert!(
        restored
            .stdout
            .contains(&format!("HUB_EVENTS: restored, {events} messages")),
        "{}",
        restored.stdout
    );
    // As hubctl says after a restore: restart the server before the
    // agency services start, or it forgets the request ids it has seen
    // (nats-server 2.15.1 rebuilds that memory only when it starts).
    lost_site.kill();
    lost_site.restart().unwrap();
    // The old site's training store, started on the restored stream, is
    // ahead of it: refused, not silently skipping what comes next.
    let old_store = base_env(hub.dir.path(), &lost_site.url());
    let refuses = |why: &'static str| {
        let old_store = old_store.clone();
        let dir = hub.dir.path().to_path_buf();
        async move {
            let mut old = start_process(&dir, &old_store, "training-projection").unwrap();
            training_health_becomes(&old, 2).await;
            let refused = bradford_training(Hub::channel(&old).await, 0)
                .await
                .expect_err("no counts from a store of another history");
            assert_eq!(refused.code(), tonic::Code::Unavailable);
            for says in [why, "another history of the stream"] {
                assert!(refused.message().contains(says), "{}", refused.message());
            }
            old.terminate().unwrap();
        }
    };
    refuses("but the stream ends at").await;
    let secret = hub.dir.path().join("hub.secret").display().to_string();
    let again = Hub::start_on(lost_site, |_| {
        vec![("HUB_SECRET_FILE".to_string(), secret.clone())]
    })
    .unwrap();
    assert_eq!(again.stream_messages().await, events);
    assert_eq!(name_and_kits(&again, events).await, before);
    // A command retried after the restore is still recognised.
    let argv: Vec<&str> = supply.iter().map(String::as_str).collect();
    let retried = hubctl(&again, Some(PHARMACIST), &argv).await.json();
    assert_eq!(retried["duplicate"], true, "{retried}");

    // Once the new history reaches past the old store's position, its
    // sequences line up but not its messages: still refused.
    let (args, token) = recording("pharmacy", "RecordNaloxoneSupply", &release, "new-history");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let newest = hubctl(&again, Some(token), &argv).await.json()["stream_sequence"]
        .as_u64()
        .unwrap();
    assert!(newest > after, "{newest} {after}");
    refuses("is not the one the store applied").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stewards_decide_who_is_whom_and_breaking_the_glass_is_audited_from_the_command_line() {
    let hub = Hub::start().unwrap();
    let release = london_day(3);
    let mut last = 0;
    for nhs in ["943 476 5919", "401 023 2137"] {
        let ack = hubctl(
            &hub,
            Some(CARAT),
            &[
                "--json",
                "prison",
                "record-release-date",
                "--partnership",
                "bradford",
                "--prison-code",
                "LEI",
                "--nhs-number",
                nhs,
                "--client-code",
                "JS02031985M",
                "--release-date",
                &release,
            ],
        )
        .await
        .json();
        last = ack["stream_sequence"].as_u64().unwrap();
    }
    let duplicates = |token: &'static str, last: u64| {
        let hub = &hub;
        async move {
            hubctl(
                hub,
                Some(token),
                &[
                    "--json",
                    "identity",
                    "duplicates",
                    "--partnership",
                    "bradford",
                    "--min-sequence",
                    &last.to_string(),
                ],
            )
            .await
        }
    };
    let pairs = duplicates(STEWARD, last).await.json();
    assert_eq!(pairs["pairs"].as_array().unwrap().len(), 1, "{pairs}");
    assert_eq!(
        pairs["pairs"][0]["reason"],
        "same client code, different strong identifiers"
    );
    duplicates(CARAT, last)
        .await
        .refused(1, &["PermissionDenied"]);

    // `identity link` (LinkPeople), a reason too short, then a good one.
    let link = |reason: &'static str| {
        let hub = &hub;
        async move {
            hubctl(
                hub,
                Some(STEWARD),
                &[
                    "--json",
                    "identity",
                    "link",
                    "--partnership",
                    "bradford",
                    "--person-a-nhs-number",
                    "943 476 5919",
                    "--person-b-nhs-number",
                    "401 023 2137",
                    "--reason",
                    reason,
                ],
            )
            .await
        }
    };
    link("short")
        .await
        .refused(1, &["InvalidArgument", "reason"]);
    let linked = link("the same man: the GP confirmed one NHS number was mistyped")
        .await
        .json();
    let seq = linked["stream_sequence"].as_u64().unwrap();
    assert!(duplicates(STEWARD, seq).await.json()["pairs"]
        .as_array()
        .unwrap()
        .is_empty());
    let list = pickups_json(&hub, seq).await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 1, "{list}");

    // Breaking the glass: Leeds' worker must say why.
    let lookup = |reason: &'static str| {
        let hub = &hub;
        async move {
            hubctl(
                hub,
                Some(LEEDS_CARAT),
                &[
                    "--json",
                    "lookup",
                    "--partnership",
                    "bradford",
                    "--nhs-number",
                    "401 023 2137",
                    "--reason",
                    reason,
                ],
            )
            .await
        }
    };
    lookup("").await.refused(1, &["InvalidArgument", "reason"]);
    let why = "arrived at our hostel tonight, no handover yet";
    let found = lookup(why).await.json();
    assert_eq!(found["entry"]["release_date"], release.as_str(), "{found}");
    let audit = hubctl(
        &hub,
        Some(ADMIN),
        &[
            "--json",
            "audit",
            "--break-glass",
            "--partnership",
            "bradford",
        ],
    )
    .await
    .json();
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit}");
    assert_eq!(records[0]["break_glass_reason"], why);
    assert_eq!(records[0]["user_id"], "dev-leeds-carat-1");
    let table = hubctl(
        &hub,
        Some(STEWARD),
        &["audit", "--break-glass", "--partnership", "bradford"],
    )
    .await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains(why), "{}", table.stdout);
}

/// `make run`'s demo, as `deploy/run-local.sh` runs it: every command it
/// sends is accepted (a request id used twice for different commands would
/// be refused and end the demo), a second run that day records nothing
/// new, and the activity projection has a year to show.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_records_everything_once_and_again_nothing() {
    let hub = Hub::start().unwrap();
    let first = hubctl(&hub, Some(ADMIN), &["seed", "demo"]).await;
    assert!(
        first.stdout.contains("events recorded, 0 already there"),
        "{}\n{}",
        first.stdout,
        first.stderr
    );
    let recorded: u64 = first
        .stdout
        .split("events recorded")
        .next()
        .and_then(|s| s.rsplit(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {}", first.stdout));
    assert!(recorded > 500, "{}", first.stdout);
    let again = hubctl(&hub, Some(ADMIN), &["seed", "demo"]).await;
    assert!(
        again
            .stdout
            .contains(&format!(": 0 events recorded, {recorded} already there")),
        "{}\n{}",
        again.stdout,
        again.stderr
    );
    let last = hub.stream_messages().await.to_string();
    let activity = bradford_json(&hub, ADMIN, "activity", &last).await;
    let year = &activity["year"];
    for figure in [
        &year["needle_exchange"]["transactions"],
        &year["custody_advice"]["records"],
        &year["overdose_attendances"]["attendances"],
        &year["naloxone_kits"]["pharmacy"],
    ] {
        assert!(figure.as_u64().unwrap() > 0, "{activity}");
    }
    // Every stage of the continuity funnel has people in it: CARAT workers
    // flag releases in the demo as they triage them. The demo's releases
    // reach 20 days back, so early in April some are last financial year's:
    // the funnel is summed over both years then.
    let today = hub_core::time::london_date(jiff::Timestamp::now());
    let mut years = vec![hub_core::time::FinancialYear::of(today)];
    let earliest = hub_core::time::FinancialYear::of(today - jiff::Span::new().days(21));
    if !years.contains(&earliest) {
        years.push(earliest);
    }
    let mut funnel = std::collections::BTreeMap::<String, u64>::new();
    let mut summaries = Vec::new();
    for fy in years {
        let summary = bradford_json_with(
            &hub,
            ADMIN,
            "pickup-summary",
            &last,
            &["--fy", &fy.to_string()],
        )
        .await;
        for (stage, n) in summary["funnel"].as_object().unwrap() {
            *funnel.entry(stage.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
        summaries.push(summary);
    }
    let released = funnel["released"];
    for stage in [
        "flagged",
        "triaged",
        "appointment_booked",
        "met_at_gate",
        "engaged_within_21_days",
    ] {
        let n = funnel.get(stage).copied().unwrap_or(0);
        assert!(n > 0 && n <= released, "{stage}: {summaries:?}");
    }
}

/// `hubctl --json <what> --partnership bradford --min-sequence <min>` as
/// `token`.
async fn bradford_json(hub: &Hub, token: &str, what: &str, min: &str) -> serde_json::Value {
    bradford_json_with(hub, token, what, min, &[]).await
}

/// [`bradford_json`] with more flags.
async fn bradford_json_with(
    hub: &Hub,
    token: &str,
    what: &str,
    min: &str,
    more: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        "--json",
        what,
        "--partnership",
        "bradford",
        "--min-sequence",
        min,
    ];
    args.extend_from_slice(more);
    hubctl(hub, Some(token), &args).await.json()
}
