//! The context every backend operation runs in.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Caller;
use crate::request_id::RequestId;

/// One request's id and caller, as handlers pass them to
/// [`crate::api::Api`].
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub caller: Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RequestId(request_id) = RequestId::from_request_parts(parts, state).await?;
        // A route mounted without the authentication middleware has no
        // caller, and gets the one that every rule rejects.
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous);
        Ok(Self { request_id, caller })
    }
}
