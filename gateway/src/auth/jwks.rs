//! Public keys of RS256 and ES256 tokens, from a JWKS file or URL, kept
//! fresh: loaded again once they are older than the refresh interval, and
//! at once when a token names a key id not seen yet (at most every
//! [`MIN_RELOAD_GAP`]), so a rotated key works without a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::verify::TokenError;

/// Shortest time between two loads triggered by unknown key ids, so that
/// tokens with made-up ids cannot make the gateway hammer the key server.
const MIN_RELOAD_GAP: Duration = Duration::from_secs(30);

/// Upper bound on fetching a JWKS URL.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document read, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// An `https` URL, or `http` on a loopback address.
    Url(String),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(formatter, "{}", path.display()),
            JwksSource::Url(url) => formatter.write_str(url),
        }
    }
}

struct Loaded {
    keys: Vec<Jwk>,
    /// When the keys were loaded; `None` until the first success.
    at: Option<Instant>,
    /// When the last load was tried, successful or not.
    tried: Option<Instant>,
    /// Counts the loads that changed the keys.
    generation: u64,
}

/// The current key set and how to reload it.
pub struct JwksStore {
    source: JwksSource,
    refresh: Duration,
    client: reqwest::Client,
    loaded: RwLock<Loaded>,
    /// Held while a load runs, so that concurrent requests start one load.
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl JwksStore {
    /// Checks the source; a file is read now, so that a wrong path stops the
    /// gateway at start. A URL is fetched on first use.
    pub fn new(source: JwksSource, refresh: Duration) -> anyhow::Result<Self> {
        let mut loaded = Loaded {
            keys: Vec::new(),
            at: None,
            tried: None,
            generation: 0,
        };
        match &source {
            JwksSource::File(path) => {
                let text = std::fs::read(path)
                    .map_err(|error| anyhow::anyhow!("JWKS file {}: {error}", path.display()))?;
                loaded.keys = parse(&text)
                    .map_err(|error| anyhow::anyhow!("JWKS file {}: {error}", path.display()))?;
                loaded.at = Some(Instant::now());
                loaded.tried = loaded.at;
            }
            JwksSource::Url(url) => check_url(url)?,
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            source,
            refresh,
            client,
            loaded: RwLock::new(loaded),
            loading: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Returns a number that changes whenever the keys change, so that
    /// what was verified with older keys can be checked again.
    pub fn generation(&self) -> u64 {
        self.loaded
            .read()
            .unwrap_or_else(|error| error.into_inner())
            .generation
    }

    /// Returns the key that checks a token signed with `alg` under `kid`.
    pub async fn key(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        let (stale, never_loaded) = {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(|error| error.into_inner());
            let stale = loaded.at.is_none_or(|at| at.elapsed() >= self.refresh);
            (stale, loaded.at.is_none())
        };
        if stale {
            self.reload(never_loaded).await;
        }
        if let Some(key) = self.find(alg, kid)? {
            return Ok(key);
        }
        if kid.is_some() && self.may_reload_now() {
            self.reload(true).await;
            if let Some(key) = self.find(alg, kid)? {
                return Ok(key);
            }
        }
        Err(TokenError::Invalid(match kid {
            Some(_) => "token key id (kid) matches no known signing key".to_owned(),
            None => "token has no key id (kid) and no single signing key fits it".to_owned(),
        }))
    }

    /// Looks `kid` up; without a kid, takes the only key fit for `alg`.
    fn find(&self, alg: Algorithm, kid: Option<&str>) -> Result<Option<DecodingKey>, TokenError> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(|error| error.into_inner());
        if loaded.at.is_none() {
            return Err(TokenError::KeysUnavailable(format!(
                "the JWKS at {} could not be loaded",
                self.source
            )));
        }
        let fits = |jwk: &&Jwk| fits(jwk, alg);
        let candidate = match kid {
            Some(kid) => loaded
                .keys
                .iter()
                .find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
            None => {
                let mut fitting = loaded.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        };
        let Some(jwk) = candidate else {
            return Ok(None);
        };
        if !fits(&jwk) {
            return Err(TokenError::Invalid(format!(
                "token algorithm {alg:?} does not match its signing key"
            )));
        }
        DecodingKey::from_jwk(jwk)
            .map(Some)
            .map_err(|_| TokenError::KeysUnavailable("a JWKS key is malformed".to_owned()))
    }

    fn may_reload_now(&self) -> bool {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(|error| error.into_inner());
        loaded
            .tried
            .is_none_or(|tried| tried.elapsed() >= MIN_RELOAD_GAP)
    }

    /// Loads the keys again. With `wait`, waits for a load already running;
    /// without, leaves it to that load and goes on with the current keys.
    async fn reload(&self, wait: bool) {
        let _guard = if wait {
            let guard = self.loading.lock().await;
            // Another request may have loaded the keys while this one waited.
            let fresh = self
                .loaded
                .read()
                .unwrap_or_else(|error| error.into_inner())
                .tried
                .is_some_and(|tried| tried.elapsed() < Duration::from_millis(100));
            if fresh {
                return;
            }
            guard
        } else {
            match self.loading.try_lock() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        let result = self.fetch().await;
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(|error| error.into_inner());
        loaded.tried = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::info!(source = %self.source, keys = keys.len(), "JWKS loaded");
                if loaded.keys != keys {
                    loaded.generation += 1;
                }
                loaded.keys = keys;
                loaded.at = loaded.tried;
            }
            // The old keys stay in use until a load succeeds.
            Err(error) => tracing::warn!(source = %self.source, %error, "JWKS load failed"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<Vec<Jwk>> {
        let bytes = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path).await?,
            JwksSource::Url(url) => {
                let response = self.client.get(url).send().await?.error_for_status()?;
                if response
                    .content_length()
                    .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
                {
                    anyhow::bail!("JWKS is larger than {MAX_JWKS_BYTES} bytes");
                }
                let bytes = response.bytes().await?;
                anyhow::ensure!(
                    bytes.len() <= MAX_JWKS_BYTES,
                    "JWKS is larger than {MAX_JWKS_BYTES} bytes"
                );
                bytes.to_vec()
            }
        };
        parse(&bytes)
    }
}

/// Parses a JWKS document, keeping the RSA and P-256 keys meant for
/// signatures.
fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Jwk>> {
    let set: JwkSet = serde_json::from_slice(bytes)
        .map_err(|error| anyhow::anyhow!("not a JWKS document: {error}"))?;
    let keys: Vec<Jwk> = set
        .keys
        .into_iter()
        .filter(|jwk| fits(jwk, Algorithm::RS256) || fits(jwk, Algorithm::ES256))
        .collect();
    anyhow::ensure!(
        !keys.is_empty(),
        "no RS256 or ES256 signing key in the JWKS"
    );
    Ok(keys)
}

/// Tells whether `jwk` may check a token signed with `alg`: the key type
/// must match, and so must the key's own `alg` when it names one.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(params), Algorithm::ES256) => {
            params.curve == jsonwebtoken::jwk::EllipticCurve::P256
        }
        _ => false,
    };
    let alg_fits = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    let for_signing = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|usage| *usage == jsonwebtoken::jwk::PublicKeyUse::Signature);
    type_fits && alg_fits && for_signing
}

/// Accepts `https` URLs, and `http` ones on loopback only: keys fetched in
/// plain text could be swapped on the way.
fn check_url(url: &str) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|error| anyhow::anyhow!("JWKS URL {url}: {error}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        scheme => anyhow::bail!(
            "JWKS URL {url}: scheme {scheme} is not accepted; use https (http only on loopback)"
        ),
    }
}
