-- Keys of writes that may be retried (CreateOrder, ProcessPayment); see
-- lintas_common::idempotency.
CREATE TABLE idempotency_keys (
    -- RPC the key belongs to, so one key may serve two RPCs.
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    -- SHA-256 of the request without its key, to reject reuse with another request.
    request_hash TEXT NOT NULL,
    -- Encoded protobuf response of the first request, without metadata.
    response     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Expired keys are deleted by age.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
