-- Tables of the fault-injection suite (docs/faults.md), in the test database.
-- fault.writes is the template of each agent's own table fault.writes_<agent>
-- (created by the agent with LIKE ... INCLUDING ALL); ids come from one
-- sequence, so they order inserts across every agent's table.
CREATE SCHEMA fault;
CREATE SEQUENCE fault.write_id_seq;
CREATE TABLE fault.writes (
    id           bigint      PRIMARY KEY DEFAULT nextval('fault.write_id_seq'),
    topic        text        NOT NULL,
    partition_id integer     NOT NULL,
    agent_id     text        NOT NULL,
    epoch        bigint      NOT NULL,
    seq          bigint      NOT NULL,
    written_at   timestamptz NOT NULL
);
-- One row per 'acquired' answer, inserted by the statement that called
-- acquire_partition_lease: its xmin is the transaction that raised the epoch.
CREATE TABLE fault.acquisitions (
    id           bigint      PRIMARY KEY DEFAULT nextval('fault.write_id_seq'),
    topic        text        NOT NULL,
    partition_id integer     NOT NULL,
    agent_id     text        NOT NULL,
    epoch        bigint      NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE ROLE agent LOGIN;
SELECT ptm.grant_agent('agent');
GRANT USAGE, CREATE ON SCHEMA fault TO agent;
GRANT USAGE ON SEQUENCE fault.write_id_seq TO agent;
GRANT SELECT ON fault.writes TO agent;
GRANT INSERT ON fault.acquisitions TO agent;
