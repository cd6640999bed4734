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
/// inputs, captioned tables with header cells, and charts that are images
/// named by their title and described by their description, each with a
/// table of its figures beside it.
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
        (
            "[...document.querySelectorAll('svg')].every(s => s.getAttribute('role') === 'img' \
             && s.getAttribute('aria-labelledby').split(' ').length === 2 \
             && s.getAttribute('aria-labelledby').split(' ').every(id => { const e = document.getElementById(id); \
                  return e && s.contains(e) && e.textContent.trim().length > 0; }) \
             && s.querySelector('title') && s.querySelector('desc'))",
            "a title and a description naming every chart",
        ),
        (
            "[...document.querySelectorAll('figure.chart')].every(f => f.querySelector('svg') && f.querySelector('table tbody tr'))",
            "a table of its figures beside every chart",
        ),
        (
            "[...document.querySelectorAll('[id]')].every(e => document.querySelectorAll('#' + CSS.escape(e.id)).length === 1)",
            "ids used once",
        ),
    ];
    for (js, what) in checks {
        assert_eq!(
            b.eval(js).unwrap(),
            serde_json::Value::Bool(true),
            "{page}: {what}"
        );
    }
}

/// Printed, a page leaves out its navigation and forms, keeps every
/// chart, and fits the width of A4 paper.
fn assert_prints_well(b: &mut Browser, page: &str) {
    b.call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"media": "print"}),
    )
    .unwrap();
    let checks = [
        ("[...document.querySelectorAll('header form, nav, .downloads, a.skip')].every(e => getComputedStyle(e).display === 'none')", "no navigation or forms"),
        ("[...document.querySelectorAll('figure.chart')].every(f => getComputedStyle(f).display !== 'none' && getComputedStyle(f).breakInside === 'avoid')", "charts kept whole"),
        ("getComputedStyle(document.querySelector('header')).backgroundColor === 'rgba(0, 0, 0, 0)'", "no ink-heavy banner"),
    ];
    for (js, what) in checks {
        assert_eq!(
            b.eval(js).unwrap(),
            serde_json::Value::Bool(true),
            "{page} in print: {what}"
        );
    }
    b.call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"media": ""}),
    )
    .unwrap();
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
        // An analyst's overview is the national page: every partnership
        // ranked, each linked, the ranking drawn.
        assert_eq!(b.path().unwrap(), "/national");
        assert_eq!(
            b.eval("document.querySelectorAll('#chart-ranking table a[href^=\"/partnerships/\"]').length")
                .unwrap(),
            149
        );
        assert_accessible(&mut b, "national page");
        assert_prints_well(&mut b, "national page");
        b.screenshot("analyst-national").unwrap();

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
            "From prison to treatment",
            "Harm-reduction activity",
            "Needle exchange: out of hours %",
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
        assert!(
            b.eval("document.querySelectorAll('figure.chart svg').length")
                .unwrap()
                .as_u64()
                .unwrap()
                >= 9,
            "charts of the quarters, the years, the funnel and England"
        );
        assert_prints_well(&mut b, "analyst partnership page");
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

        // The CARAT worker at the same browser, for two partnerships: an
        // overview of both, then the list itself.
        sign_in(&mut b, &base, CARAT);
        assert_eq!(b.path().unwrap(), "/");
        let home = b.text().unwrap();
        assert!(
            home.contains("Your partnerships") && home.contains("Leeds"),
            "{home}"
        );
        assert_accessible(&mut b, "worker's overview");
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

/// The test's identity provider: `tests/oidc/provider.mjs` (the certified
/// `oidc-provider` package) under Node, over HTTPS.
struct IdentityProvider {
    child: std::process::Child,
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl IdentityProvider {
    fn start(
        port: u16,
        ca: &hub_testkit::tls::TestCa,
        dashboard: &str,
        log: &std::path::Path,
    ) -> Self {
        use std::io::BufRead;
        let dir = hub_testkit::workspace_root().join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/oidc's packages are not installed: `make test` installs them (npm ci --prefix tests/oidc)"
        );
        let people = serde_json::json!({
            "carat": {"hub_role": "carat_worker", "hub_org_code": "LEI", "hub_partnerships": ["bradford"]},
        });
        let mut child = std::process::Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_CERT", &ca.server_cert)
            .env("OIDC_KEY", &ca.server_key)
            .env("OIDC_REDIRECT", format!("{dashboard}/auth/callback"))
            .env("OIDC_AFTER_LOGOUT", format!("{dashboard}/login"))
            .env("OIDC_AUDIENCE", AUDIENCE)
            .env("OIDC_PEOPLE", people.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("node runs (Debian's nodejs)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .any(|l| l.is_ok_and(|l| l.starts_with("oidc-provider listening on")));
        // Keep reading what it prints: a closed pipe would stop it (EPIPE).
        std::thread::spawn(move || lines.for_each(drop));
        assert!(
            ready,
            "the identity provider did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        Self { child }
    }
}

/// The hub's audience at the identity provider.
const AUDIENCE: &str = "urn:example:harm-reduction-hub";

#[tokio::test(flavor = "multi_thread")]
async fn people_sign_in_at_the_identity_provider_over_tls_time_out_and_sign_out() {
    let dir = tempfile::Builder::new()
        .prefix("hub-oidc-")
        .tempdir()
        .unwrap();
    let ca = hub_testkit::tls::TestCa::create(&dir.path().join("tls")).unwrap();
    let ports = hub_testkit::free_ports(2).unwrap();
    let issuer = format!("https://localhost:{}", ports[0]);
    let base = format!("https://localhost:{}", ports[1]);
    let _provider = IdentityProvider::start(ports[0], &ca, &base, &dir.path().join("oidc.log"));
    let oidc = vec![
        ("HUB_OIDC_ISSUER".to_string(), issuer.clone()),
        ("HUB_OIDC_AUDIENCE".into(), AUDIENCE.into()),
        ("HUB_OIDC_JWKS_URL".into(), format!("{issuer}/jwks")),
        ("HUB_TLS_CA_FILE".into(), ca.ca.display().to_string()),
    ];
    let hub = Hub::start_on(hub_testkit::NatsServer::start().unwrap(), |_| oidc.clone()).unwrap();
    let seq = release(
        &hub,
        person("A1234BC", "Jolene", "Featherstonehaugh"),
        3,
        true,
    )
    .await;
    assert!(settled_status(&hub.pickup).await.applied_sequence >= seq);
    let mut env = hub.env.clone();
    env.extend(ca.env(false));
    env.extend(oidc.clone());
    env.extend([
        ("HUB_LISTEN".to_string(), format!("127.0.0.1:{}", ports[1])),
        (
            "HUB_PICKUP_PROJECTION_ADDR".into(),
            hub.pickup.addr().to_string(),
        ),
        (
            "HUB_TRAINING_PROJECTION_ADDR".into(),
            hub.training.addr().to_string(),
        ),
        (
            "HUB_DASHBOARD_OIDC_CLIENT_ID".into(),
            "hub-dashboard".into(),
        ),
        (
            "HUB_DASHBOARD_OIDC_REDIRECT_URL".into(),
            format!("{base}/auth/callback"),
        ),
        ("HUB_DASHBOARD_SESSION_IDLE".into(), "4s".into()),
    ]);
    let logs = || {
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        format!(
            "dashboard:\n{}\nprovider:\n{}",
            read("dashboard.log"),
            read("oidc.log")
        )
    };
    let _dash =
        hub_testkit::HubProcess::start("dashboard", &env, &dir.path().join("dashboard.log"))
            .expect("the dashboard starts with the identity provider");
    let mut b = tokio::task::block_in_place(|| Browser::start(1280, 900)).unwrap();

    tokio::task::block_in_place(|| {
        // The test's CA is not the browser's: accept its certificates.
        b.call(
            "Security.setIgnoreCertificateErrors",
            serde_json::json!({"ignore": true}),
        )
        .unwrap();
        let at_provider_login = "location.origin === '{issuer}' && document.querySelector('input[name=login]') !== null"
            .replace("{issuer}", &issuer);
        let back_home = format!(
            "location.origin === '{base}' && location.pathname === '/partnerships/bradford' && document.readyState === 'complete'"
        );
        let wait = Duration::from_secs(20);

        // Sign in at the provider: the dashboard's sign-in page offers it.
        b.goto(&format!("{base}/login")).unwrap();
        assert!(b
            .text()
            .unwrap()
            .contains("Sign in with your organisation's account"));
        b.eval("document.querySelector('a[href=\"/auth/start\"]').click()")
            .unwrap();
        b.wait_for(&at_provider_login, wait)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
        b.screenshot("oidc-provider-sign-in").unwrap();
        b.eval(
            "document.querySelector('input[name=login]').value = 'carat';\
             document.querySelector('input[name=password]').value = 'any';\
             document.querySelector('button[type=submit]').click()",
        )
        .unwrap();
        b.wait_for(&back_home, wait)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
        let text = b.text().unwrap();
        assert!(text.contains("Signed in as carat"), "{text}");
        assert!(text.contains("carat_worker"), "{text}");
        let cookies = b.cookies().unwrap();
        let session = cookies
            .iter()
            .find(|c| c["name"] == "hub_session")
            .expect("a session cookie");
        assert_eq!(
            (
                &session["secure"],
                &session["httpOnly"],
                &session["sameSite"]
            ),
            (
                &serde_json::json!(true),
                &serde_json::json!(true),
                &serde_json::json!("Strict")
            )
        );
        // The pick-up list, read with the provider's access token.
        b.goto(&format!("{base}/partnerships/bradford/pickups"))
            .unwrap();
        b.wait_for("document.body.innerText.includes('Jolene')", wait)
            .unwrap();
        b.screenshot("oidc-signed-in").unwrap();

        // Idle past the session's limit: signed out, back at the sign-in page.
        std::thread::sleep(Duration::from_secs(5));
        let lands_on_login = format!(
            "location.origin === '{base}' && location.pathname === '/login' && document.readyState === 'complete'"
        );
        b.call(
            "Page.navigate",
            serde_json::json!({"url": format!("{base}/")}),
        )
        .unwrap();
        b.wait_for(&lands_on_login, wait).unwrap();
        // The provider still knows the person: signing in again asks nothing.
        b.eval("document.querySelector('a[href=\"/auth/start\"]').click()")
            .unwrap();
        b.wait_for(&back_home, wait).unwrap();

        // Signing out ends the dashboard's session and the provider's.
        b.eval("document.querySelector('form[action=\"/logout\"] button').click()")
            .unwrap();
        b.wait_for(
            &format!("location.origin === '{issuer}' && document.querySelector('button[name=logout][value=yes]') !== null"),
            wait,
        )
        .unwrap();
        b.eval("document.querySelector('button[name=logout][value=yes]').click()")
            .unwrap();
        b.wait_for(&lands_on_login, wait).unwrap();
        // The session is gone from the dashboard: a new page (without the
        // old one's marker), and it is the sign-in page.
        b.eval("window.__before = true").unwrap();
        b.call(
            "Page.navigate",
            serde_json::json!({"url": format!("{base}/partnerships/bradford")}),
        )
        .unwrap();
        b.wait_for(&format!("!window.__before && {lands_on_login}"), wait)
            .unwrap();
        b.eval("document.querySelector('a[href=\"/auth/start\"]').click()")
            .unwrap();
        b.wait_for(&at_provider_login, wait).unwrap();
    });
}
