//! Protections at the HTTP edge, applied around every route before a
//! handler runs: CORS (`cors`).

pub mod cors;
