# Soak (issue 9): 32 pgbench clients run a mixed workload on four partitions
# (acquire, renew, release and force_expire with 300 ms TTLs, fenced
# try_commit with repeated action ids, apply_projection around the
# watermark) for PTM_SOAK_SECONDS (default 20; a few minutes for a real soak,
# e.g. PTM_SOAK_SECONDS=300).  Every outcome is logged in the transaction that
# produced it; afterwards the invariants are checked from those logs, the
# audit trail and the tables:
#   - no two owners at once: per partition, in epoch order, an owner's
#     interval (first acquisition to last expiry, release or forced expiry
#     from ptm.lease_audit) starts no earlier than the previous one ended;
#   - epochs rise with time, and each belongs to one agent;
#   - workflow versions are contiguous: ok commits produced 1..version once
#     each, under fence epochs that never went back;
#   - watermarks never regressed: applied offsets form one rising chain per
#     partition that ends at the watermark;
#   - no client failed, no backend crashed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = $ENV{PTM_SOAK_SECONDS} // 20;
my $clients = 32;

my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'ptm_lease'
max_connections = 50
log_statement = none
log_min_messages = error
ptm_lease.sweep_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ptm_lease;
	SELECT ptm.ensure_partitions('soak', 4);
	CREATE TABLE lease_log (partition_id int, agent_id text, epoch bigint, result text,
	                        start_ms bigint, end_ms bigint);
	CREATE TABLE commit_log (workflow_key text, action_id text, expected bigint, result text,
	                         version bigint, fence_epoch bigint);
	CREATE TABLE apply_log (partition_id int, off bigint, result text, watermark bigint,
	                        previous bigint);
});

my %scripts = (
	# take or extend a lease; its interval starts ttl before its expiry
	acquire => [ 4, q{
\set p random(0, 3)
\set a random(1, 8)
BEGIN;
INSERT INTO lease_log
SELECT r.partition_id, r.agent_id, r.lease_epoch, r.result,
       (extract(epoch FROM r.expires_at) * 1000)::bigint - 300,
       (extract(epoch FROM r.expires_at) * 1000)::bigint
  FROM ptm.acquire_partition_lease('soak', :p, 'agent-' || :a, '300 ms') r
 WHERE r.result IN ('acquired', 'held');
COMMIT;
} ],
	# the owner (as last seen) renews
	renew => [ 4, q{
\set p random(0, 3)
BEGIN;
INSERT INTO lease_log
SELECT r.partition_id, r.agent_id, r.lease_epoch, r.result,
       (extract(epoch FROM r.expires_at) * 1000)::bigint - 300,
       (extract(epoch FROM r.expires_at) * 1000)::bigint
  FROM ptm.partition_leases l,
       LATERAL ptm.renew_lease('soak', l.partition_id, l.agent_id, l.lease_epoch, '300 ms') r
 WHERE l.topic = 'soak' AND l.partition_id = :p AND l.agent_id IS NOT NULL
   AND r.result = 'renewed';
COMMIT;
} ],
	# the owner (as last seen) lets go; its interval ends now
	release => [ 1, q{
\set p random(0, 3)
BEGIN;
INSERT INTO lease_log
SELECT r.partition_id, l.agent_id, r.lease_epoch, r.result, NULL,
       (extract(epoch FROM r.expires_at) * 1000)::bigint
  FROM ptm.partition_leases l,
       LATERAL ptm.release_lease('soak', l.partition_id, l.agent_id, l.lease_epoch) r
 WHERE l.topic = 'soak' AND l.partition_id = :p AND l.agent_id IS NOT NULL
   AND r.result = 'released';
COMMIT;
} ],
	# an operator forces it (audited in ptm.lease_audit)
	force => [ 1, q{
\set p random(0, 3)
SELECT result FROM ptm.force_expire('soak', :p, 'soak');
} ],
	# a reducer commits under the current lease; the action id names the step,
	# so reducers racing for one step repeat it (and now and then a random one)
	commit => [ 4, q{
\set p random(0, 3)
\set r random(1, 10)
\set act random(1, 1000000)
BEGIN;
INSERT INTO commit_log
SELECT 'wf-' || :p, a.action_id, s.version, c.result, c.version, l.lease_epoch
  FROM ptm.partition_leases l,
       LATERAL ptm.get_state('wf-' || :p) s,
       LATERAL (SELECT CASE WHEN :r = 1 THEN 'rnd-' || :act ELSE 'step-' || s.version END AS action_id) a,
       LATERAL ptm.try_commit('wf-' || :p, s.version,
                              jsonb_build_object('agent', l.agent_id, 'epoch', l.lease_epoch),
                              a.action_id, 'soak', :p, l.lease_epoch) c
 WHERE l.topic = 'soak' AND l.partition_id = :p AND l.lease_epoch > 0;
COMMIT;
} ],
	# a materializer applies events around the watermark (new, duplicate, old)
	apply => [ 3, q{
\set p random(0, 3)
\set d random(-1, 3)
BEGIN;
INSERT INTO apply_log
SELECT :p, o.off, r.result, r.watermark, r.previous_watermark
  FROM (SELECT greatest(coalesce(max("offset"), 0) + :d, 0) AS off FROM ptm.projection_watermarks
         WHERE projection = 'soak-p' AND partition_id = :p) o,
       LATERAL ptm.apply_projection('soak-p', :p, o.off, 'k' || (o.off % 20),
                                    jsonb_build_object('o', o.off)) r;
COMMIT;
} ],
);

my @files;
for my $name (sort keys %scripts)
{
	my ($weight, $sql) = @{ $scripts{$name} };
	my $file = $node->basedir . "/soak_$name.sql";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $sql;
	close $fh;
	push @files, '-f', "$file\@$weight";
}

note("$clients clients for $seconds s");
{
	local $ENV{PGOPTIONS} = '-c client_min_messages=error';
	$node->command_ok(
		[ 'pgbench', '-n', '-c', $clients, '-j', '4', '-T', $seconds, @files,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		"pgbench: $clients clients, mixed workload, no client failed");
}

sub q1 { return $node->safe_psql('postgres', $_[0]); }

note('outcomes: ' . q1(q{
	SELECT string_agg(t || ' ' || n, ', ' ORDER BY t) FROM (
	  SELECT 'lease ' || result AS t, count(*) AS n FROM lease_log GROUP BY 1
	  UNION ALL SELECT 'commit ' || result, count(*) FROM commit_log GROUP BY 1
	  UNION ALL SELECT 'apply ' || result, count(*) FROM apply_log GROUP BY 1
	  UNION ALL SELECT 'forced', count(*) FROM ptm.lease_audit WHERE action = 'force_expire') x}));

ok(q1(q{SELECT count(DISTINCT (partition_id, epoch)) FROM lease_log WHERE result = 'acquired'}) >= 20,
	'ownership changed hands many times');
ok(q1(q{SELECT count(*) FROM ptm.lease_audit WHERE action = 'force_expire'}) >= 3,
	'operators forced leases');
ok(q1(q{SELECT count(*) FROM commit_log WHERE result = 'ok'}) >= 20, 'commits succeeded');
ok(q1(q{SELECT count(*) FROM apply_log WHERE result = 'applied'}) >= 20, 'events were applied');

# --- leases ---------------------------------------------------------------
is(q1(q{SELECT count(*) FROM (SELECT partition_id, epoch FROM lease_log
	      GROUP BY 1, 2 HAVING count(DISTINCT agent_id) > 1) x}),
	'0', 'each epoch belongs to one agent');
is(q1(q{SELECT count(*) FROM (SELECT partition_id, epoch FROM lease_log WHERE result = 'acquired'
	      GROUP BY 1, 2 HAVING count(*) > 1) x}),
	'0', 'each epoch was acquired once');

# An owner's interval: from its first acquisition to its last expiry, cut
# short by a release or a forced expiry (whose audit row names the epoch).
my $spans = q{
	WITH ends AS (
	  SELECT partition_id, epoch, min(end_ms) AS cut FROM lease_log WHERE result = 'released' GROUP BY 1, 2
	  UNION ALL
	  SELECT partition_id, previous_epoch, floor(extract(epoch FROM at) * 1000)::bigint
	    FROM ptm.lease_audit WHERE action = 'force_expire' AND topic = 'soak'),
	spans AS (
	  SELECT l.partition_id, l.epoch, min(l.start_ms) AS s,
	         least(max(l.end_ms) FILTER (WHERE l.result <> 'released'),
	               (SELECT min(cut) FROM ends e WHERE e.partition_id = l.partition_id AND e.epoch = l.epoch)) AS e
	    FROM lease_log l GROUP BY 1, 2),
	ordered AS (
	  SELECT *, lag(e) OVER w AS prev_end, lag(s) OVER w AS prev_start, lag(epoch) OVER w AS prev_epoch
	    FROM spans WINDOW w AS (PARTITION BY partition_id ORDER BY epoch))
};
is(q1($spans . q{SELECT count(*) FROM ordered WHERE s < prev_end}), '0',
	'no two owners at once: each interval starts after the previous epoch\'s ended')
  or diag(q1($spans . q{SELECT * FROM ordered WHERE s < prev_end LIMIT 10}));
is(q1($spans . q{SELECT count(*) FROM ordered WHERE s < prev_start}), '0',
	'epochs rise with time on every partition')
  or diag(q1($spans . q{SELECT * FROM ordered WHERE s < prev_start LIMIT 10}));
is(q1(q{SELECT count(*) FROM ptm.lease_audit
	     WHERE action = 'force_expire' AND NOT new_epoch > previous_epoch}),
	'0', 'every forced expiry raised the epoch');
is(q1(q{SELECT count(*) FROM ptm.partition_leases l
	     WHERE topic = 'soak' AND lease_epoch < (SELECT coalesce(max(epoch), 0) FROM lease_log g
	                                             WHERE g.partition_id = l.partition_id)}),
	'0', 'no lease row went back below an epoch it had');

# --- commits --------------------------------------------------------------
is(q1(q{SELECT count(*) FROM (
	      SELECT workflow_key, count(*) AS n, count(DISTINCT version) AS d, max(version) AS m
	        FROM commit_log WHERE result = 'ok' GROUP BY 1) x
	     JOIN ptm.workflow_state s USING (workflow_key)
	    WHERE NOT (n = d AND d = m AND m = s.version)}),
	'0', 'workflow versions are contiguous: 1..version, each committed once');
is(q1(q{SELECT count(*) FROM (
	      SELECT fence_epoch < max(fence_epoch) OVER (PARTITION BY workflow_key ORDER BY version
	                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS back
	        FROM commit_log WHERE result = 'ok') x WHERE back}),
	'0', 'no commit went through under an older epoch than the one before it');
is(q1(q{SELECT count(*) FROM commit_log c JOIN ptm.action_dedup_log d
	       ON d.workflow_key = c.workflow_key AND d.action_id = c.action_id
	     WHERE c.result = 'duplicate' AND c.version <> d.result_version}),
	'0', 'a duplicate answers with the version its action produced');

# --- projections ----------------------------------------------------------
is(q1(q{SELECT count(*) FROM apply_log WHERE result = 'applied' AND previous >= off}),
	'0', 'each applied event moved its watermark up');
is(q1(q{SELECT count(*) FROM (SELECT partition_id, previous FROM apply_log
	      WHERE result = 'applied' AND previous IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) x}),
	'0', 'no two applies advanced from the same watermark');
is(q1(q{SELECT count(*) FROM apply_log a WHERE result = 'applied' AND previous IS NOT NULL
	     AND NOT EXISTS (SELECT FROM apply_log b WHERE b.partition_id = a.partition_id
	                     AND b.result = 'applied' AND b.off = a.previous)}),
	'0', 'each watermark an apply advanced from was set by an earlier apply');
is(q1(q{SELECT count(*) FROM ptm.projection_watermarks w
	     WHERE projection = 'soak-p'
	       AND "offset" <> (SELECT max(off) FROM apply_log a
	                         WHERE a.partition_id = w.partition_id AND a.result = 'applied')}),
	'0', 'each watermark is the highest applied offset');
is(q1(q{SELECT count(*) FROM apply_log WHERE result IN ('duplicate', 'regression') AND watermark < off}),
	'0', 'refused events were at or below the watermark');

# --- the server -----------------------------------------------------------
unlike(slurp_file($node->logfile), qr/terminated by signal|was terminated|TRAP:|PANIC:/,
	'no backend crashed');

$node->stop;
done_testing();
