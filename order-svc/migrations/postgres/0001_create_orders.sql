-- Orders, their items and their payments. Instants are microseconds since
-- the Unix epoch; amounts are integers in the currency's minor units.
-- Ids and currency codes use the "C" collation, so keyset pages and sorted
-- results order them byte by byte, as SQLite does.
CREATE TABLE orders (
    id                TEXT COLLATE "C" PRIMARY KEY,
    -- Id of the user in the user service; not a foreign key because users
    -- live in another database.
    user_id           TEXT COLLATE "C" NOT NULL,
    -- ISO 4217 code, upper case.
    currency          TEXT COLLATE "C" NOT NULL,
    total             BIGINT NOT NULL CHECK (total >= 0),
    status            TEXT NOT NULL
        CHECK (status IN ('PENDING', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    refunded          BOOLEAN NOT NULL,
    cancel_reason     TEXT NOT NULL,
    ship_recipient    TEXT NOT NULL,
    ship_line1        TEXT NOT NULL,
    ship_line2        TEXT NOT NULL,
    ship_city         TEXT NOT NULL,
    ship_region       TEXT NOT NULL,
    ship_postal_code  TEXT NOT NULL,
    -- ISO 3166-1 alpha-2 code, upper case.
    ship_country      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    version           BIGINT NOT NULL
);

-- One index per listing order, each ending in id for keyset pagination.
CREATE INDEX orders_created_at_idx ON orders (created_at, id);
CREATE INDEX orders_updated_at_idx ON orders (updated_at, id);
CREATE INDEX orders_total_idx ON orders (total, id);
CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at, id);

CREATE TABLE order_items (
    order_id    TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
    -- Position of the item in the order, from 0, so items come back in the
    -- order they were given.
    line_number INTEGER NOT NULL,
    sku         TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_price  BIGINT NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, line_number)
);

CREATE TABLE payments (
    id             TEXT COLLATE "C" PRIMARY KEY,
    order_id       TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
    amount         BIGINT NOT NULL CHECK (amount >= 0),
    currency       TEXT COLLATE "C" NOT NULL,
    method         TEXT NOT NULL CHECK (method IN ('CARD', 'BANK_TRANSFER', 'WALLET')),
    status         TEXT NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED', 'REFUNDED')),
    -- Empty unless status is FAILED.
    failure_reason TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE INDEX payments_order_id_idx ON payments (order_id, created_at, id);
