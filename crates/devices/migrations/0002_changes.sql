-- The registry's change log: one row per change of a device's description
-- (registration, status, firmware, metadata, group membership), holding the
-- description *after* the change as JSON. Pipelines follow it to keep device
-- metadata current while they run (`Registry::changes_since`).
--
-- `seq` comes from the one-row counter below, bumped inside the changing
-- transaction: the row lock orders writers, so sequence order is commit
-- order and a reader that has seen seq N has seen every change before N.
CREATE TABLE registry_seq (
    id BIGINT PRIMARY KEY,
    n BIGINT NOT NULL
);

INSERT INTO registry_seq (id, n) VALUES (1, 0);

CREATE TABLE device_changes (
    seq BIGINT PRIMARY KEY,
    device_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    info TEXT
);

CREATE INDEX device_changes_at ON device_changes (changed_at);
