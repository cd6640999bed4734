//! Secure by default (contract sections 1, 4 and 6): the hub secret is
//! never made up by a service; tokens kept as digests, reloaded on SIGHUP,
//! or issued by an identity provider; TLS and mutual TLS on every
//! listener, hubctl and the dashboard calling https://; no plaintext
//! listener off loopback unless allowed.

use std::path::Path;

use hub_proto::{
    prison::prison_service_client::PrisonServiceClient,
    projections::pickup_list_service_client::PickupListServiceClient,
};
use hub_testkit::{
    jwt::{claims, jwks, now, TestKey},
    tls::TestCa,
    workspace_root, HubProcess, NatsServer,
};
use hub_tests::{commands::release_date, *};
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code,
};

/// `name` on `nats` with `extra` settings; `Err` holds its log when it
/// did not start.
fn start(
    dir: &Path,
    nats: &NatsServer,
    name: &str,
    extra: &[(impl AsRef<str>, String)],
) -> anyhow::Result<HubProcess> {
    let mut env = base_env(dir, &nats.url());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.clone())),
    );
    start_process(dir, &env, name)
}

/// The key service, which agency services ask for new data keys.
fn key_service(dir: &Path, nats: &NatsServer) -> HubProcess {
    start(dir, nats, "key-service", &[] as &[(&str, String)]).unwrap()
}

/// The development tokens, each kept as its digest: what a service off
/// loopback takes.
fn digest_tokens(dir: &Path) -> String {
    let path = workspace_root().join("seeds/dev-tokens.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for entry in file["tokens"].as_array_mut().unwrap() {
        let token = entry["token"].as_str().unwrap().to_string();
        let entry = entry.as_object_mut().unwrap();
        entry.remove("token");
        entry.insert("token_sha256".into(), sha256_hex(&token).into());
    }
    let out = dir.join("digest-tokens.json");
    std::fs::write(&out, file.to_string()).unwrap();
    out.display().to_string()
}

fn refused_to_start(result: anyhow::Result<HubProcess>, says: &[&str]) {
    match result {
        Ok(p) => panic!("{} started, but should have refused", p.name()),
        Err(e) => {
            let log = e.to_string();
            for s in says {
                assert!(log.contains(s), "expected {s:?} in:\n{log}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_never_makes_up_a_secret_and_only_those_that_need_one_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mounted/hub.secret");
    let secret = |p: &Path| vec![("HUB_SECRET_FILE", p.display().to_string())];

    for name in ["prison-service", "identity-service", "pickup-projection"] {
        refused_to_start(
            start(dir.path(), &nats, name, &secret(&missing)),
            &["HUB_SECRET_FILE", "does not exist"],
        );
    }
    assert!(!missing.exists(), "no service created a secret");

    let loose = dir.path().join("loose.secret");
    std::fs::write(&loose, [9u8; 32]).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o640)).unwrap();
    refused_to_start(
        start(dir.path(), &nats, "custody-service", &secret(&loose)),
        &["HUB_SECRET_FILE", "readable by other users"],
    );

    // The training projection and the dashboard hold no personal data and
    // never read the secret: they start without one.
    let training = start(dir.path(), &nats, "training-projection", &secret(&missing)).unwrap();
    let dashboard = start(dir.path(), &nats, "dashboard", &secret(&missing)).unwrap();
    assert!(!missing.exists());
    drop((training, dashboard));

    // hubctl makes one, mode 0600, and never replaces it.
    let made = dir.path().join("new/hub.secret");
    let first = run(command(
        &nats.url(),
        &["secret", "create", made.to_str().unwrap()],
    ))
    .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&made).unwrap();
    let again = run(command(
        &nats.url(),
        &["secret", "create", made.to_str().unwrap()],
    ))
    .await;
    again.refused(1, &["already exists"]);
    assert_eq!(std::fs::read(&made).unwrap(), bytes);
    start(dir.path(), &nats, "prison-service", &secret(&made)).unwrap();
}

const HASHED_CARAT: &str = "a-carat-token-kept-only-as-a-digest";

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn carat_entry(token_field: &str) -> String {
    format!(
        r#"{{{token_field}, "user_id": "u-carat", "role": "carat_worker", "org_code": "LEI", "partnerships": ["bradford"]}}"#
    )
}

async fn release(prison: &HubProcess, token: &str, tag: &str) -> Result<u64, tonic::Status> {
    release_on(Hub::channel(prison).await, token, tag).await
}

async fn release_on(channel: Channel, token: &str, tag: &str) -> Result<u64, tonic::Status> {
    PrisonServiceClient::new(channel)
        .record_release_date(authed(release_date(&request_id(tag), "bradford"), token))
        .await
        .map(|r| r.into_inner().stream_sequence)
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_by_digest_reloaded_on_sighup_and_plain_ones_only_on_loopback() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    let write = |entries: &[String]| {
        std::fs::write(&tokens, format!(r#"{{"tokens": [{}]}}"#, entries.join(","))).unwrap()
    };
    let hashed = carat_entry(&format!(
        r#""token_sha256": "{}""#,
        sha256_hex(HASHED_CARAT)
    ));
    let plain = carat_entry(r#""token": "a-plain-token-in-the-file""#);
    let off_loopback = |file: &Path| {
        vec![
            ("HUB_TOKENS_FILE", file.display().to_string()),
            ("HUB_LISTEN", "0.0.0.0:0".to_string()),
            ("HUB_ALLOW_PLAINTEXT", "1".to_string()),
        ]
    };

    // Off loopback, a file with a plain token is refused at start.
    write(&[hashed.clone(), plain.clone()]);
    refused_to_start(
        start(dir.path(), &nats, "prison-service", &off_loopback(&tokens)),
        &["HUB_TOKENS_FILE", "token_sha256"],
    );
    // With digests only it starts, and the token behind a digest works.
    write(std::slice::from_ref(&hashed));
    let _keys = key_service(dir.path(), &nats);
    let prison = start(dir.path(), &nats, "prison-service", &off_loopback(&tokens)).unwrap();
    release(&prison, HASHED_CARAT, "digest").await.unwrap();
    let wrong = release(&prison, &sha256_hex(HASHED_CARAT), "digest").await;
    assert_eq!(
        wrong.unwrap_err().code(),
        Code::Unauthenticated,
        "the digest is no token"
    );

    // SIGHUP with a file that no longer parses, or that gained a plain
    // token: refused, the previous callers stay.
    std::fs::write(&tokens, "{ not json").unwrap();
    hangup(&prison);
    wait_for_log(&prison, "SIGHUP: callers not reloaded", 1).await;
    write(&[hashed.clone(), plain]);
    hangup(&prison);
    wait_for_log(&prison, "SIGHUP: callers not reloaded", 2).await;
    release(&prison, HASHED_CARAT, "kept").await.unwrap();

    // Revoked: gone from the file, and refused on its next call after SIGHUP.
    let other = "another-carat-token-kept-as-digest";
    write(&[carat_entry(&format!(
        r#""token_sha256": "{}""#,
        sha256_hex(other)
    ))]);
    hangup(&prison);
    wait_for_log(&prison, "SIGHUP: callers reloaded", 1).await;
    let revoked = release(&prison, HASHED_CARAT, "revoked").await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "{revoked:?}");
    release(&prison, other, "added").await.unwrap();
}

fn hangup(process: &HubProcess) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &process.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (up to 10 s) until `process`'s log says `what` `times` times.
async fn wait_for_log(process: &HubProcess, what: &str, times: usize) {
    for _ in 0..200 {
        if process.log().matches(what).count() >= times {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{} never logged {what:?} {times} times:\n{}",
        process.name(),
        process.log()
    );
}

const ISSUER: &str = "https://login.test.nhs.uk";
const AUDIENCE: &str = "harm-reduction-hub";

#[tokio::test(flavor = "multi_thread")]
async fn access_tokens_from_an_identity_provider() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rsa = TestKey::rsa("idp-1");
    let ec = TestKey::p256("idp-2");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&rsa])).unwrap();
    let oidc = vec![
        ("HUB_OIDC_ISSUER", ISSUER.to_string()),
        ("HUB_OIDC_AUDIENCE", AUDIENCE.to_string()),
        ("HUB_OIDC_JWKS_FILE", jwks_file.display().to_string()),
    ];
    let _keys = key_service(dir.path(), &nats);
    let prison = start(dir.path(), &nats, "prison-service", &oidc).unwrap();
    let pickup = start(dir.path(), &nats, "pickup-projection", &oidc).unwrap();
    let carat = claims(
        ISSUER,
        AUDIENCE,
        "cis2-5550001",
        "carat_worker",
        "LEI",
        &["bradford"],
    );

    // A valid token records, as the caller it names, and reads.
    let seq = release(&prison, &rsa.sign(&carat), "jwt").await.unwrap();
    let mut pickups = PickupListServiceClient::new(Hub::channel(&pickup).await);
    let list = pickups
        .list_pickups(authed(bradford_list(seq), &rsa.sign(&carat)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.entries.len(), 1);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let recorded = || async {
        stream_messages(&js)
            .await
            .into_iter()
            .filter(|m| m.subject.starts_with("hub.events."))
            .collect::<Vec<_>>()
    };
    let events = recorded().await;
    let event =
        <hub_proto::events::Event as prost::Message>::decode(events[0].payload.as_ref()).unwrap();
    assert_eq!(event.actor_user_id, "cis2-5550001");
    assert_eq!(event.actor_role, "carat_worker");
    // Its partnerships bound it as a tokens-file entry's do.
    let leeds = pickups
        .list_pickups(authed(
            hub_proto::projections::ListPickupsRequest {
                partnership_code: "leeds".into(),
                ..Default::default()
            },
            &rsa.sign(&carat),
        ))
        .await
        .unwrap_err();
    assert_eq!(leeds.code(), Code::PermissionDenied);

    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = carat.clone();
        f(&mut c);
        rsa.sign(&c)
    };
    let bad = [
        ("expired", with(&|c| c["exp"] = (now() - 300).into())),
        (
            "wrong issuer",
            with(&|c| c["iss"] = "https://elsewhere".into()),
        ),
        ("wrong audience", with(&|c| c["aud"] = "another-app".into())),
        (
            "key set does not hold",
            ec.sign(&carat), // a key the provider has not published (yet)
        ),
        (
            "bad signature",
            TestKey::rsa("idp-1").sign(&carat), // same kid, another key
        ),
        (
            "hub_role",
            with(&|c| {
                c.as_object_mut().unwrap().remove("hub_role");
            }),
        ),
        (
            "hub_partnerships",
            with(&|c| {
                c.as_object_mut().unwrap().remove("hub_partnerships");
            }),
        ),
    ];
    for (why, token) in &bad {
        let refused = release(&prison, token, "bad-jwt").await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{why}: {refused:?}");
        assert!(
            refused.message().contains(why),
            "{why}: {}",
            refused.message()
        );
        assert!(!refused.message().contains(token.as_str()));
    }
    // The provider rotates to a new key: after SIGHUP its tokens work.
    std::fs::write(&jwks_file, jwks(&[&rsa, &ec])).unwrap();
    hangup(&prison);
    wait_for_log(&prison, "SIGHUP: callers reloaded", 1).await;
    release(&prison, &ec.sign(&carat), "rotated").await.unwrap();
    // Nothing a refused token asked for was recorded.
    assert_eq!(
        recorded().await.len(),
        2,
        "only the two good calls recorded"
    );
    // The tokens file still works beside the provider.
    release(&prison, CARAT, "file").await.unwrap();
}

/// A channel to `process` over TLS, trusting `ca`, with the client
/// certificate when `client` is given.
async fn tls_channel(process: &HubProcess, ca: &TestCa, client: bool) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca.ca).unwrap()))
        .domain_name("localhost");
    if client {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&ca.client_cert).unwrap(),
            std::fs::read(&ca.client_key).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://localhost:{}", process.addr().port()))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_and_mutual_tls_on_every_listener_end_to_end() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(&dir.path().join("tls")).unwrap();
    let tls = |mutual: bool| ca.env(mutual);
    // Agency systems present certificates (mutual TLS) to the prison
    // service; the projection serves TLS to any client that trusts it.
    let mut prison_env = tls(true);
    prison_env.push(("HUB_LISTEN".into(), "0.0.0.0:0".into()));
    prison_env.push(("HUB_TOKENS_FILE".into(), digest_tokens(dir.path())));
    let _keys = key_service(dir.path(), &nats);
    let prison = start(dir.path(), &nats, "prison-service", &prison_env).unwrap();
    let pickup = start(dir.path(), &nats, "pickup-projection", &tls(false)).unwrap();

    let seq = release_on(
        tls_channel(&prison, &ca, true).await.unwrap(),
        CARAT,
        "mtls",
    )
    .await
    .unwrap();
    // No client certificate, or no TLS at all: no call gets through.
    let no_cert = match tls_channel(&prison, &ca, false).await {
        Err(e) => e,
        Ok(channel) => format!(
            "{:?}",
            release_on(channel, CARAT, "no-cert").await.unwrap_err()
        ),
    };
    assert!(!no_cert.is_empty());
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", prison.addr().port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        release_on(channel, CARAT, "plain").await.unwrap_err();
    }
    let mut pickups = PickupListServiceClient::new(tls_channel(&pickup, &ca, false).await.unwrap());
    assert_eq!(
        pickups
            .list_pickups(authed(bradford_list(seq), CARAT))
            .await
            .unwrap()
            .into_inner()
            .entries
            .len(),
        1
    );

    // hubctl over https, trusting the CA and presenting its certificate.
    let https = |p: &HubProcess| format!("https://localhost:{}", p.addr().port());
    let mut cmd = command(
        &nats.url(),
        &["pickups", "--partnership", "bradford", "--json"],
    );
    cmd.env("HUB_TOKEN", CARAT)
        .env("HUB_PICKUP_PROJECTION_ADDR", https(&pickup))
        .env("HUB_TLS_CA_FILE", &ca.ca);
    let listed = run(cmd).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["entries"].as_array().unwrap().len(), 1);
    // Without the CA, hubctl does not trust the projection.
    let mut cmd = command(&nats.url(), &["pickups", "--partnership", "bradford"]);
    cmd.env("HUB_TOKEN", CARAT)
        .env("HUB_PICKUP_PROJECTION_ADDR", https(&pickup));
    assert_ne!(run(cmd).await.code, 0);

    // The dashboard serves https and calls the projection over https.
    let mut dash_env = tls(false);
    dash_env.push(("HUB_PICKUP_PROJECTION_ADDR".into(), https(&pickup)));
    let dashboard = start(dir.path(), &nats, "dashboard", &dash_env).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca.ca).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", dashboard.addr().port());
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let login_cookie = form.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(login_cookie.contains("Secure"), "{login_cookie}");
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();
    let csrf = csrf_of(&form.text().await.unwrap());
    let login = client
        .post(format!("{base}/login"))
        .header("cookie", login_cookie)
        .form(&[("token", CARAT), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("hub_session="))
        .unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let page = client
        .get(format!("{base}/partnerships/bradford/pickups"))
        .header("authorization", format!("Bearer {CARAT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // Plain HTTP to the TLS port gets no page.
    let plain = hub_testkit::http(dashboard.addr(), "GET", "/healthz", &[], None);
    assert!(plain.map(|r| r.status != 200).unwrap_or(true));
    // Metrics are served over TLS too.
    let metrics = client
        .get(format!(
            "https://localhost:{}/metrics",
            pickup.metrics_addr().unwrap().port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_listener_off_loopback_unless_a_proxy_terminates_tls() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["prison-service", "pickup-projection", "dashboard"] {
        refused_to_start(
            start(
                dir.path(),
                &nats,
                name,
                &[("HUB_LISTEN", "0.0.0.0:0".into())],
            ),
            &["HUB_LISTEN", "without TLS", "HUB_ALLOW_PLAINTEXT"],
        );
    }
    let ca = TestCa::create(&dir.path().join("tls")).unwrap();
    refused_to_start(
        start(
            dir.path(),
            &nats,
            "prison-service",
            &[("HUB_TLS_CERT_FILE", ca.server_cert.display().to_string())],
        ),
        &["HUB_TLS_KEY_FILE", "required"],
    );
    refused_to_start(
        start(
            dir.path(),
            &nats,
            "prison-service",
            &[
                ("HUB_TLS_CERT_FILE", ca.server_cert.display().to_string()),
                ("HUB_TLS_KEY_FILE", ca.client_key.display().to_string()),
            ],
        ),
        &["HUB_TLS_KEY_FILE"],
    );
    // Behind a TLS-terminating proxy, plaintext is allowed by saying so
    // (with token digests, as off loopback always).
    let tokens = dir.path().join("tokens.json");
    std::fs::write(
        &tokens,
        format!(
            r#"{{"tokens": [{}]}}"#,
            carat_entry(&format!(
                r#""token_sha256": "{}""#,
                sha256_hex(HASHED_CARAT)
            ))
        ),
    )
    .unwrap();
    let _keys = key_service(dir.path(), &nats);
    let prison = start(
        dir.path(),
        &nats,
        "prison-service",
        &[
            ("HUB_LISTEN", "0.0.0.0:0".into()),
            ("HUB_ALLOW_PLAINTEXT", "1".into()),
            ("HUB_TOKENS_FILE", tokens.display().to_string()),
        ],
    )
    .unwrap();
    release(&prison, HASHED_CARAT, "proxied").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_caller_holds_only_so_many_live_streams() {
    use hub_proto::projections::WatchPickupsRequest;
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = [("HUB_MAX_STREAMS_PER_CALLER", "2".to_string())];
    let pickup = start(dir.path(), &nats, "pickup-projection", &cap).unwrap();
    let watch = |token: &'static str| {
        let pickup = &pickup;
        async move {
            PickupListServiceClient::new(Hub::channel(pickup).await)
                .watch_pickups(authed(
                    WatchPickupsRequest {
                        partnership_code: "bradford".into(),
                    },
                    token,
                ))
                .await
        }
    };
    let first = watch(CARAT).await.unwrap();
    let _second = watch(CARAT).await.unwrap();
    let third = watch(CARAT).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("2 open pick-up watches"),
        "{}",
        third.message()
    );
    // Another caller has a cap of their own.
    let _dip = watch(DIP).await.unwrap();
    // A closed watch gives its slot back.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        match watch(CARAT).await {
            Ok(w) => {
                again = Some(w);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    assert!(again.is_some(), "the slot of a closed watch came back");

    // The dashboard's live pages have the same cap per caller.
    let mut env = vec![("HUB_MAX_STREAMS_PER_CALLER".to_string(), "1".to_string())];
    env.push((
        "HUB_PICKUP_PROJECTION_ADDR".into(),
        pickup.addr().to_string(),
    ));
    let dashboard = start(dir.path(), &nats, "dashboard", &env).unwrap();
    let live = || {
        let addr = dashboard.addr();
        std::thread::spawn(move || {
            // A live page's event stream: read its first bytes, then hold it.
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /api/partnerships/bradford/pickups/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TREATMENT}\r\n\r\n"
            )
            .unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            (String::from_utf8_lossy(&head).to_string(), s)
        })
        .join()
        .unwrap()
    };
    let (status, _open) = live();
    assert!(status.ends_with("200"), "{status}");
    let (status, _) = live();
    assert!(status.ends_with("429"), "{status}");
}
