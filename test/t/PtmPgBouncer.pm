# A PgBouncer in transaction mode for the tests that run real clients through
# one (110_fault_suite.pl, 114_pooler_clients.pl): trust authentication, its
# socket, log and pid file in a directory of the test's.
#
#   my $pgb = PtmPgBouncer->new(dir => $dir, node => $node, dbname => 'faultdb',
#                               users => ['agent'], pool_size => 2);
#   $pgb->port, $pgb->pid, $pgb->listening
#   $pgb->dsn('agent')        # libpq conninfo through the pooler
#   $pgb->retarget($node)     # the same database on another server (SIGHUP)
#   $pgb->stop
#   ptm_spawn($logfile, @cmd)           # fork and exec, output appended to $logfile
#   ptm_write_file($path, $text)        # whole or not at all (a .tmp, renamed)
#
# Debian bookworm ships PgBouncer 1.18: it keeps no protocol-level prepared
# statements (max_prepared_statements came with 1.21), which is what the
# client settings in docs/poolers.md are about.
package PtmPgBouncer;
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(time usleep);
use Exporter 'import';
our @EXPORT = qw(ptm_spawn ptm_write_file);

sub new
{
	my ($class, %o) = @_;
	my $self = bless { pool_size => 2, users => [], %o }, $class;
	$self->{port} = PostgreSQL::Test::Cluster::get_free_port();
	my $dir = $self->{dir};
	ptm_write_file("$dir/userlist.txt", join '', map { qq{"$_" ""\n} } 'postgres', @{ $self->{users} });
	$self->_write_ini;
	$self->{pid} = ptm_spawn("$dir/pgbouncer.out", 'pgbouncer', "$dir/pgbouncer.ini");
	my $until = time + 30;
	usleep(100_000) until $self->listening || time > $until;
	return $self;
}

sub port      { return $_[0]{port}; }
sub pid       { return $_[0]{pid}; }
sub listening { my ($self) = @_; return -S "$self->{dir}/.s.PGSQL.$self->{port}"; }

sub dsn
{
	my ($self, $user) = @_;
	return "host=$self->{dir} port=$self->{port} dbname=$self->{dbname} user=$user connect_timeout=2";
}

sub retarget
{
	my ($self, $node) = @_;
	$self->{node} = $node;
	$self->_write_ini;
	kill 'HUP', $self->{pid};
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	local $?;    # called from an END block too, where $? is the test's exit status
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
}

sub _write_ini
{
	my ($self) = @_;
	my ($dir, $node) = ($self->{dir}, $self->{node});
	ptm_write_file("$dir/pgbouncer.ini", qq{[databases]
$self->{dbname} = host=${\ $node->host} port=${\ $node->port} dbname=$self->{dbname}
[pgbouncer]
listen_port = $self->{port}
listen_addr =
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $self->{pool_size}
max_client_conn = 100
server_login_retry = 1
query_wait_timeout = 10
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
});
}

sub ptm_spawn
{
	my ($out, @cmd) = @_;
	my $pid = fork // die "fork: $!";
	if (!$pid)
	{
		open STDOUT, '>>', $out or die;
		open STDERR, '>&', \*STDOUT or die;
		exec @cmd or die "exec $cmd[0]: $!";
	}
	return $pid;
}

# Written whole or not at all: PgBouncer (or an agent) may read the file at
# any moment.
sub ptm_write_file
{
	my ($path, $text) = @_;
	open my $fh, '>', "$path.tmp" or die "$path: $!";
	print $fh $text;
	close $fh;
	rename "$path.tmp", $path or die "$path: $!";
}

1;
