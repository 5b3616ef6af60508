-- Keys of writes that may be retried; see lintas_common::idempotency.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    -- SHA-256 of the request without its key, to reject reuse with another request.
    request_hash TEXT NOT NULL,
    -- Encoded protobuf response of the first request.
    response     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
