# Shared pieces of the upgrade, dump/restore and failover tests
# (test/t/090_upgrade.pl, 091_dump_restore.pl, 093_failover.pl):
#
#   ptm_exercise($node, $db, $tag)   one pass over every public function;
#                                    returns its outcomes as one line, which
#                                    must equal $PTM_EXERCISE_EXPECTED
#   ptm_catalog($node, $db [, $sql]) the extension's objects and their
#                                    definitions, grants and comments, as a
#                                    hash (key => definition); $sql runs first
#                                    in the same transaction (rolled back)
#   ptm_catalog_diff(\%a, \%b, $na, $nb)  the differences, one line each
#   ptm_data_digest($node, $db [, \%columns])  one md5 per extension table
#                                    (config_dump tables) and sequence value
package PtmExercise;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(ptm_exercise $PTM_EXERCISE_EXPECTED ptm_catalog ptm_catalog_diff
  ptm_data_digest ptm_table_columns);

# Every call below is written against the 0.1.0 signatures (positional or by
# the contract's parameter names), so the same pass runs on every version.
# Topics, workflows and projections carry $tag so it can run again in one
# database.
my $exercise_sql = q{
CREATE TEMP TABLE ex_log (n serial, line text);
INSERT INTO ex_log (line) SELECT 'acquire=' || result FROM ptm.acquire_partition_lease('T', 0, 'agent-1', '1 h');
INSERT INTO ex_log (line) SELECT 'again=' || result FROM ptm.acquire_partition_lease('T', 0, 'agent-1', '1 h');
INSERT INTO ex_log (line) SELECT 'other=' || result FROM ptm.acquire_partition_lease('T', 0, 'agent-2', '1 h');
INSERT INTO ex_log (line)
  SELECT 'renew=' || r.result FROM ptm.partition_leases l,
         ptm.renew_lease('T', 0, 'agent-1', l.lease_epoch, '1 h') r
   WHERE l.topic = 'T' AND l.partition_id = 0;
CREATE TEMP TABLE ex_epoch AS
  SELECT lease_epoch AS e1 FROM ptm.partition_leases WHERE topic = 'T' AND partition_id = 0;
INSERT INTO ex_log (line) SELECT 'fence=ok' FROM ex_epoch, ptm.check_fence('T', 0, e1);
INSERT INTO ex_log (line)
  SELECT 'release=' || r.result FROM ex_epoch, ptm.release_lease('T', 0, 'agent-1', e1) r;
INSERT INTO ex_log (line)
  SELECT 'takeover=' || result || ':' || (lease_epoch > e1)
    FROM ex_epoch, ptm.acquire_partition_lease('T', 0, 'agent-2', '1 h');
DO $$ BEGIN
  PERFORM ptm.check_fence('T', 0, (SELECT e1 FROM ex_epoch));
  INSERT INTO ex_log (line) VALUES ('stale_fence=accepted');
EXCEPTION WHEN SQLSTATE 'PTM01' THEN
  INSERT INTO ex_log (line) VALUES ('stale_fence=PTM01');
END $$;
INSERT INTO ex_log (line) SELECT 'stale_renew=' || r.result FROM ex_epoch,
  ptm.renew_lease('T', 0, 'agent-1', e1) r;
INSERT INTO ex_log (line) SELECT 'force=' || result FROM ptm.force_expire('T', 0, 'exercise');
INSERT INTO ex_log (line) SELECT 'audited=' || count(*) FROM ptm.lease_audit
 WHERE topic = 'T' AND action LIKE '%force%' AND reason = 'exercise';
INSERT INTO ex_log (line) SELECT 'commit=' || result || ':' || version FROM ptm.try_commit('W', 0, '{"n": 1}', 'a1');
INSERT INTO ex_log (line) SELECT 'repeat=' || result || ':' || version FROM ptm.try_commit('W', 0, '{"n": 1}', 'a1');
INSERT INTO ex_log (line) SELECT 'cas=' || result || ':' || version FROM ptm.try_commit('W', 0, '{"n": 9}');
INSERT INTO ex_log (line)
  SELECT 'fenced_stale=' || c.result FROM ex_epoch,
         ptm.try_commit('W', 1, '{"n": 2}', NULL, 'T', 0, e1) c;
INSERT INTO ex_log (line)
  SELECT 'fenced=' || c.result || ':' || c.version
    FROM ptm.acquire_partition_lease('T', 1, 'agent-3', '1 h') a,
         ptm.try_commit('W', 1, '{"n": 2}', 'a2', 'T', 1, a.lease_epoch) c;
INSERT INTO ex_log (line) SELECT 'state=' || version || ':' || state FROM ptm.get_state('W');
INSERT INTO ex_log (line)
  SELECT 'claim=' || s.result || ':' || c.result || ':' || c.version
    FROM ptm.claim_step('W', 2, 'worker-1', '1 h') s,
         ptm.try_commit('W', 2, '{"n": 3}', 'a3', fence_epoch => s.claim_epoch) c;
INSERT INTO ex_log (line) SELECT 'reclaim=' || result FROM ptm.claim_step('W', 2, 'worker-1');
INSERT INTO ex_log (line) SELECT 'apply=' || result FROM ptm.apply_projection('P', 0, 10, 'k1', '{"v": 1}');
INSERT INTO ex_log (line) SELECT 'apply_again=' || result FROM ptm.apply_projection('P', 0, 10, 'k1', '{"v": 1}');
INSERT INTO ex_log (line) SELECT 'apply_old=' || result FROM ptm.apply_projection('P', 0, 5, 'k1', '{"v": 0}');
INSERT INTO ex_log (line)
  SELECT 'batch=' || string_agg(result, ',' ORDER BY ordinality)
    FROM ptm.apply_projection_batch('P', 0, '{11,12}', '{k1,k2}', ARRAY['{"v": 2}', '{"v": 3}']::jsonb[]);
INSERT INTO ex_log (line) SELECT 'projection=' || count(*) FROM ptm.workflow_projection WHERE projection = 'P';
INSERT INTO ex_log (line) SELECT 'reset=' || result FROM ptm.reset_projection('P', 0, true, 'exercise');
INSERT INTO ex_log (line) SELECT 'replay=' || result FROM ptm.apply_projection('P', 0, 1, 'k1', '{"v": 1}');
INSERT INTO ex_log (line) SELECT 'ensure=' || ptm.ensure_partitions('B', 4);
INSERT INTO ex_log (line)
  SELECT 'bulk=' || count(*) FROM ptm.acquire_partition_leases('B', 'agent-b', 2, '1 h') WHERE result = 'acquired';
INSERT INTO ex_log (line)
  SELECT 'bulk_renew=' || string_agg(r.result, ',')
    FROM (SELECT array_agg(topic) t, array_agg(partition_id) p, array_agg(lease_epoch) e
            FROM ptm.partition_leases WHERE topic = 'B' AND agent_id = 'agent-b') l,
         ptm.renew_leases('agent-b', l.t, l.p, l.e, '1 h') r;
INSERT INTO ex_log (line)
  SELECT 'views=' || (SELECT count(*) > 0 FROM ptm.lease_status WHERE topic = 'T')
         || ',' || (SELECT count(*) > 0 FROM ptm.projection_lag WHERE projection = 'P')
         || ',' || (SELECT count(*) > 0 FROM ptm.metrics WHERE metric = 'ptm_commit_total')
         || ',' || (SELECT stats_reset IS NOT NULL FROM ptm.stat_info)
         || ',' || (ptm.metrics_text() LIKE '%# TYPE ptm_commit_total counter%')
         || ',' || (SELECT count(*) > 0 FROM ptm.health() WHERE "check" = 'preload' AND status = 'ok');
SELECT replace(string_agg(line, ' ' ORDER BY n), '"', '') FROM ex_log;
};

our $PTM_EXERCISE_EXPECTED = join(' ',
	'acquire=acquired again=held other=conflict renew=renewed fence=ok release=released',
	'takeover=acquired:true stale_fence=PTM01 stale_renew=stale_epoch force=forced audited=1',
	'commit=ok:1 repeat=duplicate:1 cas=cas_conflict:1 fenced_stale=fencing_reject fenced=ok:2',
	'state=2:{n: 2} claim=claimed:ok:3 reclaim=stale apply=applied apply_again=duplicate',
	'apply_old=regression batch=applied,applied projection=2 reset=reset replay=applied',
	'ensure=4 bulk=2 bulk_renew=renewed,renewed views=true,true,true,true,true,true');

sub ptm_exercise
{
	my ($node, $db, $tag) = @_;
	my $sql = $exercise_sql;
	$sql =~ s/'([TWPB])'/'$1-$tag'/g;
	my $out = $node->safe_psql($db, $sql);
	$out =~ s/([TWPB])-\Q$tag\E\b/$1/g;
	return $out;
}

# Privileges as a sorted list, the default ones spelled out, so that NULL and
# an explicit default compare equal.
sub acl
{
	my ($acl, $kind, $owner) = @_;
	$acl = "pg_catalog.acldefault('$kind', $owner)" if defined $kind;
	return qq{(SELECT coalesce(string_agg(
		  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END
		  || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END,
		  ',' ORDER BY 1), '')
	   FROM pg_catalog.aclexplode($acl) a)};
}

sub catalog_sql
{
	my $fn_acl   = acl('coalesce(p.proacl, acldefault(\'f\', p.proowner))');
	my $rel_acl  = acl(q{coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))});
	my $col_acl  = acl('a.attacl');
	my $nsp_acl  = acl('coalesce(n.nspacl, acldefault(\'n\', n.nspowner))');
	my $type_acl = acl('coalesce(t.typacl, acldefault(\'T\', t.typowner))');
	my $init_acl = acl('i.initprivs');
	return qq{
WITH ext AS (SELECT e.* FROM pg_catalog.pg_extension e WHERE e.extname = 'ptm_lease'),
mem AS (SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
         WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid = ext.oid AND d.deptype = 'e'),
rel AS (SELECT c.* FROM pg_catalog.pg_class c
         WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass)
            OR c.oid IN (SELECT t.typrelid FROM pg_catalog.pg_type t
                          WHERE t.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass))),
-- objects that belong to a member relation without being members themselves
sub AS (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS classid, i.indexrelid AS objid
          FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
        UNION ALL SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, o.oid
          FROM pg_catalog.pg_constraint o WHERE o.conrelid IN (SELECT oid FROM rel)
        UNION ALL SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid
          FROM pg_catalog.pg_trigger g WHERE g.tgrelid IN (SELECT oid FROM rel) AND NOT g.tgisinternal
        UNION ALL SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid
          FROM pg_catalog.pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM rel)
        UNION ALL SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, y.oid
          FROM pg_catalog.pg_policy y WHERE y.polrelid IN (SELECT oid FROM rel)),
items (k, v) AS (
  SELECT 'extension ptm_lease',
         'version=' || extversion || ' relocatable=' || extrelocatable || ' schema=' || extnamespace::pg_catalog.regnamespace
    FROM ext
  UNION ALL
  SELECT 'member ' || pg_catalog.pg_describe_object(classid, objid, 0), '' FROM mem
  UNION ALL
  SELECT 'object ' || pg_catalog.pg_describe_object(classid, objid, 0), '' FROM sub
  UNION ALL
  SELECT 'config_dump ' || u.c::pg_catalog.regclass, coalesce(u.cond, '')
    FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(c, cond)
  UNION ALL
  SELECT 'schema ' || n.nspname, 'owner=' || pg_catalog.pg_get_userbyid(n.nspowner) || ' acl=' || $nsp_acl
    FROM pg_catalog.pg_namespace n, ext WHERE n.oid = ext.extnamespace
  UNION ALL
  SELECT 'comment ' || pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
    FROM pg_catalog.pg_description d
   WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM mem UNION ALL SELECT classid, objid FROM sub
                                    UNION ALL SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, oid FROM rel)
      OR (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objoid = (SELECT extnamespace FROM ext))
  UNION ALL
  SELECT 'init_privs ' || pg_catalog.pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype::text || ' ' || $init_acl
    FROM pg_catalog.pg_init_privs i
   WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM mem)
      OR (i.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND i.objoid = (SELECT extnamespace FROM ext))
  UNION ALL
  SELECT 'function ' || p.oid::pg_catalog.regprocedure,
         CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE pg_catalog.pg_get_functiondef(p.oid) END
         || E'\\nowner=' || pg_catalog.pg_get_userbyid(p.proowner) || ' acl=' || $fn_acl
    FROM pg_catalog.pg_proc p WHERE p.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass)
  UNION ALL
  SELECT 'relation ' || c.oid::pg_catalog.regclass,
         'kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
         || ' options=' || coalesce(c.reloptions::text, '') || ' rls=' || c.relrowsecurity
         || ' owner=' || pg_catalog.pg_get_userbyid(c.relowner)
         || CASE WHEN c.relkind = 'c' THEN '' ELSE ' acl=' || $rel_acl END
    FROM rel c
  UNION ALL
  SELECT 'column ' || a.attrelid::pg_catalog.regclass || '.' || a.attname,
         'position=' || pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)
         || ' type=' || pg_catalog.format_type(a.atttypid, a.atttypmod)
         || ' not_null=' || a.attnotnull
         || ' default=' || coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
         || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
         || ' collation=' || coalesce((SELECT collname FROM pg_catalog.pg_collation WHERE oid = a.attcollation), '')
         || ' storage=' || a.attstorage::text || ' acl=' || $col_acl
    FROM pg_catalog.pg_attribute a
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE a.attrelid IN (SELECT oid FROM rel) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'view ' || c.oid::pg_catalog.regclass, pg_catalog.pg_get_viewdef(c.oid, true)
    FROM rel c WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'index ' || i.indexrelid::pg_catalog.regclass,
         pg_catalog.pg_get_indexdef(i.indexrelid) || ' clustered=' || i.indisclustered
         || ' options=' || coalesce((SELECT reloptions::text FROM pg_catalog.pg_class WHERE oid = i.indexrelid), '')
    FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
  UNION ALL
  SELECT 'constraint ' || o.conname || ' on ' || o.conrelid::pg_catalog.regclass,
         pg_catalog.pg_get_constraintdef(o.oid) || ' deferrable=' || o.condeferrable || ' validated=' || o.convalidated
    FROM pg_catalog.pg_constraint o WHERE o.conrelid IN (SELECT oid FROM rel)
  UNION ALL
  SELECT 'trigger ' || g.tgname || ' on ' || g.tgrelid::pg_catalog.regclass,
         pg_catalog.pg_get_triggerdef(g.oid) || ' enabled=' || g.tgenabled::text
    FROM pg_catalog.pg_trigger g WHERE g.tgrelid IN (SELECT oid FROM rel) AND NOT g.tgisinternal
  UNION ALL
  SELECT 'rule ' || r.rulename || ' on ' || r.ev_class::pg_catalog.regclass, pg_catalog.pg_get_ruledef(r.oid)
    FROM pg_catalog.pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM rel) AND r.rulename <> '_RETURN'
  UNION ALL
  SELECT 'policy ' || y.polname || ' on ' || y.polrelid::pg_catalog.regclass,
         y.polcmd::text || ' permissive=' || y.polpermissive || ' roles=' || y.polroles::text
         || ' using=' || coalesce(pg_catalog.pg_get_expr(y.polqual, y.polrelid), '')
         || ' check=' || coalesce(pg_catalog.pg_get_expr(y.polwithcheck, y.polrelid), '')
    FROM pg_catalog.pg_policy y WHERE y.polrelid IN (SELECT oid FROM rel)
  UNION ALL
  SELECT 'sequence ' || s.seqrelid::pg_catalog.regclass,
         'type=' || s.seqtypid::pg_catalog.regtype || ' start=' || s.seqstart || ' increment=' || s.seqincrement
         || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle
         || ' owned_by=' || coalesce((SELECT pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
                                        FROM pg_catalog.pg_depend d
                                       WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                         AND d.objid = s.seqrelid AND d.deptype IN ('a', 'i')
                                         AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass), '')
    FROM pg_catalog.pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rel)
  UNION ALL
  SELECT 'type ' || t.oid::pg_catalog.regtype,
         'kind=' || t.typtype::text || ' owner=' || pg_catalog.pg_get_userbyid(t.typowner) || ' acl=' || $type_acl
         || ' base=' || coalesce(nullif(t.typbasetype, 0)::pg_catalog.regtype::text, '')
         || ' labels=' || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                                      FROM pg_catalog.pg_enum WHERE enumtypid = t.oid), '')
         || ' checks=' || coalesce((SELECT string_agg(pg_catalog.pg_get_constraintdef(o.oid), ',' ORDER BY o.conname)
                                      FROM pg_catalog.pg_constraint o WHERE o.contypid = t.oid), '')
    FROM pg_catalog.pg_type t WHERE t.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass)
)
SELECT string_agg(k || E'\\x01' || v, E'\\x02' ORDER BY k, v) FROM items};
}

sub ptm_catalog
{
	my ($node, $db, $before) = @_;
	my $sql = catalog_sql() . ';';
	$sql = "BEGIN;\n$before;\n$sql\nROLLBACK;" if defined $before;
	my $out = $node->safe_psql($db, $sql);
	my %catalog;
	for my $item (split /\x02/, $out)
	{
		my ($k, $v) = split /\x01/, $item, 2;
		$catalog{$k} = exists $catalog{$k} ? "$catalog{$k}\n$v" : $v;
	}
	return \%catalog;
}

# One line per key missing from either side or with another definition.
sub ptm_catalog_diff
{
	my ($a, $b, $name_a, $name_b) = @_;
	my @diff;
	my %keys = map { $_ => 1 } keys %$a, keys %$b;
	for my $k (sort keys %keys)
	{
		if (!exists $b->{$k})
		{
			push @diff, "only in $name_a: $k" . ($a->{$k} eq '' ? '' : "\n    $a->{$k}");
		}
		elsif (!exists $a->{$k})
		{
			push @diff, "only in $name_b: $k" . ($b->{$k} eq '' ? '' : "\n    $b->{$k}");
		}
		elsif ($a->{$k} ne $b->{$k})
		{
			push @diff, "differs: $k\n  $name_a:\n    $a->{$k}\n  $name_b:\n    $b->{$k}";
		}
	}
	return @diff;
}

# Column names of each config_dump table, to digest an old version's columns
# after an update that may have added some.
sub ptm_table_columns
{
	my ($node, $db) = @_;
	my %columns;
	for my $line (split /\n/, $node->safe_psql($db, q{
		SELECT c::regclass || '|' || string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
		  FROM pg_extension e, unnest(e.extconfig) c
		  JOIN pg_class r ON r.oid = c AND r.relkind = 'r'
		  JOIN pg_attribute a ON a.attrelid = c AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE e.extname = 'ptm_lease' GROUP BY c}))
	{
		my ($t, $cols) = split /\|/, $line;
		$columns{$t} = $cols;
	}
	return \%columns;
}

# table => md5 of its rows (in a fixed order), sequence => last_value.
sub ptm_data_digest
{
	my ($node, $db, $columns) = @_;
	$columns //= ptm_table_columns($node, $db);
	my @parts;
	for my $t (sort keys %$columns)
	{
		push @parts, qq{SELECT '$t' || ' rows=' || count(*) || ' md5=' ||
			coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '')
			FROM (SELECT $columns->{$t} FROM $t) r};
	}
	push @parts, q{SELECT c::regclass || ' last_value=' || coalesce(s.last_value::text, 'none')
		FROM pg_extension e, unnest(e.extconfig) c JOIN pg_sequences s
		  ON (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass = c
		WHERE e.extname = 'ptm_lease'};
	my %digest;
	for my $line (split /\n/, $node->safe_psql($db, join("\nUNION ALL\n", @parts)))
	{
		my ($name, $rest) = split / /, $line, 2;
		$digest{$name} = $rest;
	}
	return \%digest;
}

1;
