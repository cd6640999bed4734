//! The dashboard in a real browser (Debian's headless Chromium): a
//! partnership analyst and a CARAT worker each sign in with the keyboard,
//! and the test checks what each may and may not see. Screenshots are left
//! in `target/browser-artifacts/` for a person to look at.

use std::time::Duration;

use hub_proto::{
    common::{ConsentPurpose, PersonRef},
    prison::{RecordConsentRequest, RecordReleaseDateRequest},
};
use hub_testkit::browser::{is_png, Browser};
use hub_tests::*;

fn person(number: &str, given: &str, family: &str) -> Option<PersonRef> {
    Some(PersonRef {
        prison_number: number.into(),
        given_name: given.into(),
        family_name: family.into(),
        ..Default::default()
    })
}

/// A release `days` ahead, with consent given or not; returns the sequence.
async fn release(hub: &Hub, p: Option<PersonRef>, days: i64, consent: bool) -> u64 {
    let mut prison = hub.prison().await;
    if consent {
        prison
            .record_consent(authed(
                RecordConsentRequest {
                    request_id: request_id("b"),
                    partnership_code: "bradford".into(),
                    occurred_at: Some(now()),
                    person: p.clone(),
                    purpose: ConsentPurpose::GatePickup as i32,
                    given: true,
                },
                CARAT,
            ))
            .await
            .unwrap();
    }
    prison
        .record_release_date(authed(
            RecordReleaseDateRequest {
                request_id: request_id("b"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: p,
                release_date: london_day(days),
            },
            CARAT,
        ))
        .await
        .unwrap()
        .into_inner()
        .stream_sequence
}

/// Signs in through the form with the keyboard only (Tab, type, Enter).
fn sign_in(b: &mut Browser, base: &str, token: &str) {
    b.sign_in(base, token)
        .unwrap_or_else(|e| panic!("signing in as {token}: {e:#}"));
}

/// Accessibility basics every page keeps: a language, one h1, labelled
/// inputs, captioned tables with header cells.
fn assert_accessible(b: &mut Browser, page: &str) {
    let checks = [
        ("document.documentElement.lang.startsWith('en')", "a language"),
        ("document.querySelectorAll('h1').length === 1", "one h1"),
        (
            "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')].every(i => i.labels && i.labels.length > 0)",
            "a label on every input",
        ),
        (
            "[...document.querySelectorAll('table')].every(t => t.caption && t.caption.textContent.trim() && t.querySelector('th'))",
            "a caption and header cells on every table",
        ),
        ("document.querySelector('a.skip[href=\"#main\"]') !== null", "a skip link"),
    ];
    for (js, what) in checks {
        assert_eq!(
            b.eval(js).unwrap(),
            serde_json::Value::Bool(true),
            "{page}: {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_and_a_carat_worker_see_what_their_roles_allow() {
    let hub = Hub::start().unwrap();
    release(
        &hub,
        person("A1234BC", "Jolene", "Featherstonehaugh"),
        3,
        true,
    )
    .await;
    release(&hub, person("B2345CD", "Bartholomew", "Quigley"), 5, false).await;
    let last = train(&hub, 9, 1).await;
    for p in [&hub.pickup, &hub.training] {
        assert!(settled_status(p).await.applied_sequence >= last);
    }
    let dash = hub.dashboard();
    let base = format!("http://{}", dash.addr());
    let mut b = tokio::task::block_in_place(|| Browser::start(1280, 900)).unwrap();

    tokio::task::block_in_place(|| {
        // The analyst: figures, never people.
        sign_in(&mut b, &base, ANALYST);
        let cookies = b.cookies().unwrap();
        let token_cookie = cookies
            .iter()
            .find(|c| c["name"] == "hub_session")
            .expect("a session cookie");
        assert!(
            !token_cookie["value"].as_str().unwrap().contains(ANALYST),
            "the browser holds a session id, never the token"
        );
        assert_eq!(token_cookie["httpOnly"], true);
        assert_eq!(token_cookie["sameSite"], "Strict");
        assert_eq!(
            b.eval("document.cookie").unwrap(),
            "",
            "scripts cannot read the token"
        );
        // One partnership: the home page goes straight to it.
        assert_eq!(b.path().unwrap(), "/partnerships/bradford");

        b.goto(&format!("{base}/partnerships/bradford")).unwrap();
        b.wait_for(
            "document.querySelector('table') !== null",
            Duration::from_secs(10),
        )
        .unwrap();
        let text = b.text().unwrap();
        for shown in [
            "Overdose training",
            "Criterion 7",
            "Criterion 10",
            "Continuity of care",
        ] {
            assert!(
                text.contains(shown),
                "analyst page lacks {shown:?}:\n{text}"
            );
        }
        assert!(
            text.contains("withheld"),
            "one carer trained is withheld from an analyst:\n{text}"
        );
        assert!(text.contains('9'), "nine service users are shown:\n{text}");
        for hidden in ["Jolene", "Featherstonehaugh", "Bartholomew", "A1234BC"] {
            assert!(!text.contains(hidden), "analyst sees {hidden}:\n{text}");
        }
        assert_accessible(&mut b, "analyst partnership page");
        let shot = b.screenshot("analyst-partnership").unwrap();
        assert!(is_png(&shot));

        b.goto(&format!("{base}/partnerships/bradford/pickups"))
            .unwrap();
        let refused = b.text().unwrap();
        assert!(
            refused.contains("may not see the pick-up list"),
            "{refused}"
        );
        assert!(
            !refused.contains("Jolene") && !refused.contains("Quigley"),
            "{refused}"
        );
        b.screenshot("analyst-pickups-refused").unwrap();

        // The CARAT worker at the same browser: the list itself.
        sign_in(&mut b, &base, CARAT);
        b.goto(&format!("{base}/partnerships/bradford/pickups"))
            .unwrap();
        b.wait_for(
            "document.querySelectorAll('tbody tr').length === 2",
            Duration::from_secs(10),
        )
        .unwrap();
        let list = b.text().unwrap();
        assert!(
            list.contains("Jolene Featherstonehaugh"),
            "consent given: named\n{list}"
        );
        assert!(
            !list.contains("Bartholomew") && !list.contains("Quigley"),
            "no consent: no name\n{list}"
        );
        assert!(list.contains("no consent"), "{list}");
        // Soonest first, and rows with alerts highlighted.
        let dates = b
            .eval("[...document.querySelectorAll('tbody tr td:first-child')].map(td => td.textContent)")
            .unwrap();
        assert_eq!(dates, serde_json::json!([london_day(3), london_day(5)]));
        assert_eq!(
            b.eval("document.querySelectorAll('tbody tr.alert').length")
                .unwrap(),
            2,
            "both are days away with no gate worker: highlighted"
        );
        assert_eq!(
            b.eval("getComputedStyle(document.querySelector('tbody tr.alert')).backgroundColor !== getComputedStyle(document.body).backgroundColor").unwrap(),
            true,
            "highlighted rows look different"
        );
        assert_accessible(&mut b, "pick-up list");
        b.screenshot("carat-pickups").unwrap();

        // Live: a release recorded elsewhere appears without touching the page.
        std::thread::sleep(Duration::from_millis(2500)); // past the page's start-up window
    });
    release(&hub, person("C3456DE", "Ceridwen", "Ap-Rhys"), 1, true).await;
    tokio::task::block_in_place(|| {
        b.wait_for(
            "document.body.innerText.includes('Ceridwen Ap-Rhys')",
            Duration::from_secs(15),
        )
        .unwrap();
        let dates = b
            .eval("[...document.querySelectorAll('tbody tr td:first-child')].map(td => td.textContent)")
            .unwrap();
        assert_eq!(
            dates,
            serde_json::json!([london_day(1), london_day(3), london_day(5)]),
            "the new release goes to the top"
        );
        b.screenshot("carat-pickups-live").unwrap();
    });
}
