-- The counter views exist from the start, every series at 0 after a reset,
-- and resetting is not for PUBLIC.
SET search_path = public, ptm;

SELECT ptm.reset_counters() <= now() + interval '1 minute' AS reset_done;
SELECT count(*) > 0 AS has_series, sum(value) AS total FROM ptm.metrics;

-- Every label value of a family is there before anything happened.
SELECT metric, labels FROM ptm.metrics
 WHERE metric IN ('lease_acquisitions_total', 'ptm_commit_total', 'ptm_claim_total')
 ORDER BY metric, labels::text;

SELECT stats_reset > now() - interval '1 minute' AS recently_reset FROM ptm.stat_info;

-- reset_counters() is revoked from PUBLIC; pg_monitor may read the views.
CREATE ROLE ptm_test_nobody;
SET ROLE ptm_test_nobody;
SELECT ptm.reset_counters();
RESET ROLE;
GRANT pg_monitor TO ptm_test_nobody;
SET ROLE ptm_test_nobody;
SELECT count(*) > 0 AS monitor_can_read FROM ptm.metrics;
RESET ROLE;
DROP ROLE ptm_test_nobody;
