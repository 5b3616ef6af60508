//! The middleware in front of the API routes that turns the bearer token
//! into a [`Caller`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::challenge::{self, Facade, Problem};
use super::{AuthSettings, Caller, Identity, TokenError, Verifier};
use crate::error::ApiError;

/// Checks credentials as the settings say.
#[derive(Clone)]
pub enum Authenticator {
    Disabled,
    Jwt(Arc<Verifier>),
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        Ok(match settings {
            AuthSettings::Disabled => Self::Disabled,
            AuthSettings::Jwt(jwt) => Self::Jwt(Arc::new(Verifier::new(jwt)?)),
        })
    }
}

/// The outcome of checking a request's bearer token, kept in the request
/// so that the rate limiter can key on the subject. Absent when the request
/// carries no `Authorization` header.
#[derive(Clone)]
pub struct Identified(pub Result<Identity, Rejection>);

/// Checks the bearer token of every request that has one, before the rate
/// limit: a request with a valid token is limited by its subject. Whether
/// the route needs a token is left to [`authenticate`].
pub async fn identify<F>(
    authenticator: &Authenticator,
    mut request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response
where
    F: std::future::Future<Output = Response>,
{
    if let Authenticator::Jwt(verifier) = authenticator {
        let outcome = match authorization(request.headers()) {
            Ok(None) => None,
            Ok(Some(header)) => Some(check(verifier, header).await),
            Err(rejection) => Some(Err(rejection)),
        };
        if let Some(outcome) = outcome {
            request.extensions_mut().insert(Identified(outcome));
        }
    }
    next(request).await
}

/// Admits a request with a valid bearer token, and puts its [`Caller`] in
/// the request, and in the response for the audit line. The GraphiQL page
/// is public: it only loads the playground, which sends the token itself.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let facade = if request.uri().path() == crate::graphql::GRAPHQL_PATH {
        Facade::Graphql
    } else {
        Facade::Rest
    };
    if facade == Facade::Graphql && crate::graphql::is_playground_request(&request) {
        return next.run(request).await;
    }
    let caller = match &authenticator {
        Authenticator::Disabled => Caller::Unchecked,
        Authenticator::Jwt(verifier) => {
            let identified = request.extensions().get::<Identified>().cloned();
            let outcome = match identified {
                Some(Identified(outcome)) => outcome,
                // Served without `identify` in front.
                None => match authorization(request.headers()) {
                    Ok(Some(header)) => check(verifier, header).await,
                    Ok(None) => Err(Rejection::Unauthorized(
                        Problem::Missing,
                        "authentication required: send Authorization: Bearer <token>".to_owned(),
                    )),
                    Err(rejection) => Err(rejection),
                },
            };
            match outcome {
                Ok(identity) => Caller::Authenticated(identity),
                Err(rejection) => return rejection.respond(facade),
            }
        }
    };
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// Why a request was not admitted.
#[derive(Debug, Clone)]
pub enum Rejection {
    Unauthorized(Problem, String),
    /// The keys could not be loaded: not the client's fault.
    KeysUnavailable,
}

impl Rejection {
    fn respond(self, facade: Facade) -> Response {
        match self {
            Rejection::Unauthorized(problem, detail) => {
                challenge::unauthorized(facade, problem, &detail)
            }
            Rejection::KeysUnavailable => challenge::respond(
                facade,
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "the keys that check tokens are unavailable, retry later",
                ),
            ),
        }
    }
}

/// Returns the `Authorization` header; a request that sends it twice is
/// rejected, because which copy counts would be a guess.
fn authorization(headers: &HeaderMap) -> Result<Option<HeaderValue>, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(Rejection::Unauthorized(
            Problem::MalformedHeader,
            "send the Authorization header once".to_owned(),
        )),
        (first, None) => Ok(first.cloned()),
        (None, Some(_)) => Ok(None),
    }
}

async fn check(verifier: &Verifier, authorization: HeaderValue) -> Result<Identity, Rejection> {
    let token = authorization
        .to_str()
        .ok()
        .and_then(|text| text.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Rejection::Unauthorized(
                Problem::MalformedHeader,
                "Authorization header must be Bearer followed by a token".to_owned(),
            )
        })?;
    if token == crate::graphql::playground::TOKEN_PLACEHOLDER {
        return Err(Rejection::Unauthorized(
            Problem::InvalidToken,
            "replace PASTE-YOUR-TOKEN-HERE in the Headers tab with a token".to_owned(),
        ));
    }
    match verifier.verify(token).await {
        Ok(identity) => Ok(identity),
        Err(TokenError::Invalid(detail)) => {
            Err(Rejection::Unauthorized(Problem::InvalidToken, detail))
        }
        Err(error @ TokenError::KeysUnavailable(_)) => {
            tracing::warn!(%error, "token not checked");
            Err(Rejection::KeysUnavailable)
        }
    }
}
