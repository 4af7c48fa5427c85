-- Eras of lease epochs (src/epochs.c, docs/operations.md).  An asynchronous
-- standby promoted without the old primary's last WAL, or a point-in-time
-- recovery, would count the epoch sequence over values already handed out.
-- Each timeline is an era instead: epochs are lifted to
--   ((timeline - 1) + max(era_offset)) * 10^15
-- before the first one of a new timeline is taken, so a cluster that never
-- failed over keeps small epochs (era 0).  A row here moves every later
-- timeline one era further: ptm.advance_epoch_era() adds one after a restore
-- from a logical dump, which keeps the timeline's count.
CREATE TABLE ptm.epoch_eras (
    era_offset  integer     NOT NULL CHECK (era_offset > 0),
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    reason      text
);
COMMENT ON TABLE ptm.epoch_eras IS
  'Era offsets of lease epochs: era = (timeline - 1) + max(era_offset); written by ptm.advance_epoch_era()';
-- Dumped: a restored database must stay in (or past) the era it was dumped in.
SELECT pg_catalog.pg_extension_config_dump('ptm.epoch_eras', '');
-- Lowering an era would hand epochs out again: only new rows.
CREATE TRIGGER epoch_eras_guard
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ptm.epoch_eras
  FOR EACH STATEMENT EXECUTE FUNCTION ptm._refuse_direct_dml();
REVOKE ALL ON ptm.epoch_eras FROM PUBLIC;
GRANT SELECT ON ptm.epoch_eras TO pg_monitor;

CREATE FUNCTION ptm.advance_epoch_era(reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'ptm_advance_epoch_era';
COMMENT ON FUNCTION ptm.advance_epoch_era(text) IS
  'Operator, after a restore from a logical dump: move lease epochs to the next era, above any epoch the dumped cluster could have handed out; returns the new floor (audited)';
REVOKE ALL ON FUNCTION ptm.advance_epoch_era(text) FROM PUBLIC;
