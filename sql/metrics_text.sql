-- ptm.metrics_text() escapes what the text format requires: in label values
-- backslash, double quote and newline; in HELP backslash and newline.  Infinite
-- and NaN values are spelled +Inf, -Inf, NaN.  A series added to
-- ptm.metric_series (as a gauge computed in SQL would be) appears in its own
-- family, in name order.
BEGIN;
CREATE OR REPLACE VIEW ptm.metric_series AS
  SELECT family, type, help, metric, labels, value FROM ptm._metric_series()
  UNION ALL
  SELECT 'aaa_test_gauge', 'gauge', E'help with \\ and\nnewline', 'aaa_test_gauge',
         jsonb_build_object('i', i, 'path', E'C:\\dir', 'quote', 'say "hi"', 'nl', E'a\nb'), v
    FROM (VALUES (1, 'Infinity'::float8), (2, '-Infinity'), (3, 'NaN'), (4, 0.5)) AS t(i, v);
SELECT line
  FROM regexp_split_to_table(ptm.metrics_text(), E'\n') WITH ORDINALITY AS t(line, n)
 WHERE n <= 6
 ORDER BY n;
ROLLBACK;
