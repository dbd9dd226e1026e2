//! Alert notifications against a real PostgreSQL, a real `opslive serve` and a local server
//! standing in for Slack, Twilio and a webhook receiver (`support::standin`): contact points
//! and routing through GraphQL, every notification written to the outbox with its transition
//! and then sent; retries on 429/5xx, dead letters on other 4xx, a failing channel that holds
//! back only itself, silences, a send in flight at `kill -9` sent again and counted, and bad
//! contact points refused with nothing stored.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{Value as Json, json};
use support::alerting::{INSERT_TEST_ORDER, test_order_rule};
use support::graphql::{Shop, data, fixture_policy, post, token};
use support::standin::{Answer, Received, StandIn};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const HOOK_SECRET: &str = "whsec-0123456789abcdef";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token-xyz";

/// The `[notifications]` table: quick retries, a short timeout unless `extra` sets one,
/// links to a dashboard.
fn settings(extra: &str) -> String {
    let timeout = if extra.contains("timeout_seconds") { "" } else { "timeout_seconds = 1\n" };
    format!(
        "\n[notifications]\nsecret_key = {KEY:?}\npublic_url = \"https://ops.example.com/\"\n\
         retry_backoff_seconds = 0.05\nmax_backoff_seconds = 0.2\n{timeout}{extra}"
    )
}

/// A stand-in, a server with `extra` notification settings, an admin's token, and a client of
/// the source database.
async fn setup(extra: &str) -> (StandIn, Shop, String, tokio_postgres::Client) {
    let standin = StandIn::start().await;
    let shop = start(extra).await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let client = shop.pg.connect("shop").await;
    (standin, shop, admin, client)
}

/// A webhook contact point at the stand-in's `/hook`.
async fn qa_hook(shop: &Shop, admin: &str, standin: &StandIn) -> String {
    contact_point(shop, admin, "QA hook", "WEBHOOK", json!({ "url": standin.url("/hook"), "secret": HOOK_SECRET }))
        .await
}

async fn start(extra: &str) -> Shop {
    Shop::start_with(opslive::demo::FIXTURE_SEED, &fixture_policy(), "", &settings(extra)).await
}

const CREATE: &str =
    "mutation($input: ContactPointInput!) { createContactPoint(input: $input) { id name kind settings secretsSet } }";

async fn contact_point(shop: &Shop, admin: &str, name: &str, kind: &str, settings: Json) -> String {
    let d =
        data(shop.addr, admin, CREATE, json!({ "input": { "name": name, "kind": kind, "settings": settings } })).await;
    d["createContactPoint"]["id"].as_str().expect("an id").to_string()
}

/// A Twilio contact point at the stand-in, sending from +4930123456 to `to`.
async fn twilio(shop: &Shop, admin: &str, standin: &StandIn, to: &[&str]) -> String {
    let settings = json!({ "baseUrl": standin.url("/twilio/"), "accountSid": SID, "authToken": TWILIO_TOKEN,
                           "from": "+4930123456", "to": to });
    contact_point(shop, admin, "QA on call", "TWILIO", settings).await
}

async fn route_all(shop: &Shop, admin: &str, points: &[&str]) {
    let policy = json!({ "routes": [{ "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": points }] });
    data(shop.addr, admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
}

/// `setNotificationPolicy` as it answers (refusals included).
async fn set_policy(shop: &Shop, admin: &str, policy: Json) -> support::graphql::Reply {
    post(shop.addr, Some(admin), "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy }))
        .await
}

async fn insert_test_order(client: &tokio_postgres::Client) -> (i64, u64) {
    let row = client
        .query_one(&format!("{INSERT_TEST_ORDER} RETURNING id, pg_current_wal_insert_lsn()::text"), &[])
        .await
        .unwrap();
    (row.get(0), lsn(&row.get::<_, String>(1)))
}

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("an LSN");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

async fn notifications(shop: &Shop, admin: &str, filter: Json) -> Vec<Json> {
    let q = "query($w: NotificationWhere) { notifications(where: $w) { id contactPointId ruleId instance kind status \
             attempts repeats lastError cause content idempotencyKey sentAt } }";
    data(shop.addr, admin, q, json!({ "w": filter })).await["notifications"].as_array().cloned().unwrap()
}

/// Polls the notification log until `done` holds.
async fn wait_log(shop: &Shop, admin: &str, what: &str, done: impl Fn(&[Json]) -> bool) -> Vec<Json> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = notifications(shop, admin, json!({})).await;
        if done(&got) {
            return got;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {got:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn verify_signature(r: &Received) {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.headers.get("x-opslive-signature-256"), Some(&want), "the body's HMAC-SHA256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_reaches_slack_twilio_and_a_webhook_with_its_provenance_and_resolves() {
    let (standin, shop, admin, client) = setup("").await;

    let hook = qa_hook(&shop, &admin, &standin).await;
    let slack =
        contact_point(&shop, &admin, "QA Slack", "SLACK", json!({ "url": standin.url("/slack/T000/B000/XXXX") })).await;
    let sms = twilio(&shop, &admin, &standin, &["+4915112345678", "+4915187654321"]).await;
    // Secrets are write-only: nothing of them comes back.
    let listed =
        post(shop.addr, Some(&admin), "{ contactPoints { id name kind settings secretsSet } }", json!({})).await;
    let text = listed.text.clone();
    for secret in [HOOK_SECRET, TWILIO_TOKEN, "/slack/T000"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    assert!(text.contains("\"secretsSet\":true"), "{text}");
    route_all(&shop, &admin, &[&hook, &slack, &sms]).await;
    // Twilio is busy at first: a 429 with Retry-After 1 s, then it takes the messages.
    standin.script("/twilio/", [Answer::TooMany { retry_after_secs: 1 }]);

    let rule = test_order_rule(&shop, &admin).await;
    let (order, before) = insert_test_order(&client).await;

    let hooks = standin.wait("/hook", "the webhook", |r| !r.is_empty()).await;
    let body = hooks[0].json();
    verify_signature(&hooks[0]);
    assert_eq!(hooks[0].headers.get("idempotency-key").map(String::as_str), body["idempotencyKey"].as_str());
    assert_eq!(body["kind"], "firing");
    assert_eq!(body["rule"], "Test order pending");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["summary"], format!("order {order} waits"));
    assert_eq!(body["source"], "shop");
    assert!(lsn(body["position"].as_str().unwrap()) >= before, "the position of the inserting transaction: {body}");
    assert!(body["commitTs"].is_string());
    assert!(
        body["link"].as_str().unwrap().starts_with(&format!("https://ops.example.com/alerts/?rule={rule}&instance="))
    );

    let slacks = standin.wait("/slack/", "Slack", |r| !r.is_empty()).await;
    let blocks = slacks[0].json();
    assert_eq!(slacks[0].path, "/slack/T000/B000/XXXX");
    assert_eq!(blocks["attachments"][0]["color"], "#e01e5a", "critical is red");
    let blocks_text = blocks["attachments"][0]["blocks"].to_string();
    for part in ["Firing: Test order pending", &format!("order {order} waits"), "shop at ", "Open in opslive"] {
        assert!(blocks_text.contains(part), "{part} missing: {blocks_text}");
    }

    // The 429, then one message per recipient.
    let texts = standin.wait("/twilio/", "Twilio", |r| r.len() >= 3).await;
    assert_eq!(texts.len(), 3, "one refused, then one per recipient");
    assert!(texts[1].at.duration_since(texts[0].at) >= Duration::from_millis(900), "Retry-After was waited for");
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TWILIO_TOKEN}")));
    for (r, to) in texts[1..].iter().zip(["+4915112345678", "+4915187654321"]) {
        assert_eq!(r.path, format!("/twilio/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(r.headers.get("authorization"), Some(&basic));
        let form = r.form();
        assert_eq!(form["To"], to);
        assert_eq!(form["From"], "+4930123456");
        assert!(form["Body"].starts_with("[FIRING critical] Test order pending: order"), "{}", form["Body"]);
    }

    let log = wait_log(&shop, &admin, "all sent", |n| n.len() == 3 && n.iter().all(|n| n["status"] == "SENT")).await;
    let twilio_row = log.iter().find(|n| n["contactPointId"] == sms.as_str()).unwrap();
    assert_eq!(twilio_row["attempts"], 2);
    assert!(log.iter().all(|n| n["ruleId"] == rule.as_str() && n["kind"] == "firing"));

    // Paid: the alert resolves, and each contact point hears so once.
    client.execute("UPDATE orders SET status = 'paid' WHERE id = $1", &[&order]).await.unwrap();
    let hooks = standin.wait("/hook", "the resolved webhook", |r| r.len() == 2).await;
    assert_eq!(hooks[1].json()["kind"], "resolved");
    verify_signature(&hooks[1]);
    let slacks = standin.wait("/slack/", "the resolved Slack message", |r| r.len() == 2).await;
    assert_eq!(slacks[1].json()["attachments"][0]["color"], "#2eb67d");
    standin.wait("/twilio/", "the resolved SMS", |r| r.len() == 5).await;
    wait_log(&shop, &admin, "resolved sent", |n| n.len() == 6 && n.iter().all(|n| n["status"] == "SENT")).await;

    let metrics = support::http::get(shop.addr, "/metrics").await.body;
    let samples = support::http::samples(&metrics);
    let value = |name: &str, channel: &str| support::http::value(&samples, name, &[("channel", channel)]);
    assert_eq!(value("opslive_notifications_sent_total", "twilio"), Some(2.0));
    assert_eq!(value("opslive_notifications_sent_total", "slack"), Some(2.0));
    assert_eq!(value("opslive_notifications_retried_total", "twilio"), Some(1.0));
    assert_eq!(value("opslive_notifications_dead_total", "webhook"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_channel_holds_back_only_itself_and_drains_in_order_once_it_recovers() {
    let (standin, shop, admin, client) = setup("max_attempts = 1000\n").await;
    let down =
        contact_point(&shop, &admin, "Down", "WEBHOOK", json!({ "url": standin.url("/down"), "secret": HOOK_SECRET }))
            .await;
    let up = contact_point(&shop, &admin, "Up", "WEBHOOK", json!({ "url": standin.url("/up"), "secret": HOOK_SECRET }))
        .await;
    let refused = contact_point(&shop, &admin, "Refused", "SLACK", json!({ "url": standin.url("/gone/x") })).await;
    route_all(&shop, &admin, &[&down, &up, &refused]).await;
    standin.fail("/down", Answer::Status(500, "internal error"));
    standin.fail("/gone", Answer::Status(404, "no_service"));
    test_order_rule(&shop, &admin).await;

    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(insert_test_order(&client).await.0);
    }
    // The healthy channel gets all three while the other keeps failing.
    let ups = standin.wait("/up", "the healthy channel", |r| r.len() == 3).await;
    let summaries =
        |rs: &[Received]| rs.iter().map(|r| r.json()["summary"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let want: Vec<String> = orders.iter().map(|o| format!("order {o} waits")).collect();
    assert_eq!(summaries(&ups), want);
    standin.wait("/down", "retries of the failing channel", |r| r.len() >= 3).await;
    assert!(
        standin.received("/down").iter().all(|r| r.json()["summary"] == want[0].as_str()),
        "in order: the first blocks the rest"
    );
    // A 404 is permanent: dead-lettered at once, with the error.
    let log = wait_log(&shop, &admin, "the refused channel's dead letters", |n| {
        n.iter().filter(|n| n["contactPointId"] == refused.as_str() && n["status"] == "DEAD").count() == 3
    })
    .await;
    let dead = log.iter().find(|n| n["contactPointId"] == refused.as_str()).unwrap();
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["lastError"], "HTTP 404: no_service");
    let failing = log.iter().filter(|n| n["contactPointId"] == down.as_str()).collect::<Vec<_>>();
    assert!(failing.iter().all(|n| n["status"] == "PENDING" || n["status"] == "SENDING"), "{failing:#?}");
    assert!(failing.iter().any(|n| n["lastError"].as_str().is_some_and(|e| e.starts_with("HTTP 500"))), "{failing:#?}");

    standin.recover("/down");
    let downs = standin
        .wait("/down", "the backlog after recovery", |r| {
            r.iter().filter(|r| r.json()["summary"] != want[0].as_str()).count() == 2
        })
        .await;
    let mut delivered: Vec<String> = summaries(&downs);
    delivered.dedup();
    assert_eq!(delivered, want, "the backlog drained in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_alert_is_recorded_as_silenced_and_never_sent() {
    let (standin, shop, admin, client) = setup("").await;
    let hook = qa_hook(&shop, &admin, &standin).await;
    route_all(&shop, &admin, &[&hook]).await;
    let silence =
        "mutation { createSilence(matchers: [{ label: \"team\", value: \"qa\" }], duration: \"PT1H\") { id } }";
    let silence_id = data(shop.addr, &admin, silence, json!({})).await["createSilence"]["id"].clone();
    test_order_rule(&shop, &admin).await;
    insert_test_order(&client).await;
    let log = wait_log(&shop, &admin, "a silenced notification", |n| n.len() == 1).await;
    assert_eq!(log[0]["status"], "SILENCED");
    // A later alert of another rule that is not silenced goes out: the lane is alive.
    let d = data(
        shop.addr,
        &admin,
        "mutation($input: AlertRuleInput!) { createAlertRule(input: $input) { id } }",
        json!({ "input": { "name": "Any test order", "labels": { "team": "qa", "x": "1" },
                           "rows": { "table": "orders", "filter": { "currency": { "eq": "XTT" } } } } }),
    )
    .await;
    assert!(d["createAlertRule"]["id"].is_string());
    data(shop.addr, &admin, "mutation($id: ID!) { expireSilence(id: $id) }", json!({ "id": silence_id })).await;
    client
        .execute(
            "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count) \
             SELECT 'phone', min(id), 'pending', 5.00, 'XTT', 'WH-BER', 'eu', 1 FROM customers",
            &[],
        )
        .await
        .unwrap();
    let hooks = standin.wait("/hook", "the unsilenced alert", |r| !r.is_empty()).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["rule"], "Any test order", "the silenced one was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_in_flight_at_kill_9_is_sent_again_with_the_same_idempotency_key_and_counted() {
    let (standin, mut shop, admin, client) = setup("timeout_seconds = 30\n").await;
    let hook = qa_hook(&shop, &admin, &standin).await;
    route_all(&shop, &admin, &[&hook]).await;
    test_order_rule(&shop, &admin).await;
    // The receiver takes the request and never answers: the send is in flight.
    standin.script("/hook", [Answer::Hang]);
    insert_test_order(&client).await;
    let first = standin.wait("/hook", "the send in flight", |r| r.len() == 1).await;
    let key = first[0].headers["idempotency-key"].clone();

    shop.serve.child.start_kill().unwrap();
    shop.serve.child.wait().await.unwrap();
    let mut serve = support::serve::Serve::start(&shop.dir.path().join("opslive.toml"));
    shop.addr = serve.wait_listening().await;
    shop.serve = serve;

    let again = standin.wait("/hook", "the send again after the restart", |r| r.len() == 2).await;
    assert_eq!(again[1].headers["idempotency-key"], key, "a receiver can tell it is the same notification");
    assert_eq!(again[1].body, again[0].body);
    let log = wait_log(&shop, &admin, "sent once more", |n| n.len() == 1 && n[0]["status"] == "SENT").await;
    assert_eq!(log[0]["repeats"], 1);
    let metrics = support::http::get(shop.addr, "/metrics").await.body;
    let samples = support::http::samples(&metrics);
    assert_eq!(
        support::http::value(&samples, "opslive_notifications_repeated_total", &[("channel", "webhook")]),
        Some(1.0)
    );
    // And no more: the transition delivered again after the restart added no notification.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(standin.received("/hook").len(), 2);
    assert_eq!(notifications(&shop, &admin, json!({})).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_contact_points_and_policies_are_refused_and_nothing_is_stored() {
    let standin = StandIn::start().await;
    let shop = start("").await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let manager = token("ops_manager", json!({ "sub": "omar@example.com" }));

    let input = |kind: &str, settings: Json| json!({ "input": { "name": "x", "kind": kind, "settings": settings } });
    // A role without `manage_notifications` has no notification fields at all.
    let refused = post(shop.addr, Some(&manager), CREATE, input("SLACK", json!({ "url": standin.url("/s") }))).await;
    assert!(refused.codes().iter().all(|c| c == "GRAPHQL_VALIDATION_FAILED"), "{}", refused.text);
    assert!(refused.text.contains("Unknown field") && refused.text.contains("createContactPoint"), "{}", refused.text);

    let cases = [
        ("WEBHOOK", json!({ "url": "ftp://example.com/x", "secret": HOOK_SECRET }), "input.settings.url"),
        ("WEBHOOK", json!({ "url": standin.url("/h") }), "input.settings.secret"),
        ("SLACK", json!({ "url": "not a url" }), "input.settings.url"),
        (
            "TWILIO",
            json!({ "accountSid": SID, "authToken": "t", "from": "+4930123456", "to": ["0301234"] }),
            "input.settings.to[0]",
        ),
        (
            "TWILIO",
            json!({ "accountSid": SID, "from": "+4930123456", "to": ["+4930123456"] }),
            "input.settings.authToken",
        ),
    ];
    for (kind, settings, field) in cases {
        let r = post(shop.addr, Some(&admin), CREATE, input(kind, settings.clone())).await;
        assert_eq!(r.codes(), ["BAD_USER_INPUT"], "{settings}: {}", r.text);
        assert_eq!(r.json()["errors"][0]["extensions"]["field"], field, "{}", r.text);
    }
    let policy = json!({ "routes": [{ "contactPoints": ["99"] }] });
    let r = set_policy(&shop, &admin, policy).await;
    assert_eq!(r.codes(), ["BAD_USER_INPUT"], "{}", r.text);
    assert!(r.text.contains("no contact point 99"), "{}", r.text);
    let d = data(shop.addr, &admin, "{ contactPoints { id } notificationPolicy }", json!({})).await;
    assert_eq!(d["contactPoints"], json!([]));
    assert_eq!(d["notificationPolicy"], json!({ "routes": [] }));

    // Without a key to seal secrets with, a contact point is refused with the setting to add.
    let plain = Shop::start(opslive::demo::FIXTURE_SEED, &fixture_policy()).await;
    let r = post(plain.addr, Some(&admin), CREATE, input("SLACK", json!({ "url": standin.url("/s") }))).await;
    assert_eq!(r.codes(), ["BAD_USER_INPUT"], "{}", r.text);
    assert!(r.text.contains("notifications.secret_key"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_goes_over_starttls_with_auth_to_a_relay_whose_ca_the_contact_point_trusts() {
    let smtp = support::smtp::SmtpStandIn::start("opslive", "s3cret-pass").await;
    let shop = start("").await;
    let admin = token("admin", json!({ "sub": "alice@example.com" }));
    let client = shop.pg.connect("shop").await;
    let settings = |password: &str| {
        json!({ "host": "localhost", "port": smtp.port, "security": "starttls", "username": "opslive",
                "password": password, "from": "opslive <alerts@example.com>", "to": ["oncall@example.com", "lead@example.com"],
                "caCertificate": smtp.ca_pem })
    };
    let mail = contact_point(&shop, &admin, "QA mail", "EMAIL", settings("s3cret-pass")).await;
    let wrong = contact_point(&shop, &admin, "Wrong password", "EMAIL", settings("guess")).await;
    let listed = post(shop.addr, Some(&admin), "{ contactPoints { settings } }", json!({})).await;
    assert!(!listed.text.contains("s3cret-pass"), "{}", listed.text);
    route_all(&shop, &admin, &[&mail, &wrong]).await;
    test_order_rule(&shop, &admin).await;
    let (order, _) = insert_test_order(&client).await;

    let mails = smtp.wait("the firing email", |m| !m.is_empty()).await;
    let m = &mails[0];
    assert!(m.tls, "sent after STARTTLS");
    assert_eq!(m.user.as_deref(), Some("opslive"));
    assert_eq!(m.from, "alerts@example.com");
    assert_eq!(m.to, ["oncall@example.com", "lead@example.com"]);
    assert!(
        m.data.contains(&format!("Subject: [FIRING critical] Test order pending: order {order} waits")),
        "{}",
        m.data
    );
    assert!(m.data.contains("multipart/alternative") && m.data.contains("text/plain") && m.data.contains("text/html"));
    let log = wait_log(&shop, &admin, "the email sent, the wrong password given up", |n| {
        n.iter().any(|n| n["contactPointId"] == mail.as_str() && n["status"] == "SENT")
            && n.iter().any(|n| n["contactPointId"] == wrong.as_str() && n["status"] == "DEAD")
    })
    .await;
    let sent = log.iter().find(|n| n["contactPointId"] == mail.as_str()).unwrap();
    let key = sent["idempotencyKey"].as_str().unwrap();
    assert!(m.data.contains(&format!("Message-ID: <{key}@opslive>")), "{}", m.data);
    // The text part carries the acknowledgement link (quoted-printable: soft breaks, `=3D`).
    let ack = sent["content"]["ackLink"].as_str().expect("a firing email has an acknowledgement link");
    ack_ticket(ack);
    let text = m.data.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    assert!(text.contains(&format!("Acknowledge (stops reminders): {ack}")), "{text}");
    let dead = log.iter().find(|n| n["contactPointId"] == wrong.as_str()).unwrap();
    assert_eq!(dead["attempts"], 1, "a 535 is permanent: {dead}");
    assert!(dead["lastError"].as_str().unwrap().contains("535"), "{dead}");
    assert_eq!(smtp.mails().len(), 1, "nothing went out without the right password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_of_one_group_go_out_as_one_message_after_the_group_wait() {
    let (standin, shop, admin, client) = setup("").await;
    let hook = qa_hook(&shop, &admin, &standin).await;
    let policy = json!({ "routes": [{ "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": [hook],
                                      "groupBy": ["alertname"], "groupWait": "2s" }] });
    data(shop.addr, &admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
    test_order_rule(&shop, &admin).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(insert_test_order(&client).await.0);
    }
    let log = wait_log(&shop, &admin, "three notifications waiting", |n| n.len() == 3).await;
    assert!(log.iter().all(|n| n["status"] == "PENDING"), "held for the group wait: {log:#?}");
    let hooks = standin.wait("/hook", "the group's message", |r| !r.is_empty()).await;
    let body = hooks[0].json();
    verify_signature(&hooks[0]);
    assert_eq!(body["rule"], "Test order pending (3 alerts)");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 3);
    let want: Vec<String> = orders.iter().map(|o| format!("• order {o} waits")).collect();
    assert_eq!(body["summary"], want.join("\n"));
    wait_log(&shop, &admin, "all three sent by one message", |n| n.iter().all(|n| n["status"] == "SENT")).await;
    assert_eq!(standin.received("/hook").len(), 1);

    // Resolved together, in one message too (never mixed with firing ones).
    client.execute("UPDATE orders SET status = 'paid' WHERE currency = 'XTS'", &[]).await.unwrap();
    let hooks = standin.wait("/hook", "the group's resolved message", |r| r.len() == 2).await;
    let body = hooks[1].json();
    assert_eq!(body["kind"], "resolved");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_firing_unacknowledged_is_repeated_until_someone_acknowledges_it() {
    let (standin, shop, admin, client) = setup("").await;
    let hook = qa_hook(&shop, &admin, &standin).await;
    let policy = json!({ "routes": [{ "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": [hook],
                                      "repeatInterval": "1s" }] });
    data(shop.addr, &admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
    let rule = test_order_rule(&shop, &admin).await;
    let (order, _) = insert_test_order(&client).await;

    let hooks = standin.wait("/hook", "the alert and two reminders", |r| r.len() >= 3).await;
    assert!(hooks[0].json()["reminder"].is_null());
    assert_eq!(hooks[1].json()["reminder"], 1);
    assert_eq!(hooks[2].json()["reminder"], 2);
    assert_eq!(hooks[1].json()["summary"], format!("order {order} waits"));
    let keys: std::collections::HashSet<_> = hooks.iter().map(|r| r.headers["idempotency-key"].clone()).collect();
    assert_eq!(keys.len(), hooks.len(), "each reminder is a notification of its own");

    let instance = hooks[0].json()["instance"].as_str().unwrap().to_string();
    let ack = "mutation($r: ID!, $i: String!) { acknowledgeAlert(ruleId: $r, instance: $i, note: \"on it\") { acknowledged } }";
    let d = data(shop.addr, &admin, ack, json!({ "r": rule, "i": instance })).await;
    assert_eq!(d["acknowledgeAlert"]["acknowledged"], true);
    // A reminder may have been on its way as the acknowledgement landed; after that, none.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = standin.received("/hook").len();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(standin.received("/hook").len(), settled, "no reminder after the acknowledgement");
}

/// The `t` of a message's acknowledgement link, checked to point at the dashboard's page.
fn ack_ticket(link: &str) -> String {
    assert!(link.starts_with("https://ops.example.com/ack/?t="), "the confirmation page under public_url: {link}");
    url::Url::parse(link).unwrap().query_pairs().find(|(k, _)| k == "t").unwrap().1.to_string()
}

async fn ack_page(shop: &Shop, ticket: &str) -> support::graphql::Reply {
    let path = format!("/api/ack?t={}", url::form_urlencoded::byte_serialize(ticket.as_bytes()).collect::<String>());
    support::graphql::request(shop.addr, "GET", &path, &[], "").await
}

async fn ack_post(shop: &Shop, bearer: Option<&str>, ticket: &str) -> support::graphql::Reply {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    support::graphql::request(shop.addr, "POST", "/api/ack", &headers, &json!({ "t": ticket }).to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acknowledge_link_in_slack_and_email_acknowledges_by_post_only_and_stops_the_reminders() {
    let (standin, shop, admin, client) = setup("").await;
    let slack =
        contact_point(&shop, &admin, "Ops Slack", "SLACK", json!({ "url": standin.url("/slack/T000/B000/XXXX") }))
            .await;
    let hook = qa_hook(&shop, &admin, &standin).await;
    let policy = json!({ "routes": [{ "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": [slack, hook],
                                      "repeatInterval": "1s" }] });
    data(shop.addr, &admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
    test_order_rule(&shop, &admin).await;
    let (first, _) = insert_test_order(&client).await;
    let (second, _) = insert_test_order(&client).await;

    // Each order's first Slack message carries its own Acknowledge button.
    let slacks = standin.wait("/slack/", "both firings", |r| r.len() >= 2).await;
    let button = |r: &Received, order: i64| -> Option<String> {
        let body = r.json();
        let text = body["attachments"][0]["blocks"].to_string();
        if !text.contains(&format!("order {order} waits")) {
            return None;
        }
        let buttons = body["attachments"][0]["blocks"][3]["elements"].as_array()?.clone();
        assert_eq!(buttons[0]["text"]["text"], "Acknowledge");
        buttons[0]["url"].as_str().map(str::to_string)
    };
    let first_ticket = ack_ticket(&slacks.iter().find_map(|r| button(r, first)).expect("the first order's message"));
    let second_ticket = ack_ticket(&slacks.iter().find_map(|r| button(r, second)).expect("the second order's message"));

    // A GET (what an unfurler or a link scanner does) shows the alert and acknowledges nothing.
    let shown = ack_page(&shop, &first_ticket).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let alert = &shown.json()["alert"];
    assert_eq!(alert["rule"], "Test order pending");
    assert_eq!(alert["firing"], true);
    assert_eq!(alert["summary"], format!("order {first} waits"));
    assert!(alert["acknowledged"].is_null(), "{alert}");

    // An altered ticket is refused, and says so.
    let mut forged = first_ticket.clone().into_bytes();
    let at = forged.iter().position(|b| *b == b'.').unwrap() - 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let refused = ack_post(&shop, None, std::str::from_utf8(&forged).unwrap()).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.json()["error"].as_str().unwrap().contains("link"), "{}", refused.text);

    // Reminders go on after the GET: it acknowledged nothing.
    let hooks_before = standin.received("/hook").len();
    standin.wait("/hook", "reminders after the GET", |r| r.len() >= hooks_before + 2).await;

    // Signed in to the dashboard: recorded as that person. Not signed in: as the contact point.
    let by_alice = ack_post(&shop, Some(&admin), &first_ticket).await;
    assert_eq!(by_alice.status, 200, "{}", by_alice.text);
    assert_eq!(by_alice.json()["alert"]["acknowledged"]["by"], "alice@example.com");
    assert_eq!(by_alice.json()["already"], false);
    let by_link = ack_post(&shop, None, &second_ticket).await;
    assert_eq!(by_link.status, 200, "{}", by_link.text);
    assert_eq!(by_link.json()["alert"]["acknowledged"]["by"], "Ops Slack (slack message)");
    assert_eq!(by_link.json()["alert"]["acknowledged"]["note"], "acknowledged from the notification");
    let again = ack_post(&shop, None, &second_ticket).await;
    assert_eq!(again.json()["already"], true, "{}", again.text);
    assert_eq!(again.json()["alert"]["acknowledged"]["by"], "Ops Slack (slack message)", "the first one stands");

    let alerts = data(shop.addr, &admin, "{ alerts { instance acknowledged acknowledgedBy } }", json!({})).await;
    let acked: Vec<&Json> = alerts["alerts"].as_array().unwrap().iter().filter(|a| a["acknowledged"] == true).collect();
    assert_eq!(acked.len(), 2, "{alerts}");

    // No reminder after both acknowledgements (one may have been on its way as they landed).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = standin.received("/slack/").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(standin.received("/slack/").len(), settled, "no reminder after the acknowledgement");

    // Resolved: the link has nothing left to acknowledge, and says why.
    client.execute("UPDATE orders SET status = 'paid' WHERE id = $1", &[&first]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let late = ack_post(&shop, None, &first_ticket).await;
        if late.status == 409 {
            assert!(late.json()["error"].as_str().unwrap().contains("no longer"), "{}", late.text);
            assert_eq!(late.json()["alert"]["firing"], false);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still acknowledgeable after resolving: {}", late.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_under_a_mute_timing_records_muted_sends_nothing_and_writes_no_reminders() {
    let (standin, shop, admin, client) = setup("").await;
    let hook = qa_hook(&shop, &admin, &standin).await;
    let other = contact_point(
        &shop,
        &admin,
        "Other hook",
        "WEBHOOK",
        json!({ "url": standin.url("/other"), "secret": HOOK_SECRET }),
    )
    .await;

    // Refused with the reason, and nothing stored: a window that ends before it starts, a zone
    // that does not exist, a route naming a timing there is not.
    let set = "mutation($t: JSON!) { setMuteTiming(timing: $t) }";
    let backwards = json!({ "name": "nights", "intervals": [{ "times": [{ "start": "22:00", "end": "06:00" }] }] });
    let r = post(shop.addr, Some(&admin), set, json!({ "t": backwards })).await;
    assert_eq!(r.codes(), ["BAD_USER_INPUT"], "{}", r.text);
    assert!(r.text.contains("timing.intervals[0].times[0]") && r.text.contains("24:00"), "{}", r.text);
    let r =
        post(shop.addr, Some(&admin), set, json!({ "t": { "name": "x", "timeZone": "Mars/Base", "intervals": [{}] } }))
            .await;
    assert!(r.text.contains("IANA"), "{}", r.text);
    let dangling = json!({ "routes": [{ "contactPoints": [hook], "muteTimings": ["nope"] }] });
    let r = set_policy(&shop, &admin, dangling).await;
    assert!(
        r.text.contains("routes[0].muteTimings[0]") && r.text.contains("no mute timing named `nope`"),
        "{}",
        r.text
    );
    assert_eq!(data(shop.addr, &admin, "{ muteTimings }", json!({})).await["muteTimings"], json!([]));

    // "always" holds at every moment (an interval with no weekdays and no times); the hook's
    // route is under it, the other's is not.
    let always = json!({ "name": "always", "timeZone": "Europe/Berlin", "intervals": [{}] });
    data(shop.addr, &admin, set, json!({ "t": always })).await;
    let policy = json!({ "routes": [
        { "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": [hook], "continue": true,
          "repeatInterval": "1s", "muteTimings": ["always"] },
        { "matchers": [{ "label": "team", "value": "qa" }], "contactPoints": [other] } ] });
    data(shop.addr, &admin, "mutation($p: JSON!) { setNotificationPolicy(policy: $p) }", json!({ "p": policy })).await;
    let listed = data(shop.addr, &admin, "{ muteTimings notificationPolicy }", json!({})).await;
    assert_eq!(listed["muteTimings"][0]["name"], "always", "{listed}");
    assert_eq!(listed["notificationPolicy"]["muteTimings"][0]["timeZone"], "Europe/Berlin");
    let r = post(shop.addr, Some(&admin), "mutation { deleteMuteTiming(name: \"always\") }", json!({})).await;
    assert!(r.text.contains("named by route 0"), "a timing in use is not deleted: {}", r.text);

    test_order_rule(&shop, &admin).await;
    insert_test_order(&client).await;
    standin.wait("/other", "the unmuted route's message", |r| !r.is_empty()).await;
    let log = wait_log(&shop, &admin, "one muted, one sent", |n| {
        n.iter().any(|n| n["status"] == "MUTED") && n.iter().any(|n| n["status"] == "SENT")
    })
    .await;
    let muted = log.iter().find(|n| n["status"] == "MUTED").unwrap();
    assert_eq!(muted["contactPointId"], hook.as_str());
    let notes = data(shop.addr, &admin, "{ notifications(where: { status: MUTED }) { note } }", json!({})).await;
    assert_eq!(notes["notifications"][0]["note"], "mute timing `always` held");

    // The route repeats every second, but not while muted: no reminder is written or sent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(standin.received("/hook").is_empty(), "nothing sent to the muted route");
    let all = notifications(&shop, &admin, json!({ "contactPointId": hook })).await;
    assert_eq!(all.len(), 1, "no reminders written while muted: {all:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_retry_after_a_later_recipient_failed_sends_only_to_those_without_a_message() {
    let (standin, shop, admin, client) = setup("").await;
    let sms = twilio(&shop, &admin, &standin, &["+4915100000001", "+4915100000002", "+4915100000003"]).await;
    route_all(&shop, &admin, &[&sms]).await;
    // The first recipient's message is taken, the second's fails (500), then all is well.
    let created = r#"{"sid":"SM00000000000000000000000000000001","status":"queued"}"#;
    standin.script("/twilio/", [Answer::Status(201, created), Answer::Status(500, "busy")]);
    test_order_rule(&shop, &admin).await;
    insert_test_order(&client).await;

    let texts = standin.wait("/twilio/", "four requests", |r| r.len() >= 4).await;
    let to: Vec<String> = texts.iter().map(|r| r.form()["To"].clone()).collect();
    assert_eq!(
        to,
        ["+4915100000001", "+4915100000002", "+4915100000002", "+4915100000003"],
        "the retry skips the first"
    );
    let log = wait_log(&shop, &admin, "sent", |n| n.len() == 1 && n[0]["status"] == "SENT").await;
    assert_eq!(log[0]["attempts"], 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(standin.received("/twilio/").len(), 4, "nobody got a second message");
}
