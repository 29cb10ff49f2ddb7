//! Accounts from the IdP's tokens: the axum example as the IdP signs an EdDSA JWT at
//! `POST /login/jwt` and publishes its key at `/.well-known/jwks.json`; a second process
//! of it, as a resource server, verifies the token and records the request under the
//! token's account, reporting to the IdP, which writes to ClickHouse. Real servers
//! throughout (`scripts/clickhouse`).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::app::App;
use http::Method;
use idp_analytics::schema::Schema;
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, ThumbprintHash},
};

const TOKEN: &str = "rs-token";
/// The audience both roles use by default.
const AUDIENCE: &str = "idp-analytics-demo";

/// A fresh Ed25519 private key: as PKCS#8 PEM (for `IDP_ANALYTICS_JWT_KEY`) and as a key to
/// sign with here.
fn new_key() -> (String, EncodingKey) {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).unwrap();
    der.extend_from_slice(&seed);
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone()));
    (pem, EncodingKey::from_ed_der(&der))
}

/// The RFC 7638 thumbprint of `key`'s public half: the `kid` the IdP gives it.
fn kid(key: &EncodingKey) -> String {
    Jwk::from_encoding_key(key, Algorithm::EdDSA)
        .unwrap()
        .thumbprint(ThumbprintHash::SHA256)
        .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with these claims, signed here with `key` and naming `kid`.
fn mint(key: &EncodingKey, kid: &str, iss: &str, aud: &str, exp: u64, account: u64) -> String {
    let claims = serde_json::json!({
        "iss": iss, "aud": aud, "sub": account.to_string(),
        "iat": now(), "exp": exp, "account_id": account,
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// The IdP, signing with the key in `pem`, with a `rs` reporter, confirming writes.
async fn idp(schema: &Schema, pem: &str) -> App {
    let url = common::url();
    App::start(
        "axum",
        &[
            ("CLICKHOUSE_URL", url.as_str()),
            ("IDP_ANALYTICS_DATABASE", schema.database()),
            ("IDP_ANALYTICS_REPORTERS", "rs:rs-token"),
            ("IDP_ANALYTICS_CONFIRM_WRITES", "1"),
            ("IDP_ANALYTICS_JWT_KEY", pem),
        ],
    )
    .await
}

/// A resource server reporting to `idp` and taking the tokens it issues.
async fn resource_server(idp: &App) -> App {
    let to = format!("{}/events", idp.base());
    App::start(
        "axum",
        &[
            ("IDP_ANALYTICS_REPORT_TO", to.as_str()),
            ("IDP_ANALYTICS_REPORT_TOKEN", TOKEN),
            ("IDP_ANALYTICS_JWT_ISSUER", idp.base()),
            // Nothing listens here: a resource server must not touch ClickHouse.
            ("CLICKHOUSE_URL", "http://127.0.0.1:1"),
        ],
    )
    .await
}

/// Logs in at the IdP as `account` and returns the access token it issues.
async fn login(idp: &App, account: u64) -> String {
    let (status, body) = idp
        .request(Method::POST, &format!("/login/jwt?account={account}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["token_type"], "Bearer", "{body}");
    assert_eq!(answer["expires_in"], 900, "{body}");
    answer["access_token"].as_str().unwrap().to_owned()
}

/// Stops the resource server (every event reported) and then the IdP (every event written:
/// it confirms writes), and returns the table's rows per account, event type and source.
async fn stop_and_read(rs: App, idp: App, schema: &Schema) -> Vec<(u64, String, String, u64)> {
    let rest = rs.stop().await;
    assert!(
        rest.iter()
            .any(|l| l.contains(", 0 left unreported, 0 spool segments left")),
        "{rest:?}"
    );
    idp.stop().await;
    common::client()
        .query(&format!(
            "SELECT account_id, event_type, source, count() FROM {} FINAL
             GROUP BY account_id, event_type, source ORDER BY account_id, event_type, source",
            schema.qualified_table()
        ))
        .fetch_all::<(u64, String, String, u64)>()
        .await
        .unwrap()
}

fn row(account: u64, event_type: &str, source: &str, n: u64) -> (u64, String, String, u64) {
    (account, event_type.into(), source.into(), n)
}

#[tokio::test]
async fn a_jwt_from_the_idp_records_the_request_under_its_account() {
    let schema = prepare_database!().await;
    let (pem, key) = new_key();
    let idp = idp(&schema, &pem).await;
    // The IdP publishes the public half of the key it was given, under its thumbprint.
    let (status, jwks) = idp.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, 200, "{jwks}");
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"], kid(&key), "{jwks}");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA", "{jwks}");
    assert!(jwks["keys"][0].get("d").is_none(), "a private part: {jwks}");

    let rs = resource_server(&idp).await;
    let token = login(&idp, 42).await;
    let bearer = format!("Bearer {token}");
    let (status, body) = rs.get("/projects/7", Some(&bearer)).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "project 7 of account 42\n")
    );
    let (status, body) = rs.get("/search?q=x", Some(&bearer)).await;
    assert_eq!(status, 200, "{body}");
    // The toy login works beside it.
    let (status, body) = rs.get("/billing/invoices/3", Some("Bearer demo-5")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "invoice 3 of account 5\n")
    );
    // The IdP takes its own tokens too.
    let (status, body) = idp.get("/billing/invoices", Some(&bearer)).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "invoices of account 42\n")
    );

    assert_eq!(
        stop_and_read(rs, idp, &schema).await,
        [
            row(5, "/billing/invoices/{id}", "rs", 1),
            row(42, "/billing/invoices", "layer", 1),
            row(42, "/login/jwt", "layer", 1),
            row(42, "/projects/{id}", "rs", 1),
            row(42, "/search", "rs", 1),
        ]
    );
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_get_401_and_no_event() {
    let schema = prepare_database!().await;
    let (pem, key) = new_key();
    let idp = idp(&schema, &pem).await;
    let rs = resource_server(&idp).await;
    let (iss, kid) = (idp.base().to_owned(), kid(&key));
    let hour_on = now() + 3600;
    let (_, other_key) = new_key();

    // Each for an account of its own (9xx), so that a row of it would show.
    let valid = login(&idp, 42).await;
    // A valid token's signature over other claims.
    let (_, signature) = valid.rsplit_once('.').unwrap();
    let other = mint(&key, &kid, &iss, AUDIENCE, hour_on, 905);
    let (signed, _) = other.rsplit_once('.').unwrap();
    let mut alg_hs256 = Header::new(Algorithm::HS256);
    alg_hs256.kid = Some(kid.clone());
    let bad = [
        (
            mint(&other_key, &kid, &iss, AUDIENCE, hour_on, 901),
            "bad signature",
        ),
        // Past the verifier's leeway (60 s).
        (
            mint(&key, &kid, &iss, AUDIENCE, now() - 3600, 902),
            "expired",
        ),
        (
            mint(&key, &kid, &iss, "another-api", hour_on, 903),
            "wrong audience",
        ),
        (
            mint(&key, &kid, "http://127.0.0.1:1", AUDIENCE, hour_on, 904),
            "wrong issuer",
        ),
        (format!("{signed}.{signature}"), "bad signature"),
        // HMAC keyed with public data: the algorithm is not one the verifier takes.
        (
            jsonwebtoken::encode(
                &alg_hs256,
                &serde_json::json!({
                    "iss": iss, "aud": AUDIENCE, "exp": hour_on, "account_id": 906,
                }),
                &EncodingKey::from_secret(kid.as_bytes()).unwrap(),
            )
            .unwrap(),
            "algorithm not accepted",
        ),
    ];
    for (token, why) in &bad {
        let bearer = format!("Bearer {token}");
        for path in ["/projects/7", "/health"] {
            let (status, body) = rs.get(path, Some(&bearer)).await;
            assert_eq!(
                (status.as_u16(), body.as_str()),
                (401, format!("invalid token: {why}\n").as_str()),
                "{path} with a token that should be refused for {why}"
            );
        }
    }
    // Then valid requests, as the JWT's account and by the toy login: once they are in the
    // table, anything sent before them would be too.
    let (status, _) = rs
        .get("/projects/7", Some(&format!("Bearer {valid}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(rs.send(Method::GET, "/projects/1", Some(5)).await, 200);

    assert_eq!(
        stop_and_read(rs, idp, &schema).await,
        [
            row(5, "/projects/{id}", "rs", 1),
            row(42, "/login/jwt", "layer", 1),
            row(42, "/projects/{id}", "rs", 1),
        ]
    );
}
