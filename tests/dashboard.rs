//! The dashboard over real HTTP, on top of real projections: the JSON
//! endpoints with the contract's fields and suppression, sign-in with an
//! HttpOnly cookie, the page, health and metrics.

use hub_proto::common::PersonRef;
use hub_testkit::http;
use hub_tests::*;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn json_endpoints_carry_the_contract_fields_and_withhold_small_counts() {
    let hub = Hub::start().unwrap();
    let last = train(&hub, 8, 1).await;
    settled_status(&hub.training).await;
    assert!(settled_status(&hub.training).await.applied_sequence >= last);
    let dash = hub.dashboard();
    let bearer = |t: &str| format!("Bearer {t}");

    let r = http(dash.addr(), "GET", "/healthz", &[], None).unwrap();
    assert_eq!(r.status, 200);

    let analyst = bearer(ANALYST);
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/training",
        &[("Authorization", &analyst)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let t = json(&r.body);
    assert_eq!(t["service_users_trained"], 8);
    assert_eq!(t["carers_trained"], 0, "1 carer is withheld");
    assert!(t["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "carers_trained"));
    assert_eq!(t["quarters"].as_array().unwrap().len(), 4);
    for field in [
        "custody_officers_trained_pct",
        "paramedic_headcount",
        "naloxone_kits_supplied",
        "financial_year",
        "applied_sequence",
    ] {
        assert!(t.get(field).is_some(), "{field} in {t}");
    }
    // An admin sees the carer.
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/training",
        &[("Authorization", &bearer(ADMIN))],
        None,
    )
    .unwrap();
    assert_eq!(json(&r.body)["carers_trained"], 1);

    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/pickup-summary?fy=2026-27",
        &[("Authorization", &analyst)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let s = json(&r.body);
    assert_eq!(s["financial_year"], "2026-27");
    for field in [
        "by_status",
        "by_alert",
        "released",
        "engaged_within_21_days",
        "suppressed",
        "applied_sequence",
    ] {
        assert!(s.get(field).is_some(), "{field} in {s}");
    }

    // The activity projection's figures, as JSON and as CSV; every reply
    // also as CSV, withheld cells marked.
    assert!(settled_status(&hub.activity).await.applied_sequence >= last);
    let get = |path: &str, token: &str| {
        http(
            dash.addr(),
            "GET",
            path,
            &[("Authorization", &bearer(token))],
            None,
        )
        .unwrap()
    };
    let r = get("/api/partnerships/bradford/activity", ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    let a = json(&r.body);
    assert_eq!(a["year"]["naloxone_kits"]["training"], 9, "{a}");
    assert_eq!(a["quarters"].as_array().unwrap().len(), 4, "{a}");
    let fy = a["financial_year"].as_str().unwrap().to_string();
    let r = get("/api/partnerships/bradford/activity?format=csv", ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains(&format!("bradford-activity-{fy}.csv")));
    assert!(r
        .body
        .starts_with("partnership_code,financial_year,figure,label,year,q1,q2,q3,q4\r\n"));
    let kits = format!("bradford,{fy},naloxone_kits.training,Naloxone kits: with training,9,");
    assert!(r.body.contains(&kits), "{}", r.body);
    let r = get("/api/partnerships/bradford/training?format=csv", ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    for line in [
        format!("bradford,{fy},service_users_trained,8,"),
        format!("bradford,{fy},carers_trained,withheld,"),
    ] {
        assert!(r.body.contains(&line), "{line} in {}", r.body);
    }
    let r = get(
        "/api/partnerships/bradford/pickup-summary?format=csv",
        ANALYST,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .starts_with("partnership_code,financial_year,figure,value\r\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains(",by_status.SCHEDULED,"), "{}", r.body);
    let r = get("/api/partnerships/bradford/activity?format=xml", ANALYST);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("format"), "{}", r.body);
    let r = get("/api/partnerships/leeds/activity?format=csv", ANALYST);
    assert_eq!(r.status, 403, "{}", r.body);

    // The national comparison: every partnership beside England, as JSON
    // and as CSV, small counts withheld from the analyst in every row.
    let r = get(&format!("/api/national?fy={fy}"), ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    let n = json(&r.body);
    let rows = n["partnerships"].as_array().unwrap();
    assert_eq!(rows.len(), 149, "the whole register");
    let bradford = rows
        .iter()
        .find(|r| r["partnership_code"] == "bradford")
        .unwrap();
    assert_eq!(bradford["service_users_trained"], 8, "{bradford}");
    assert_eq!(bradford["carers_trained"], 0, "1 carer is withheld");
    assert!(bradford["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "carers_trained"));
    assert_eq!(n["england"]["carers_trained"], 1, "England is not withheld");
    assert!(n["spread"].as_array().unwrap().len() >= 20);
    let r = get(&format!("/api/national?fy={fy}&format=csv"), ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains(&format!("national-{fy}.csv")));
    assert!(r.body.starts_with("row,partnership_code,partnership_name,"));
    let line = r
        .body
        .lines()
        .find(|l| l.starts_with("partnership,bradford,Bradford,"))
        .expect("Bradford's line");
    assert!(line.contains("withheld"), "{line}");
    assert!(r.body.contains("\r\nengland,england,England,"));
    assert_eq!(get("/api/national", CARAT).status, 403);

    // Refusals, as HTTP.
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/training",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/training",
        &[("Authorization", &bearer(PHARMACIST))],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/leeds/training",
        &[("Authorization", &analyst)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 403, "the analyst's token is for bradford only");
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/atlantis/training",
        &[("Authorization", &bearer(ADMIN))],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/training?fy=2026",
        &[("Authorization", &analyst)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 400);

    let metrics = http(dash.addr(), "GET", "/metrics", &[], None)
        .unwrap()
        .body;
    assert!(metrics.contains("hub_http_requests_total"), "{metrics}");
}

/// Every chart of a page is an image with a title and a description it
/// is named by, and a table of its figures beside it.
fn assert_charts_accessible(body: &str) -> usize {
    let charts = body.matches("<figure class=\"chart\"").count();
    assert_eq!(body.matches("role=\"img\"").count(), charts, "{body}");
    for id in body
        .split("<figure class=\"chart\" id=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
    {
        for part in [
            format!("aria-labelledby=\"{id}-title {id}-desc\""),
            format!("<title id=\"{id}-title\">"),
            format!("<desc id=\"{id}-desc\">"),
        ] {
            assert!(body.contains(&part), "{part} for {id}");
        }
        let figure = &body[body.find(&format!("id=\"{id}\"")).unwrap()..];
        let figure = &figure[..figure.find("</figure>").unwrap()];
        assert!(
            figure.contains("<table><caption>Figures of the chart: "),
            "a table beside {id}"
        );
    }
    charts
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_give_an_overview_with_charts_and_rank_every_partnership() {
    let hub = Hub::start().unwrap();
    let last = train(&hub, 8, 1).await;
    for p in [&hub.training, &hub.activity] {
        assert!(settled_status(p).await.applied_sequence >= last);
    }
    let dash = hub.dashboard();
    let get = |path: &str, token: &str| {
        http(
            dash.addr(),
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .unwrap()
    };
    let fy = hub_core::time::FinancialYear::of(hub_core::time::london_today());

    // The analyst's overview: every partnership of the register, ranked.
    assert_eq!(get("/", ANALYST).header("location"), Some("/national"));
    let r = get("/national", ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<h1>England's partnerships</h1>"));
    assert!(r.body.contains(&format!(
        "<title id=\"chart-ranking-title\">Partnerships ranked on needle exchange: transactions, {fy}</title>"
    )));
    let links = r.body.matches("<a href=\"/partnerships/").count();
    assert_eq!(links, 149, "each partnership linked from the ranking");
    assert!(r
        .body
        .contains(&format!("href=\"/api/national?fy={fy}&amp;format=csv\"")));
    assert_eq!(assert_charts_accessible(&r.body), 1);
    // Ranked on carers trained: Bradford's one carer is withheld, in the
    // table and in the drawing, and England's total is not.
    let r = get(&format!("/national?fy={fy}&figure=carers_trained"), ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&format!(
        "<a href=\"/partnerships/bradford?fy={fy}\">Bradford</a></th><td class=\"withheld\">withheld</td>"
    )), "{}", r.body);
    assert!(
        r.body
            .contains("<strong>Trained: carers</strong> (ranked below)</th><td>1</td>"),
        "{}",
        r.body
    );
    let r = get("/national?figure=carers", ANALYST);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("figure: must be one of"), "{}", r.body);
    let r = get("/national?fy=2026", ANALYST);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("fy: "), "{}", r.body);
    assert_eq!(get("/national", CARAT).status, 403);

    // The analyst's partnership: charts of the quarters, the years, the
    // funnel, and the partnership against England; CSV beside each table.
    let r = get("/partnerships/bradford", ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    for id in [
        "chart-trained",
        "chart-funnel",
        "chart-activity-0",
        "chart-years-0",
        "chart-england",
    ] {
        assert!(r.body.contains(&format!("id=\"{id}\"")), "{id} on the page");
    }
    assert!(assert_charts_accessible(&r.body) >= 9);
    for api in ["training", "pickup-summary", "activity"] {
        let link = format!("href=\"/api/partnerships/bradford/{api}?fy={fy}&amp;format=csv\"");
        assert!(r.body.contains(&link), "{link}");
    }
    assert!(!r.body.contains("<script"), "no script");
    // Next year has not begun: no bars, and no 0s, in its charts.
    let next = hub_core::time::FinancialYear {
        start_year: fy.start_year + 1,
    };
    let r = get(&format!("/partnerships/bradford?fy={next}"), ANALYST);
    assert_eq!(r.status, 200, "{}", r.body);
    let trained = &r.body[r.body.find("id=\"chart-trained\"").unwrap()..];
    let trained = &trained[..trained.find("</figure>").unwrap()];
    assert!(!trained.contains("<rect"), "{trained}");
    assert_eq!(trained.matches(">not yet begun</td>").count(), 4);
    assert!(trained.contains("No figures to show; 4 not yet begun."));

    // A CARAT worker for two partnerships: each one's list at a glance.
    let r = get("/", CARAT);
    assert_eq!(r.status, 200, "{}", r.body);
    for text in [
        "<h1>Your partnerships</h1>",
        "<h2 id=\"h-bradford\">Bradford</h2>",
        "<h2 id=\"h-leeds\">Leeds</h2>",
        "href=\"/partnerships/leeds/pickups\"",
        "Prison-gate pick-up list now, by status and alert",
    ] {
        assert!(r.body.contains(text), "{text} in {}", r.body);
    }
    // One partnership: straight to it.
    assert_eq!(
        get("/", LEEDS_CARAT).header("location"),
        Some("/partnerships/leeds")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_keeps_a_server_side_session_and_shows_the_page() {
    let hub = Hub::start().unwrap();
    train(&hub, 8, 1).await;
    settled_status(&hub.training).await;
    let dash = hub.dashboard();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    let r = http(dash.addr(), "GET", "/", &[], None).unwrap();
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let r = http(dash.addr(), "GET", "/login", &[], None).unwrap();
    assert!(r.body.contains("<label for=\"token\">"), "{}", r.body);

    // Without the form's CSRF token (a cross-site post), nothing happens.
    let r = http(
        dash.addr(),
        "POST",
        "/login",
        &form,
        Some(&format!("token={ANALYST}")),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r, "hub_session").is_none());

    let r = dashboard_sign_in(dash.addr(), "not-a-token-at-all-123");
    assert_eq!(r.status, 401);
    assert!(set_cookie(&r, "hub_session").is_none());

    let r = dashboard_sign_in(dash.addr(), ANALYST);
    assert_eq!(r.status, 303);
    let cookie = r
        .headers
        .iter()
        .find(|h| {
            h.to_ascii_lowercase()
                .starts_with("set-cookie: hub_session=")
        })
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(ANALYST),
        "the cookie holds no token: {cookie}"
    );
    let session = set_cookie(&r, "hub_session").unwrap();

    // An analyst's overview is the national page.
    let r = http(dash.addr(), "GET", "/", &[("Cookie", &session)], None).unwrap();
    assert_eq!((r.status, r.header("location")), (303, Some("/national")));
    let r = http(
        dash.addr(),
        "GET",
        "/partnerships/bradford",
        &[("Cookie", &session)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    for text in [
        "<h1>Bradford</h1>",
        "Overdose training",
        "withheld",
        "Continuity of care",
        "Criterion 9: action to reduce drug-related deaths",
        "lang=\"en-GB\"",
    ] {
        assert!(r.body.contains(text), "{text} missing from the page");
    }
    assert!(!r.body.contains("<script"), "no script");
    // Nothing cached, no framing, no script but the dashboard's own.
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let csp = r.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'sha256-",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    let script_src = csp
        .split(';')
        .find(|p| p.trim().starts_with("script-src"))
        .unwrap();
    assert!(!script_src.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let csrf = csrf_of(&r.body);
    // The JSON takes the session too.
    let r = http(
        dash.addr(),
        "GET",
        "/api/partnerships/bradford/training",
        &[("Cookie", &session)],
        None,
    )
    .unwrap();
    assert_eq!(json(&r.body)["service_users_trained"], 8);

    // Signing out needs the session's CSRF token; then the session is
    // gone on the server, so the old cookie is worth nothing.
    let logout = |body: String| {
        http(
            dash.addr(),
            "POST",
            "/logout",
            &[
                ("Cookie", &session),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(&body),
        )
        .unwrap()
    };
    assert_eq!(logout("csrf=forged".into()).status, 403);
    let still = http(dash.addr(), "GET", "/", &[("Cookie", &session)], None).unwrap();
    assert_eq!(still.header("location"), Some("/national"));
    let r = logout(format!("csrf={csrf}"));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = http(dash.addr(), "GET", "/", &[("Cookie", &session)], None).unwrap();
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_time_out_and_failed_sign_ins_are_limited() {
    let hub = Hub::start().unwrap();
    let mut env = hub.env.clone();
    env.push(("HUB_DASHBOARD_SESSION_IDLE".into(), "2s".into()));
    env.push((
        "HUB_PICKUP_PROJECTION_ADDR".into(),
        hub.pickup.addr().to_string(),
    ));
    let dash = hub_testkit::HubProcess::start("dashboard", &env, &hub.dir.path().join("dash.log"))
        .unwrap();
    let session = set_cookie(&dashboard_sign_in(dash.addr(), ANALYST), "hub_session").unwrap();
    let home = || http(dash.addr(), "GET", "/", &[("Cookie", &session)], None).unwrap();
    assert_eq!(home().header("location"), Some("/national"));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(home().header("location"), Some("/login"), "idle too long");

    // Five wrong tokens from one address, then even the right one waits.
    for _ in 0..5 {
        assert_eq!(
            dashboard_sign_in(dash.addr(), "a-wrong-token-123456").status,
            401
        );
    }
    let r = dashboard_sign_in(dash.addr(), ANALYST);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert!(set_cookie(&r, "hub_session").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_see_the_live_pick_up_list_with_names_only_under_consent() {
    use hub_proto::prison::{
        prison_service_client::PrisonServiceClient, RecordConsentRequest, RecordReleaseDateRequest,
    };
    use std::io::{Read, Write};
    let hub = Hub::start().unwrap();
    let mut prison = PrisonServiceClient::new(Hub::channel(&hub.prison).await);
    for (number, name, days, consent) in [
        ("R1111RR", "Robin", 3, true),
        ("S2222SS", "Sasha", 5, false),
    ] {
        let person = PersonRef {
            prison_number: number.into(),
            given_name: name.into(),
            family_name: "Ashby".into(),
            ..Default::default()
        };
        prison
            .record_release_date(authed(
                RecordReleaseDateRequest {
                    request_id: request_id("w"),
                    partnership_code: "bradford".into(),
                    occurred_at: Some(now()),
                    prison_code: "LEI".into(),
                    person: Some(person),
                    release_date: london_day(days),
                },
                CARAT,
            ))
            .await
            .unwrap();
        if consent {
            prison
                .record_consent(authed(
                    RecordConsentRequest {
                        request_id: request_id("w"),
                        partnership_code: "bradford".into(),
                        occurred_at: Some(now()),
                        person: Some(PersonRef {
                            prison_number: number.into(),
                            ..Default::default()
                        }),
                        purpose: 1,
                        given: true,
                    },
                    CARAT,
                ))
                .await
                .unwrap();
        }
    }
    settled_status(&hub.pickup).await;
    let dash = hub.dashboard();
    let carat = format!("Bearer {CARAT}");
    let r = http(
        dash.addr(),
        "GET",
        "/partnerships/bradford/pickups",
        &[("Authorization", &carat)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Robin Ashby"),
        "consent given: the name shows"
    );
    assert!(!r.body.contains("Sasha"), "no consent: no name");
    assert!(r.body.contains("no consent"));
    assert!(
        r.body.contains("class=\"alert\""),
        "releases within 7 days with gaps are highlighted"
    );
    let first = r.body.find(&london_day(3)).unwrap();
    assert!(
        first < r.body.find(&london_day(5)).unwrap(),
        "soonest first"
    );
    let r = http(
        dash.addr(),
        "GET",
        "/partnerships/bradford/pickups",
        &[("Authorization", &format!("Bearer {ANALYST}"))],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 403);

    // The live feed: server-sent events, starting with the current list.
    let mut stream = std::net::TcpStream::connect(dash.addr()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /api/partnerships/bradford/pickups/events HTTP/1.1\r\nHost: x\r\nAuthorization: {carat}\r\n\r\n").unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("event: entry") && seen.matches("\"person_key\"").count() >= 2) {
        let n = stream.read(&mut buf).expect("events within 10 s");
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    assert!(seen.contains("Robin Ashby") && !seen.contains("Sasha"));
}

/// Stopping does not wait on long-lived streams: a dashboard with a live
/// page open, then a pick-up projection with a watcher connected, each
/// exit within a second of SIGTERM (their drains allow 5 and 10 s), and
/// the streams end with a word to reconnect rather than being cut.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_a_projection_stop_within_a_second_with_live_streams_open() {
    use hub_proto::prison::{prison_service_client::PrisonServiceClient, RecordReleaseDateRequest};
    use hub_proto::projections::pickup_list_service_client::PickupListServiceClient;
    use std::io::{Read, Write};
    let mut hub = Hub::start().unwrap();
    PrisonServiceClient::new(Hub::channel(&hub.prison).await)
        .record_release_date(authed(
            RecordReleaseDateRequest {
                request_id: request_id("stop"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: Some(PersonRef {
                    prison_number: "T1111TT".into(),
                    ..Default::default()
                }),
                release_date: london_day(3),
            },
            CARAT,
        ))
        .await
        .unwrap();
    settled_status(&hub.pickup).await;
    let mut dash = hub.dashboard();
    // A live page, open and receiving.
    let mut page = std::net::TcpStream::connect(dash.addr()).unwrap();
    page.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(page, "GET /api/partnerships/bradford/pickups/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CARAT}\r\n\r\n").unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: entry") {
        let n = page.read(&mut buf).expect("the first entry within 10 s");
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // A watcher straight on the projection, with its first entry read.
    let mut watch = watch_bradford(
        &mut PickupListServiceClient::new(Hub::channel(&hub.pickup).await),
        CARAT,
    )
    .await;
    assert!(watch.message().await.unwrap().is_some());

    let started = std::time::Instant::now();
    let status = dash.terminate().unwrap();
    let dashboard_took = started.elapsed();
    assert!(status.success(), "{status:?}");
    // The page's stream ended (the browser's EventSource reconnects).
    let mut rest = Vec::new();
    let _ = page.read_to_end(&mut rest);

    let started = std::time::Instant::now();
    let status = hub.pickup.terminate().unwrap();
    let projection_took = started.elapsed();
    assert!(status.success(), "{status:?}");
    let ended = watch.message().await;
    println!("stopped in {dashboard_took:?} (dashboard), {projection_took:?} (pickup-projection)");
    assert!(
        dashboard_took < std::time::Duration::from_secs(1),
        "the dashboard took {dashboard_took:?} to stop with a live page open"
    );
    assert!(
        projection_took < std::time::Duration::from_secs(1),
        "pickup-projection took {projection_took:?} to stop with a watcher connected"
    );
    let status = ended.expect_err("the watch ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("stopping"), "{status:?}");
}
