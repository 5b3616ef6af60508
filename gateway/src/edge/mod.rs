//! Protections at the HTTP edge, applied around every route before a
//! handler runs: CORS (`cors`) and security headers on every response
//! (`security_headers`).

pub mod cors;
pub mod security_headers;
