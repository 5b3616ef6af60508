//! What the cache stores per user id, how it is encoded, and the rule that
//! decides whether a write may replace what is stored.
//!
//! Both stores apply the same rule: the in-process store in
//! [`Write::replaces`], Redis in the Lua script of `redis_store`.

use std::time::Duration;

use lintas_proto::user::v1 as user_pb;
use prost::Message;

/// Version of the key layout and value encoding. Changing either means a new
/// version, so a gateway never decodes entries written by another layout.
const KEY_SCHEMA: &str = "v1";

/// First byte of an encoded [`Entry::Found`], followed by the user's version
/// in decimal, a colon and the protobuf-encoded user.
pub(super) const FOUND_TAG: u8 = b'P';
/// Encoded [`Entry::NotFound`].
pub(super) const NOT_FOUND_TAG: u8 = b'N';
/// Encoded [`Entry::Deleted`].
pub(super) const DELETED_TAG: u8 = b'T';

/// A cached result of looking up one user id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// The user as the user service returned it.
    Found(user_pb::User),
    /// The user service returned NOT_FOUND.
    NotFound,
    /// Tombstone of a user deleted through the gateway. Nothing replaces it
    /// before it expires, so a slow read that fetched the user before the
    /// delete cannot write the user back.
    Deleted,
}

/// A change to one cache entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    /// Stores a user unless the entry contains a newer version or a tombstone.
    Fill { user: user_pb::User, ttl: Duration },
    /// Records a NOT_FOUND result when the key is empty.
    NotFound { ttl: Duration },
    /// Marks the user deleted, whatever the key holds.
    Tombstone { ttl: Duration },
    /// Drops the entry. Used when the outcome of a write is unknown, so no
    /// version is known to store.
    Remove,
}

impl Entry {
    /// Returns the user, or `None` for a NOT_FOUND result or a tombstone.
    pub fn into_user(self) -> Option<user_pb::User> {
        match self {
            Self::Found(user) => Some(user),
            Self::NotFound | Self::Deleted => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Found(user) => encode_found(user),
            Self::NotFound => vec![NOT_FOUND_TAG],
            Self::Deleted => vec![DELETED_TAG],
        }
    }

    /// Decodes a stored value; `None` for bytes this layout did not write,
    /// which the caller treats as a miss.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first()? {
            (&NOT_FOUND_TAG, []) => Some(Self::NotFound),
            (&DELETED_TAG, []) => Some(Self::Deleted),
            (&FOUND_TAG, rest) => {
                let colon = rest.iter().position(|&byte| byte == b':')?;
                let version: i64 = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
                let user = user_pb::User::decode(&rest[colon + 1..]).ok()?;
                (user.version == version).then_some(Self::Found(user))
            }
            _ => None,
        }
    }
}

impl Write {
    /// Decides whether this write may replace `current`, the live entry of
    /// its key (`None` when the key is empty).
    ///
    /// A fill loses to a newer version and to a tombstone, so a slow read
    /// cannot write back a user that an update or delete already replaced.
    /// A fill of the same version goes through and renews the TTL.
    pub fn replaces(&self, current: Option<&Entry>) -> bool {
        match (self, current) {
            (Self::Fill { .. }, None | Some(Entry::NotFound)) => true,
            (Self::Fill { .. }, Some(Entry::Deleted)) => false,
            (Self::Fill { user, .. }, Some(Entry::Found(stored))) => stored.version <= user.version,
            (Self::NotFound { .. }, current) => current.is_none(),
            (Self::Tombstone { .. } | Self::Remove, _) => true,
        }
    }

    /// Returns the entry this write stores, or `None` for [`Write::Remove`].
    pub fn entry(&self) -> Option<(Entry, Duration)> {
        match self {
            Self::Fill { user, ttl } => Some((Entry::Found(user.clone()), *ttl)),
            Self::NotFound { ttl } => Some((Entry::NotFound, *ttl)),
            Self::Tombstone { ttl } => Some((Entry::Deleted, *ttl)),
            Self::Remove => None,
        }
    }
}

/// Encodes a found user without cloning it.
pub(super) fn encode_found(user: &user_pb::User) -> Vec<u8> {
    let version = user.version.to_string();
    let mut bytes = Vec::with_capacity(2 + version.len() + user.encoded_len());
    bytes.push(FOUND_TAG);
    bytes.extend_from_slice(version.as_bytes());
    bytes.push(b':');
    user.encode(&mut bytes)
        .expect("a Vec grows to fit the message");
    bytes
}

/// Builds the cache key of a user id: `{prefix}:user:v1:{uuid}`.
///
/// The user service parses ids as UUIDs, so `0190ABCD-…` and `0190abcd-…`
/// name the same user. The key uses the canonical lowercase hyphenated form,
/// so both share one entry. Returns `None` for an id that is not a UUID,
/// because the user service rejects it and there is nothing to cache.
pub(crate) fn user_key(prefix: &str, id: &str) -> Option<String> {
    let id = uuid::Uuid::parse_str(id).ok()?;
    Some(format!("{prefix}:user:{KEY_SCHEMA}:{}", id.hyphenated()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn user(version: i64) -> user_pb::User {
        user_pb::User {
            id: "0190f0f0-0000-7000-8000-000000000001".to_owned(),
            name: format!("Siti v{version}"),
            email: "siti@example.com".to_owned(),
            version,
            ..Default::default()
        }
    }

    fn fill(version: i64) -> Write {
        Write::Fill {
            user: user(version),
            ttl: TTL,
        }
    }

    #[test]
    fn entries_round_trip() {
        for entry in [Entry::Found(user(7)), Entry::NotFound, Entry::Deleted] {
            assert_eq!(
                Entry::decode(&entry.encode()),
                Some(entry.clone()),
                "{entry:?}"
            );
        }
    }

    #[test]
    fn found_encoding_starts_with_version() {
        let bytes = Entry::Found(user(42)).encode();
        assert!(bytes.starts_with(b"P42:"), "{bytes:?}");
    }

    #[test]
    fn foreign_bytes_decode_as_none() {
        let mismatched_version = {
            let mut bytes = b"P9:".to_vec();
            bytes.extend(user(8).encode_to_vec());
            bytes
        };
        for bytes in [
            b"".to_vec(),
            b"X".to_vec(),
            b"N1".to_vec(),
            b"P".to_vec(),
            b"Pabc:".to_vec(),
            b"P1:\xff\xff".to_vec(),
            mismatched_version,
        ] {
            assert_eq!(Entry::decode(&bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn fill_loses_to_newer_version_and_tombstone() {
        assert!(fill(2).replaces(None));
        assert!(fill(2).replaces(Some(&Entry::NotFound)));
        assert!(fill(2).replaces(Some(&Entry::Found(user(1)))));
        assert!(fill(2).replaces(Some(&Entry::Found(user(2)))));
        assert!(!fill(2).replaces(Some(&Entry::Found(user(3)))));
        assert!(!fill(2).replaces(Some(&Entry::Deleted)));
    }

    #[test]
    fn not_found_only_fills_empty_key() {
        let write = Write::NotFound { ttl: TTL };
        assert!(write.replaces(None));
        assert!(!write.replaces(Some(&Entry::NotFound)));
        assert!(!write.replaces(Some(&Entry::Found(user(1)))));
        assert!(!write.replaces(Some(&Entry::Deleted)));
    }

    #[test]
    fn tombstone_and_remove_always_apply() {
        for write in [Write::Tombstone { ttl: TTL }, Write::Remove] {
            assert!(write.replaces(None));
            assert!(write.replaces(Some(&Entry::Found(user(9)))));
            assert!(write.replaces(Some(&Entry::Deleted)));
        }
    }

    #[test]
    fn key_is_canonical_uuid() {
        let lower = user_key("p", "0190f0f0-0000-7000-8000-00000000000a");
        let upper = user_key("p", "0190F0F0-0000-7000-8000-00000000000A");
        assert_eq!(
            lower.as_deref(),
            Some("p:user:v1:0190f0f0-0000-7000-8000-00000000000a")
        );
        assert_eq!(upper, lower);
    }

    #[test]
    fn key_rejects_non_uuid() {
        for id in ["", "42", "not-a-uuid", "0190f0f0-0000-7000-8000"] {
            assert_eq!(user_key("p", id), None, "{id}");
        }
    }
}
