//! Bearer token checks at the gateway: what gets in and what gets 401,
//! with HS256 secrets and RS256/ES256 keys from a JWKS file or URL.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{AUDIENCE, ISSUER, Platform, SECRET};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid admin token; tests change one of them.
fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "ops-1",
        "iat": now(), "nbf": now() - 5, "exp": now() + 600, "roles": ["admin"],
    })
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        None,
        claims,
    )
}

fn rsa_key(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(file)).unwrap()).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap()
}

/// A platform that takes HS256 tokens and the keys of `jwks`.
async fn start(jwks: gateway::JwksSource, refresh: Duration) -> Platform {
    common::start_with(|settings| {
        let mut jwt = gateway::JwtSettings::hs256(SECRET, ISSUER, AUDIENCE);
        jwt.jwks = Some(jwks);
        jwt.jwks_refresh = refresh;
        settings.auth = gateway::AuthSettings::Jwt(jwt);
    })
    .await
}

/// Status, body and `WWW-Authenticate` of a REST read sent with `header`
/// as its `Authorization` value.
async fn read_users(platform: &Platform, header: Option<&str>) -> (StatusCode, Value, String) {
    let mut request = reqwest::Client::new().get(platform.url("/api/v1/users?page_size=1"));
    if let Some(header) = header {
        request = request.header("authorization", header);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

async fn assert_rejected(platform: &Platform, token: &str, detail: &str, case: &str) {
    let (status, body, challenge) = read_users(platform, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["code"], "UNAUTHENTICATED", "{case}");
    assert!(
        body["detail"].as_str().unwrap().contains(detail),
        "{case}: {body}"
    );
    assert!(
        challenge.starts_with("Bearer realm=\"lintas\", error=\"invalid_token\""),
        "{case}: {challenge}"
    );
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_get_in() {
    let platform = start(
        gateway::JwksSource::File(fixture("jwks.json")),
        Duration::from_secs(300),
    )
    .await;
    let tokens = [
        ("HS256", hs256(&claims())),
        (
            "RS256",
            sign(
                Algorithm::RS256,
                &rsa_key("rsa-private.pem"),
                Some("rsa-1"),
                &claims(),
            ),
        ),
        (
            "ES256",
            sign(Algorithm::ES256, &ec_key(), Some("ec-1"), &claims()),
        ),
        // Without a kid, the only key of the token's type is used.
        (
            "ES256 without kid",
            sign(Algorithm::ES256, &ec_key(), None, &claims()),
        ),
    ];
    for (case, token) in tokens {
        let (status, body, _) = read_users(&platform, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
    }
    // The scheme name is case-insensitive (RFC 7235).
    let token = hs256(&claims());
    let (status, _, _) = read_users(&platform, Some(&format!("bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_and_malformed_credentials_get_a_challenge() {
    let platform = common::start().await;
    let (status, body, challenge) = read_users(&platform, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "UNAUTHENTICATED");
    assert_eq!(challenge, "Bearer realm=\"lintas\"");

    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "token-without-scheme",
    ] {
        let (status, body, challenge) = read_users(&platform, Some(header)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}: {body}");
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{header}: {challenge}"
        );
    }
    // Two Authorization headers, even both valid, are one too many.
    let token = format!("Bearer {}", hs256(&claims()));
    let response = reqwest::Client::new()
        .get(platform.url("/api/v1/users?page_size=1"))
        .header("authorization", &token)
        .header("authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );

    // The playground's placeholder gets a hint.
    let (status, body, _) = read_users(&platform, Some("Bearer PASTE-YOUR-TOKEN-HERE")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("replace PASTE-YOUR-TOKEN-HERE"),
        "{body}"
    );

    for garbage in ["abc", "a.b.c", "....", &"x".repeat(9000)] {
        let (status, body, _) = read_users(&platform, Some(&format!("Bearer {garbage}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[tokio::test]
async fn tokens_with_bad_claims_are_rejected() {
    let platform = common::start().await;
    let with = |field: &str, value: Value| {
        let mut claims = claims();
        claims[field] = value;
        hs256(&claims)
    };
    let without = |field: &str| {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(field);
        hs256(&claims)
    };
    // The default leeway is 30 seconds.
    let cases = [
        ("expired", with("exp", json!(now() - 120)), "expired"),
        (
            "not yet valid",
            with("nbf", json!(now() + 120)),
            "not valid yet",
        ),
        (
            "wrong issuer",
            with("iss", json!("https://evil.test")),
            "issuer",
        ),
        (
            "wrong audience",
            with("aud", json!("other-api")),
            "audience",
        ),
        ("no expiry", without("exp"), "exp"),
        ("no subject", without("sub"), "sub"),
        ("empty subject", with("sub", json!("")), "subject"),
        ("subject with spaces", with("sub", json!("a b")), "subject"),
        (
            "roles not strings",
            with("roles", json!({ "admin": true })),
            "roles",
        ),
    ];
    for (case, token, detail) in cases {
        assert_rejected(&platform, &token, detail, case).await;
    }
    // Expired less than the leeway ago still gets in.
    let (status, body, _) = read_users(
        &platform,
        Some(&format!("Bearer {}", with("exp", json!(now() - 10)))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_rejected() {
    let platform = common::start().await;
    let encode = |value: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        encode(&json!({ "alg": "none", "typ": "JWT" })),
        encode(&claims())
    );
    assert_rejected(
        &platform,
        &unsigned,
        "algorithm \"none\" is not accepted; accepted: HS256",
        "alg none",
    )
    .await;
    // Headers that are JSON but that jsonwebtoken cannot read, and one with
    // a critical extension, which no verifier step processes.
    let with_header = |header: Value| format!("{}.{}.", encode(&header), encode(&claims()));
    for (header, detail) in [
        (
            json!({ "alg": "HS256", "kid": 5 }),
            "header has a field of the wrong type",
        ),
        (json!({ "alg": 7 }), "header lacks an alg string"),
        (json!({ "typ": "JWT" }), "header lacks an alg string"),
        (
            json!({ "alg": "" }),
            "token algorithm is not accepted; accepted: HS256",
        ),
        (
            json!({ "alg": "X".repeat(40) }),
            "token algorithm is not accepted",
        ),
        (
            json!({ "alg": "HS256", "crit": ["exp"] }),
            "critical extensions (crit)",
        ),
    ] {
        let case = header.to_string();
        assert_rejected(&platform, &with_header(header), detail, &case).await;
    }

    let hs512 = sign(
        Algorithm::HS512,
        &EncodingKey::from_secret(SECRET),
        None,
        &claims(),
    );
    assert_rejected(&platform, &hs512, "not accepted", "HS512").await;

    let other_secret = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
        None,
        &claims(),
    );
    assert_rejected(&platform, &other_secret, "signature", "other secret").await;

    // A regular user's token whose payload was edited to claim admin.
    let mut user = claims();
    user["roles"] = json!(["user"]);
    let token = hs256(&user);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], encode(&claims()), parts[2]);
    assert_rejected(&platform, &forged, "signature", "edited payload").await;

    // RS256 is rejected where only an HS256 secret is configured.
    let rs256 = sign(
        Algorithm::RS256,
        &rsa_key("rsa-private.pem"),
        Some("rsa-1"),
        &claims(),
    );
    assert_rejected(&platform, &rs256, "not accepted", "RS256 without JWKS").await;
}

#[tokio::test]
async fn jwks_keys_must_match_the_token() {
    let platform = start(
        gateway::JwksSource::File(fixture("jwks.json")),
        Duration::from_secs(300),
    )
    .await;
    // The RSA public key used as an HMAC secret: the classic confusion.
    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        Some("rsa-1"),
        &claims(),
    );
    assert_rejected(
        &platform,
        &confused,
        "signature",
        "public key as HMAC secret",
    )
    .await;

    let unknown_kid = sign(
        Algorithm::RS256,
        &rsa_key("rsa-private.pem"),
        Some("nope"),
        &claims(),
    );
    assert_rejected(&platform, &unknown_kid, "kid", "unknown kid").await;

    let wrong_family = sign(Algorithm::ES256, &ec_key(), Some("rsa-1"), &claims());
    assert_rejected(
        &platform,
        &wrong_family,
        "does not match",
        "ES256 under an RSA kid",
    )
    .await;

    let unlisted_key = sign(
        Algorithm::RS256,
        &rsa_key("rsa2-private.pem"),
        Some("rsa-1"),
        &claims(),
    );
    assert_rejected(&platform, &unlisted_key, "signature", "key not in the JWKS").await;
}

/// Serves a JWKS that the test can replace, and counts fetches.
struct KeyServer {
    url: String,
    body: Arc<Mutex<String>>,
    fetches: Arc<Mutex<usize>>,
}

impl KeyServer {
    async fn start(file: &str) -> Self {
        let body = Arc::new(Mutex::new(std::fs::read_to_string(fixture(file)).unwrap()));
        let fetches = Arc::new(Mutex::new(0));
        let (served, counted) = (body.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                *counted.lock().unwrap() += 1;
                let text = served.lock().unwrap().clone();
                async move { text }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, body, fetches }
    }
}

#[tokio::test]
async fn keys_from_a_url_are_fetched_once_and_rotated() {
    let keys = KeyServer::start("jwks.json").await;
    let platform = start(
        gateway::JwksSource::Url(keys.url.clone()),
        Duration::from_secs(1),
    )
    .await;
    let first = sign(
        Algorithm::RS256,
        &rsa_key("rsa-private.pem"),
        Some("rsa-1"),
        &claims(),
    );
    for _ in 0..5 {
        let (status, body, _) = read_users(&platform, Some(&format!("Bearer {first}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        *keys.fetches.lock().unwrap(),
        1,
        "keys are cached between requests"
    );

    // The identity provider rotates its key; after the refresh interval
    // the new key works and the old one stops working.
    *keys.body.lock().unwrap() = std::fs::read_to_string(fixture("jwks-rotated.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rotated = sign(
        Algorithm::RS256,
        &rsa_key("rsa2-private.pem"),
        Some("rsa-2"),
        &claims(),
    );
    let (status, body, _) = read_users(&platform, Some(&format!("Bearer {rotated}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_rejected(&platform, &first, "kid", "retired key").await;
}

#[tokio::test]
async fn an_unreachable_key_server_is_not_the_clients_fault() {
    // A loopback port that nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let platform = start(gateway::JwksSource::Url(url), Duration::from_secs(300)).await;
    let token = sign(
        Algorithm::RS256,
        &rsa_key("rsa-private.pem"),
        Some("rsa-1"),
        &claims(),
    );
    let (status, body, _) = read_users(&platform, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE");
    // HS256 tokens do not depend on the key server.
    let (status, _, _) = read_users(&platform, Some(&format!("Bearer {}", hs256(&claims())))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_settings_stop_the_gateway_at_start() {
    let cases = [
        (
            gateway::JwtSettings::hs256(b"short".to_vec(), ISSUER, AUDIENCE),
            "at least 32",
        ),
        (
            gateway::JwtSettings {
                hs256_secret: None,
                jwks: Some(gateway::JwksSource::File(fixture("missing.json"))),
                ..gateway::JwtSettings::hs256(SECRET, ISSUER, AUDIENCE)
            },
            "missing.json",
        ),
        (
            gateway::JwtSettings {
                jwks: Some(gateway::JwksSource::Url(
                    "http://keys.example.com/jwks".to_owned(),
                )),
                ..gateway::JwtSettings::hs256(SECRET, ISSUER, AUDIENCE)
            },
            "https",
        ),
        (gateway::JwtSettings::hs256(SECRET, ISSUER, " "), "audience"),
    ];
    for (jwt, expected) in cases {
        let mut settings = common::settings("http://127.0.0.1:9", "http://127.0.0.1:9");
        settings.auth = gateway::AuthSettings::Jwt(jwt);
        let error = gateway::app(&settings).unwrap_err();
        assert!(
            format!("{error:#}").contains(expected),
            "{expected}: {error:#}"
        );
    }
}

#[tokio::test]
async fn graphql_without_a_token_gets_unauthenticated_but_the_playground_loads() {
    let platform = common::start().await;
    let response = reqwest::Client::new()
        .post(platform.url("/graphql"))
        .json(&json!({ "query": "{ userMetrics { total } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"lintas\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );

    let page = reqwest::Client::new()
        .get(platform.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Authorization"));
}
